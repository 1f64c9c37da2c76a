"""Every JSON shape the API reads or writes, in one place."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hyps import HYP_KEYS, SEED_HYPS, YOLOV5_FITNESS_WEIGHTS, KeySet, load_ultralytics_space
from service.samplers import SAMPLER_NAMES
from service.settings import check_gpu_amount
from workers.label_cache import Split
from workers.pruning import PRUNER_NAMES
from workers.trial_tags import Stage


class StudyState(StrEnum):
    """Where a study stands. Legal changes: see ``can_become``; the store refuses any other."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def unfinished(self) -> bool:
        """Queued or running: a runner should own the study."""
        return self in (StudyState.QUEUED, StudyState.RUNNING)

    def can_become(self, new: StudyState) -> bool:
        return new in _STATE_CHANGES[self]


_STATE_CHANGES: dict[StudyState, frozenset[StudyState]] = {
    # A runner picks a queued study up, or it is stopped or fails before its first trial.
    StudyState.QUEUED: frozenset({StudyState.RUNNING, StudyState.STOPPED, StudyState.FAILED}),
    # running -> running: a restarted service resumes a study that was running.
    StudyState.RUNNING: frozenset({StudyState.RUNNING, StudyState.COMPLETED, StudyState.STOPPED, StudyState.FAILED}),
    StudyState.STOPPED: frozenset({StudyState.QUEUED}),  # resume
    StudyState.COMPLETED: frozenset(),
    StudyState.FAILED: frozenset({StudyState.QUEUED}),  # resume, once the cause is fixed
}

TrialState = Literal["running", "waiting", "complete", "pruned", "fail"]

# A YOLOv5 architecture (ultralytics builds the anchor-free "YOLOv5u" offline from its own yaml) or
# the bare name of a weights file in the operator's weights folder (service.data.weights checks it there).
WEIGHTS_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,124}\.pt"
_MODEL_PATTERN = re.compile(rf"^(yolov5[nsmlx]6?\.yaml|{WEIGHTS_NAME})$")


# Every number a request carries is finite: NaN or an infinity in a hyp, a bound or a weight would
# make every fitness NaN. Weights are capped so that no fitness can overflow to infinity.
def _json_int(value: Any) -> Any:
    """A JSON integer: a number without a fraction (7 or 7.0), never a string ("7") or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number (a JSON number, not a string or a boolean)")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


def _json_number(value: Any) -> Any:
    """A JSON number, never a string ("0.01") or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number (a JSON number, not a string or a boolean)")
    return value


# A JSON API takes JSON types: numbers as numbers, booleans as booleans; "7" or true for a count is a
# client's mistake to hear about, not to guess at.
JsonInt = Annotated[int, BeforeValidator(_json_int)]
JsonBool = Annotated[bool, Field(strict=True)]
FiniteFloat = Annotated[float, BeforeValidator(_json_number), Field(allow_inf_nan=False)]
MAX_FITNESS_WEIGHT = 1000.0
# Confirmation trains this many times longer than screening unless a study says otherwise: short
# trials favour what helps early, and a choice made on them is checked on longer ones.
CONFIRM_EPOCHS_FACTOR = 3
# Each confirmation rung trains about this many times longer than the one below, and promotes a
# 1/RUNG_FACTOR share of its candidates (successive halving's factor of 3).
RUNG_FACTOR = 3
# What a dataset field may be, as the OpenAPI schema says it (service.data.datasets checks it, and
# more: that it stays inside the data root once links are followed).
DATASET_PATTERN = r"^[^/].*\.ya?ml$"
DEFAULT_N_TRIALS = 30


RungPlan = tuple[int, int, int]  # (candidates, seeds, epochs) of one rung


def rung_plans(n_trials: int, top_k: int, seeds: int, seed_cap: int, rungs: int, top_epochs: int) -> list[RungPlan]:
    """Each rung's plan at most, the lowest first, before anything is planned: its candidates
    (top_k x RUNG_FACTOR^(rungs above it), at most the trials besides trial 0 and at most the rung
    below's), its seeds (the top rung: its racing cap) and its length (top_epochs / RUNG_FACTOR per
    rung down). Candidates 0 on a rung: there is nothing to confirm."""
    plans, candidates = [], n_trials - 1
    for rung in range(rungs):
        below_top = rungs - 1 - rung
        candidates = max(0, min(top_k * RUNG_FACTOR**below_top, candidates))
        plans.append((candidates, seed_cap if below_top == 0 else seeds, top_epochs // RUNG_FACTOR**below_top))
    return plans


def confirmation_plan_epochs(n_trials: int, top_k: int, seeds: int, seed_cap: int, rungs: int, top_epochs: int) -> int:
    """Confirmation's training epochs at most, before anything is planned: every rung's candidates
    and the seed hyps on its seeds at its length (rung_plans); 0 with nothing to confirm."""
    plans = rung_plans(n_trials, top_k, seeds, seed_cap, rungs, top_epochs)
    if any(candidates == 0 for candidates, _, _ in plans):
        return 0
    return sum((candidates + 1) * rung_seeds * epochs for candidates, rung_seeds, epochs in plans)


def trials_for_budget(budget: int, epochs: int, diagnostics: bool, plan: Callable[[int], int]) -> int | None:
    """The most trials (2 at least: the seed hyps and one more; 10000 at most) whose screening
    (trials x epochs), confirmation at most (``plan(trials)``) and diagnostics training fit ``budget``
    epochs; None when not even 2 do."""
    best = None
    for trials in range(2, min(budget // epochs, 10000) + 1):
        confirming = plan(trials)
        total = trials * epochs + confirming + (epochs if diagnostics and confirming == 0 else 0)
        if total <= budget:
            best = trials
    return best


def _confirmation_of(fields: Mapping[str, Any]) -> Callable[[int], int]:
    """Confirmation's epochs at most, by number of trials, for a request's fields (as validated so far)."""
    if not fields["confirm_top_k"]:
        return lambda trials: 0
    seeds = fields["confirm_seeds"]
    cap = fields.get("confirm_seeds_max") or seeds
    top = fields.get("confirm_epochs") or CONFIRM_EPOCHS_FACTOR * fields["epochs"]
    return partial(confirmation_plan_epochs, top_k=fields["confirm_top_k"], seeds=seeds, seed_cap=cap,
                   rungs=fields["confirm_rungs"], top_epochs=top)  # fmt: skip


def _budget_trials(budget: int, fields: Mapping[str, Any]) -> int | None:
    return trials_for_budget(budget, fields["epochs"], fields["diagnostics"], _confirmation_of(fields))


_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class StudyRequest(BaseModel):
    """``POST /studies``: what to search, on which data, with how much training per trial."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        description="A data.yaml path relative to the data root.",
        min_length=1,
        max_length=1024,
        json_schema_extra={"pattern": DATASET_PATTERN},
    )
    model: str = Field(
        "yolov5n.yaml",
        json_schema_extra={"pattern": _MODEL_PATTERN.pattern},
        description="A YOLOv5 architecture trained from scratch, yolov5{n,s,m,l,x}[6].yaml, or pretrained weights "
        "to fine-tune: the name of a .pt file in the weights folder (GET /models lists both).",
    )
    epochs: JsonInt = Field(10, ge=1, le=1000, description="Training epochs per trial.")
    imgsz: JsonInt = Field(
        640, ge=32, le=4096, json_schema_extra={"multipleOf": 32}, description="Training image size, a multiple of 32."
    )
    batch: int | float = Field(
        16,
        description="Images per batch (1-1024); -1: the largest batch that fits the trial's GPU (ultralytics' "
        "AutoBatch, 60% of its memory); a fraction such as 0.7: AutoBatch for that share of its memory. A trial on "
        "a part of a GPU (gpus_per_trial < 1) is sized to its part; on a CPU AutoBatch falls back to 16.",
    )
    n_trials: JsonInt = Field(
        DEFAULT_N_TRIALS,
        ge=1,
        le=10000,
        description="Trials in the study, the seed trial included; with budget_epochs, what the budget buys.",
    )
    parallel: JsonInt = Field(1, ge=1, le=1024, description="Trials running at once.")
    # The default is what bench/compare_tuners.py found best; see README, Benchmarks.
    sampler: str = Field("yolov5", description=f"One of {', '.join(SAMPLER_NAMES)}.")
    seed_hyp: str | dict[str, Any] = Field(
        "scratch-low",
        description=f"Trial 0's hyps and the base for keys not searched: {', '.join(SEED_HYPS)}, or your own "
        "hyp values as an object or as the text of a YOLOv5 hyp.yaml (keys left out come from scratch-low).",
    )
    evolve: list[str] | None = Field(
        None,
        max_length=len(HYP_KEYS) + len(load_ultralytics_space()),
        description="Keys to search; default: every key with an effect that YOLOv5 evolves. YOLOv5 hyp keys, "
        f"or ultralytics-only arguments by name ({', '.join(load_ultralytics_space())}).",
    )
    key_set: KeySet = Field(
        "yolov5-v7.0",
        description="What a study that names no evolve keys searches: yolov5-v7.0 (every key YOLOv5 v7.0's --evolve "
        "mutates that acts on ultralytics) or augmentation (YOLOv5's --evolve since 2024: hsv_h, hsv_s, hsv_v, "
        "degrees, translate, scale, shear, perspective, flipud, fliplr, mosaic, mixup, copy_paste; the optimizer and "
        "loss keys stay at the seed hyps' values). Either leaves out copy_paste when the training split has no "
        "segment labels. Not with evolve.",
    )
    probe_keys: list[str] | None = Field(
        None,
        max_length=len(HYP_KEYS) + len(load_ultralytics_space()),
        description="Searched keys the yolov5 sampler first probes far from the seed hyps: after the seed trial, one "
        "screening trial per move, each key doubled then halved (clipped to its range), then the keys whose first "
        "probes beat the seed trial combined, then each such key moved on that way (x4, x8) while each move wins, then "
        "each key's best combined, before evolution mutates. "
        "null (the default): box, cls and mosaic, those of them the study searches, with the yolov5 sampler (none "
        "with another); [] for none. The study's request shows the keys it probes.",
    )
    fixed: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Keys (YOLOv5 or ultralytics-only) held at these values, not searched."
    )
    bounds: dict[str, tuple[FiniteFloat, FiniteFloat]] = Field(
        default_factory=dict,
        description="[low, high] per searched key, inside YOLOv5's bounds (ultralytics' tuner's for its own).",
    )
    fitness_weights: list[Annotated[FiniteFloat, Field(ge=0, le=MAX_FITNESS_WEIGHT)]] = Field(
        default_factory=lambda: list(YOLOV5_FITNESS_WEIGHTS),
        min_length=4,
        max_length=4,
        description="Weights of [P, R, mAP50, mAP50-95] in the fitness; YOLOv5's [0, 0, 0.1, 0.9] by default.",
    )
    seed: JsonInt = Field(0, ge=0, le=2**31 - 1, description="Seeds the sampler and every training.")
    pruner: str = Field("none", description=f"Stop trials whose per-epoch fitness trails: {', '.join(PRUNER_NAMES)}.")
    max_retries: JsonInt = Field(
        1, ge=0, le=10, description="Retries of a trial whose worker was lost (killed, node gone, no heartbeat)."
    )
    max_failed_trials: JsonInt = Field(
        3, ge=1, le=100000, description="The study fails after this many trials failed for good."
    )
    gpus_per_trial: FiniteFloat | None = Field(
        None,
        ge=0,
        le=64,
        allow_inf_nan=False,
        description="GPUs per trial: 1, a fraction (0.5 packs two trainings on one GPU), 0 for CPU; "
        "default the GPUS_PER_TRIAL setting, else 1 when the cluster has GPUs.",
    )
    confirm_top_k: JsonInt = Field(
        3,
        ge=0,
        le=20,
        description="After screening, train this many of the best distinct trials again, with the seed hyps, on "
        "fresh seeds and for longer, and export the confirmed winner (confirm_probe_keys may take some of the places); "
        "0 exports the top screening trial as it is.",
    )
    confirm_seeds: JsonInt = Field(
        3, ge=2, le=20, description="Training seeds per confirmed entry, the same for all (paired comparisons)."
    )
    confirm_seeds_max: JsonInt | None = Field(
        None,
        ge=2,
        le=20,
        description="Racing at the top rung: every entry starts on confirm_seeds seeds; then, one seed at a time up "
        "to this many, the seed hyps and the candidates that can still change the verdict train again, a candidate "
        "whose interval lies below the seed hyps drops out, and the race ends once the leader's corrected interval "
        "lies above 0. Default confirm_seeds: no racing. At least confirm_seeds.",
    )
    confirm_epochs: JsonInt | None = Field(
        None,
        ge=1,
        le=3000,
        description="Epochs per confirmation training; must be at least `epochs` (a shorter one gets 422); default "
        f"{CONFIRM_EPOCHS_FACTOR} x epochs.",
    )
    confirm_rungs: JsonInt = Field(
        1,
        ge=1,
        le=4,
        description="Rungs of confirmation trainings, each about 3x longer than the one below and ending at "
        "confirm_epochs: the lowest trains confirm_top_k x 3^(rungs-1) screening candidates, each rung promotes "
        "the third with the best paired gain over the seed hyps, and the top rung's confirm_top_k give the "
        "verdict. Every rung trains its entries and the seed hyps on confirm_seeds fresh seeds. 1: one rung "
        "at confirm_epochs. The lowest rung must be at least epochs long (confirm_epochs >= epochs x 3^(rungs-1)).",
    )
    confirm_probe_keys: list[str] | None = Field(
        None,
        max_length=20,
        description="Probe keys whose best probe takes a place among confirmation's candidates whatever its screening "
        "rank: for each, the screening trial that moved that key alone from the seed hyps with the highest screening "
        "fitness, in place of the lowest-ranked candidate (the top screening trial keeps its place, so at most "
        "confirm_top_k - 1 keys). For keys whose effect short trainings cannot rank (mosaic), so that confirmation's "
        "longer paired trainings judge them. null (the default): mosaic where the study probes it and confirm_top_k "
        "is 2 or more; [] for none.",
    )
    diagnostics: JsonBool = Field(
        True,
        description="Keep ultralytics' plots (results, PR curve, confusion matrix, training batches, labels) of "
        "the winner and the seed hyps: drawn in their first confirmation training, or, without confirmation, in "
        "one more training of screening's best trial. GET /studies/{id}/artifacts lists them.",
    )
    name: str | None = Field(
        None,
        json_schema_extra={"pattern": _NAME_PATTERN.pattern},
        description="Unique; letters, digits, '.', '_', '-' (a letter or digit first, 64 at most); default study-<id>.",
    )
    budget_epochs: JsonInt | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="The whole study's training epochs instead of n_trials: the most trials whose screening, "
        "confirmation at most (every rung, the racing cap) and diagnostics fit it (planned_epochs shows the "
        "split). Not with another n_trials.",
    )

    def rung_plans(self) -> list[RungPlan]:
        """Each confirmation rung's (candidates, seeds, epochs) at most, before it is planned."""
        return rung_plans(
            self.n_trials, self.confirm_top_k, self.confirm_seeds, self.seed_cap(), self.confirm_rungs,
            self.confirmation_epochs(),
        )  # fmt: skip

    def planned_confirmation_epochs(self, n_trials: int | None = None) -> int:
        """Confirmation's training epochs at most for ``n_trials`` trials (default: the study's)."""
        if self.confirm_top_k == 0:
            return 0
        return confirmation_plan_epochs(
            self.n_trials if n_trials is None else n_trials, self.confirm_top_k, self.confirm_seeds, self.seed_cap(),
            self.confirm_rungs, self.confirmation_epochs(),
        )  # fmt: skip

    @field_validator("budget_epochs")
    @classmethod
    def _budget_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        data = info.data
        needed = ("epochs", "n_trials", "confirm_top_k", "confirm_seeds", "confirm_rungs", "diagnostics")
        if value is None or any(data.get(k) is None for k in needed):
            return value  # another field's error is already said
        trials = _budget_trials(value, data)
        if trials is None:
            least = 2 * data["epochs"] + _confirmation_of(data)(2)
            raise ValueError(
                f"is too small: the least study (the seed hyps and one trial of {data['epochs']} epochs, and their "
                f"confirmation) plans {least} epochs"
            )
        if data["n_trials"] not in (DEFAULT_N_TRIALS, trials):
            raise ValueError(f"buys {trials} trials but n_trials is {data['n_trials']}: give one of them")
        return value

    @model_validator(mode="after")
    def _trials_from_budget(self) -> StudyRequest:
        if self.budget_epochs is not None:
            trials = _budget_trials(self.budget_epochs, self.model_dump())
            assert trials is not None  # _budget_fits refused the request otherwise
            self.n_trials = trials
        return self

    def confirmation_epochs(self) -> int:
        """Epochs of each top-rung confirmation training: as asked, or CONFIRM_EPOCHS_FACTOR x the trials' epochs."""
        return self.confirm_epochs or CONFIRM_EPOCHS_FACTOR * self.epochs

    @field_validator("confirm_epochs")
    @classmethod
    def _not_shorter_than_screening(cls, value: int | None, info: ValidationInfo) -> int | None:
        epochs = info.data.get("epochs")
        if value is not None and epochs is not None and value < epochs:
            raise ValueError(
                f"must be at least epochs ({epochs}): confirmation checks hyps on trainings as long or longer"
            )
        return value

    def seed_cap(self) -> int:
        """The most seeds an entry of the top rung may train on (confirm_seeds without racing)."""
        return self.confirm_seeds_max or self.confirm_seeds

    @field_validator("confirm_seeds_max")
    @classmethod
    def _cap_not_below_start(cls, value: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("confirm_seeds")
        if value is not None and start is not None and value < start:
            raise ValueError(f"must be at least confirm_seeds ({start}): racing adds seeds to those every entry has")
        return value

    def rung_epochs(self) -> list[int]:
        """Each confirmation rung's training length, the shortest first: confirm_epochs / 3 per rung down."""
        top, rungs = self.confirmation_epochs(), self.confirm_rungs
        return [top // RUNG_FACTOR ** (rungs - 1 - rung) for rung in range(rungs)]

    def rung_candidates(self) -> list[int]:
        """How many candidates (besides the seed hyps) each rung trains, the lowest first: confirm_top_k at
        the top, RUNG_FACTOR times as many on each rung below."""
        rungs = self.confirm_rungs
        return [self.confirm_top_k * RUNG_FACTOR ** (rungs - 1 - rung) for rung in range(rungs)]

    @field_validator("key_set")
    @classmethod
    def _set_or_keys(cls, value: str, info: ValidationInfo) -> str:
        # The default beside evolve is what a stored request reads back as: only another set conflicts.
        if info.data.get("evolve") is not None and value != "yolov5-v7.0":
            raise ValueError("names the keys a study searches when evolve names none: give evolve or key_set, not both")
        return value

    @field_validator("probe_keys")
    @classmethod
    def _probes_of_yolov5(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        if value and info.data.get("sampler", "yolov5") != "yolov5":
            raise ValueError("are proposed by the yolov5 sampler only; leave them out or use sampler yolov5")
        return value

    @field_validator("confirm_probe_keys")
    @classmethod
    def _places_to_take(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        top_k = info.data.get("confirm_top_k")
        if not value or top_k is None:
            return value
        if len(value) > top_k - 1:
            raise ValueError(
                f"takes {len(value)} of confirmation's places but confirm_top_k is {top_k}: the top screening trial "
                f"keeps the first, so at most confirm_top_k - 1 ({max(top_k - 1, 0)}) keys"
            )
        return value

    @field_validator("probe_keys", "confirm_probe_keys")
    @classmethod
    def _each_key_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("lists a key twice")
        return value

    @field_validator("confirm_rungs")
    @classmethod
    def _rungs_fit(cls, value: int, info: ValidationInfo) -> int:
        if value == 1:
            return value
        if info.data.get("confirm_top_k") == 0:
            raise ValueError("must be 1 when confirm_top_k is 0: without confirmation there are no rungs")
        epochs, confirm_epochs = info.data.get("epochs"), info.data.get("confirm_epochs")
        if epochs is None:
            return value
        top = confirm_epochs or CONFIRM_EPOCHS_FACTOR * epochs
        if top // RUNG_FACTOR ** (value - 1) < epochs:
            raise ValueError(
                f"{value} rungs need confirm_epochs of at least epochs x {RUNG_FACTOR ** (value - 1)} "
                f"({epochs * RUNG_FACTOR ** (value - 1)}), so that the lowest rung trains at least as long as "
                f"screening; confirm_epochs is {top}"
            )
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if not _MODEL_PATTERN.fullmatch(value):
            raise ValueError(
                "must be a YOLOv5 architecture such as yolov5n.yaml, yolov5s.yaml or yolov5m6.yaml, or the bare "
                "name of a .pt file in the weights folder (GET /models lists both)"
            )
        return value

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_size_or_auto(cls, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("must be a number: a batch size, -1 (AutoBatch) or a fraction of GPU memory")
        if value == -1 or 0 < value < 1:
            return value
        if float(value).is_integer() and 1 <= value <= 1024:
            return int(value)
        raise ValueError(
            "must be a whole batch size from 1 to 1024, -1 (AutoBatch: the largest that fits the GPU) "
            "or a fraction of GPU memory between 0 and 1 (AutoBatch for that share)"
        )

    def auto_batch(self) -> bool:
        """Whether AutoBatch chooses each trial's batch (batch -1 or a fraction of GPU memory)."""
        return self.batch == -1 or 0 < self.batch < 1

    @field_validator("imgsz")
    @classmethod
    def _stride_multiple(cls, value: int) -> int:
        if value % 32:
            raise ValueError("must be a multiple of 32 (YOLOv5's largest stride)")
        return value

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value not in SAMPLER_NAMES:
            raise ValueError(f"unknown sampler; valid names: {', '.join(SAMPLER_NAMES)}")
        return value

    @field_validator("pruner")
    @classmethod
    def _known_pruner(cls, value: str) -> str:
        if value not in PRUNER_NAMES:
            raise ValueError(f"unknown pruner; valid names: {', '.join(PRUNER_NAMES)}")
        return value

    @field_validator("gpus_per_trial")
    @classmethod
    def _ray_gpu_amount(cls, value: float | None) -> float | None:
        return None if value is None else check_gpu_amount(value)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_PATTERN.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


class BestOut(BaseModel):
    """A study's best screening trial (service.studies.store.BestTrial)."""

    model_config = ConfigDict(from_attributes=True)

    fitness: float
    trial: int
    params: dict[str, float]
    metrics: dict[str, float]


class VsBaseline(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mean: float = Field(description="Mean paired difference in fitness to the baseline, seed by seed.")
    low: float | None = Field(
        description="t-interval on the paired differences at the confirmation's confidence (95% for all "
        "candidates together, Bonferroni); null under 2 seeds."
    )
    high: float | None


class ConfirmedOut(BaseModel):
    """One entry confirmation trained again (service.studies.confirmation.ConfirmedEntry)."""

    model_config = ConfigDict(from_attributes=True)

    trial: int = Field(description="The screening trial whose hyps were trained again (0: the seed hyps).")
    params: dict[str, float]
    screening_fitness: float | None
    fitness_by_seed: dict[int, float] = Field(description="Training seed -> final fitness of that training.")
    mean: float | None
    vs_baseline: VsBaseline | None = None
    dropped: bool = Field(
        False,
        description="Racing stopped training it: its own 95% interval lay below the seed hyps. Out of the verdict.",
    )


class ConfirmationOut(BaseModel):
    """The confirmation stage: the baseline and the candidates trained again on the same fresh seeds
    (service.studies.confirmation.ConfirmationResult)."""

    model_config = ConfigDict(from_attributes=True)

    finished: bool
    verdict: Literal["improved", "inconclusive", "defaults"] | None = Field(
        description="improved: the winner is a candidate whose interval lies above 0; inconclusive: the winner "
        "is a candidate, its interval reaches 0; defaults: the seed hyps have the highest mean. Null until finished."
    )
    winner: int | None = Field(description="The winning entry's trial number (0: the seed hyps).")
    baseline: ConfirmedOut
    candidates: list[ConfirmedOut]
    noise_floor: float | None = Field(description="Standard deviation of the baseline's fitness across seeds.")
    rank_correlation: float | None = Field(
        description="Spearman correlation of screening fitness and confirmed mean over the candidates (3 or more)."
    )
    epochs: int
    seeds: list[int]
    trainings_done: int
    trainings_total: int
    confidence: float = Field(
        description="Confidence of each candidate's interval: 1 - 0.05 / (k x looks) for k candidates judged at "
        "up to looks = seed_cap - confirm_seeds + 1 times (Bonferroni), so that all intervals hold together with "
        "95%: the winner is picked on the seeds that measure its gain, and racing may stop at any look."
    )
    rung: int = Field(
        0, description="Which rung of confirm_rungs, 0 the shortest; the verdict is the top rung's alone."
    )
    seed_cap: int = Field(
        0, description="The most seeds racing may give an entry (confirm_seeds_max; the first seeds' count: no racing)."
    )
    promoted: list[int] | None = Field(
        None,
        description="On a rung below the top, once the rung above is planned: the candidates it promoted (the "
        "highest mean paired gains over the seed hyps). Null on the top rung.",
    )


class DatasetOut(BaseModel):
    path: str = Field(description="What a study's dataset field names: the data.yaml relative to the data root.")
    classes: list[str] | None = Field(description="Class names; null when the file is not a usable data.yaml.")
    error: str | None = Field(None, description="Why a study would refuse it.")


class ProblemOut(BaseModel):
    count: int = Field(description="Images (boxes, for duplicate and zero-area boxes) with this problem.")
    examples: list[str] = Field(description="A few of the files, relative to the data root.")


class SplitReportOut(BaseModel):
    split: Split
    images: int
    label_files: int
    images_ignored: int = Field(description="Images ultralytics' check rejects: training skips them.")
    background_images: int = Field(description="Usable images without a box (no label file, or an empty one).")
    background_share: float = Field(description="background_images / usable images.")
    segment_images: int = Field(
        0, description="Usable images whose labels are polygons (segments), which copy_paste needs to act."
    )
    images_per_class: dict[str, int]
    instances_per_class: dict[str, int]
    boxes_by_size: dict[str, int] = Field(
        description="COCO's small (< 32x32 px), medium (< 96x96) and large boxes, at the report's imgsz."
    )
    problems: dict[str, ProblemOut]


class DatasetReportOut(BaseModel):
    """A data set against YOLOv5's training guide: per split, what it holds and what is wrong with it."""

    dataset: str
    imgsz: int
    classes: list[str]
    usable: bool = Field(description="The training split has at least one box training can use.")
    splits: list[SplitReportOut]
    warnings: list[str] = Field(description="The guide's recommendations the training split misses, with figures.")


class WeightsOut(BaseModel):
    name: str = Field(description="What a study's model field names to fine-tune from these weights.")
    size_bytes: int
    modified: datetime


class ModelsOut(BaseModel):
    """``GET /models``: what a study's ``model`` may name."""

    architectures: list[str] = Field(description="YOLOv5 architectures, trained from scratch.")
    weights: list[WeightsOut] = Field(
        description="Pretrained weights in the operator's weights folder (HYPEVOLVE_WEIGHTS_DIR), fine-tuned from."
    )


class PlannedEpochsOut(BaseModel):
    """Training epochs a study plans, by stage: what it will cost, known before it is spent."""

    screening: int = Field(description="n_trials x epochs (pruned trials spend less).")
    confirmation: int = Field(
        description="Over the rungs: (candidates + the seed hyps) x confirm_seeds x the rung's epochs; each rung's "
        "own entries once planned, until then its planned count (at most the trials besides trial 0)."
    )
    diagnostics: int = Field(description="epochs of one more training of screening's best, without confirmation.")
    total: int = Field(description="All of the above. Retries of trainings whose worker was lost come on top.")


class StudyOut(BaseModel):
    id: int
    name: str
    state: StudyState
    request: StudyRequest
    counts: dict[str, int] = Field(description="Trials by state: running, waiting, complete, pruned, fail.")
    best: BestOut | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_s: float | None
    eta_s: float | None
    planned_epochs: PlannedEpochsOut = Field(description="Training epochs the study plans, by stage.")
    stage: Stage | None = Field(
        None,
        description="What the study is doing while queued or running (diagnostics: screening's best trains once "
        "more with ultralytics' plots on); null once it has ended.",
    )
    confirmation: ConfirmationOut | None = Field(
        None,
        description="Once its top rung is planned (after screening, and after the rungs below): the confirmation "
        "stage and its verdict.",
    )
    searched: list[str] = Field(
        default_factory=list,
        description="The keys the study searches (evolve, or its key_set less what cannot act on the data set).",
    )
    rungs: list[ConfirmationOut] = Field(
        default_factory=list,
        description="With confirm_rungs > 1: the rungs below the top, lowest first, each once it is planned (no "
        "verdict: a rung below promotes).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the study's numbers cannot support, e.g. every screening trial so far scored 0.",
    )
    waiting: str | None = Field(
        None,
        description="Why a running study runs no trials at the moment, e.g. 'waiting for Ray: <why>' while Ray "
        "is restarted; null otherwise.",
    )
    dataset_report: DatasetReportOut | None = Field(
        None, description="The data set's report against the training guide, made when the study was created."
    )


class TrialOut(BaseModel):
    number: int
    state: TrialState
    params: dict[str, float]
    fitness: float | None
    metrics: dict[str, float] | None
    epochs: list[float] = Field(description="Fitness after each epoch, in order.")
    duration_s: float | None
    error: str | None
    node: str | None = Field(None, description="The host the trial runs or ran on.")
    node_id: str | None = Field(None, description="The Ray node the trial runs or ran on.")
    device: str | None = Field(None, description="'cpu', or the CUDA device the trial trained on.")
    pid: int | None = Field(None, description="The worker process that ran (or runs) the trial.")
    retry_of: int | None = Field(None, description="The trial this one repeats (after its worker was lost).")
    startup: dict[str, float] | None = Field(
        None, description="Seconds spent before training proper: imports_s, model_s, setup_s, to_first_epoch_s."
    )
    batch: int | None = Field(None, description="The batch size the trainer used (AutoBatch's choice included).")
    batch_note: str | None = Field(None, description="How AutoBatch chose the batch, when it did.")
    train_args: dict[str, Any] | None = Field(
        None, description="The hyp arguments the ultralytics trainer really used, read back from it."
    )
    stage: Stage = "screening"
    confirms: int | None = Field(
        None, description="On a confirmation or diagnostics training: the trial whose hyps it trains."
    )
    seed: int | None = Field(None, description="The training seed.")
    rung: int | None = Field(None, description="On a confirmation training: its rung, 0 the shortest.")
    probe: str | None = Field(
        None,
        description="On a probe (the study's probe_keys): the move it made from the seed hyps, e.g. 'cls 0.5 -> 1'.",
    )
    train_epochs: int | None = Field(
        None,
        description="The epochs this training was planned to run (its rung's length; the study's epochs for "
        "screening).",
    )


class ArtifactOut(BaseModel):
    name: str = Field(description="What GET /studies/{id}/artifacts/{name} takes: '<entry>/<file>'.")
    entry: Literal["winner", "baseline"] = Field(description="Whose training drew it: the answer's, or the seed hyps'.")
    trial: int = Field(description="The training (trial number) that drew it.")
    size_bytes: int


class ImportOut(BaseModel):
    imported: int = Field(description="Completed trials added.")
    format: str = Field(description="The file format read: evolve-csv, tune-csv or tune-ndjson.")
    trials: list[int] = Field(description="Numbers of the trials added.")


class FieldError(BaseModel):
    field: str
    value: Any = None
    message: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the database does not answer.")
    database: str = Field(description='"ok", or "unreachable: <why>".')
    ray: str = Field(description='"not started" (until the first study), "connecting", "connected: CPU n, GPU m", ...')


class ErrorOut(BaseModel):
    """Every error answer: what went wrong, in one sentence naming the field and the value where there
    is one; ``errors`` lists them one by one for 422s."""

    detail: str
    errors: list[FieldError] | None = None
