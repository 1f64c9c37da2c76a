"""What the API returns, as typed objects (the JSON shapes of service/schemas.py, read-only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

# The service's literals (tests/hypevolve_client checks them against its OpenAPI schema).
Stage = Literal["screening", "confirmation", "diagnostics"]
StudyStateName = Literal["queued", "running", "completed", "stopped", "failed"]
TrialStateName = Literal["running", "waiting", "complete", "pruned", "fail"]
Verdict = Literal["improved", "inconclusive", "defaults"]


@dataclass(frozen=True)
class Best:
    trial: int
    fitness: float
    params: dict[str, float]
    metrics: dict[str, float]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Best:
        return cls(data["trial"], data["fitness"], data["params"], data["metrics"])


@dataclass(frozen=True)
class VsBaseline:
    """A candidate's mean paired gain over the seed hyps, with its 95% interval (None under 2 seeds)."""

    mean: float
    low: float | None
    high: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VsBaseline:
        return cls(data["mean"], data.get("low"), data.get("high"))


@dataclass(frozen=True)
class ConfirmedEntry:
    """One entry the confirmation stage trained again (trial 0: the seed hyps)."""

    trial: int
    params: dict[str, float]
    screening_fitness: float | None
    fitness_by_seed: dict[int, float]
    mean: float | None
    vs_baseline: VsBaseline | None = None
    dropped: bool = False  # racing stopped training it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfirmedEntry:
        vs = data.get("vs_baseline")
        return cls(
            trial=data["trial"],
            params=data["params"],
            screening_fitness=data.get("screening_fitness"),
            fitness_by_seed={int(k): v for k, v in data["fitness_by_seed"].items()},
            mean=data.get("mean"),
            vs_baseline=VsBaseline.from_json(vs) if vs else None,
            dropped=data.get("dropped", False),
        )


@dataclass(frozen=True)
class Confirmation:
    finished: bool
    verdict: Verdict | None  # once finished
    winner: int | None
    baseline: ConfirmedEntry
    candidates: list[ConfirmedEntry]
    noise_floor: float | None
    rank_correlation: float | None
    epochs: int
    seeds: list[int]
    trainings_done: int
    trainings_total: int
    confidence: float = 0.95  # of each candidate's interval: 95% for all k together (Bonferroni)
    rung: int = 0  # 0 the shortest; only the top rung gives a verdict
    promoted: list[int] | None = None  # on a rung below the top: the candidates it sent up
    seed_cap: int = 0  # the most seeds racing may give an entry

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Confirmation:
        return cls(
            finished=data["finished"],
            verdict=data.get("verdict"),
            winner=data.get("winner"),
            baseline=ConfirmedEntry.from_json(data["baseline"]),
            candidates=[ConfirmedEntry.from_json(c) for c in data["candidates"]],
            noise_floor=data.get("noise_floor"),
            rank_correlation=data.get("rank_correlation"),
            epochs=data["epochs"],
            seeds=list(data["seeds"]),
            trainings_done=data["trainings_done"],
            trainings_total=data["trainings_total"],
            confidence=data.get("confidence", 0.95),
            rung=data.get("rung", 0),
            promoted=data.get("promoted"),
            seed_cap=data.get("seed_cap", 0),
        )


@dataclass(frozen=True)
class PlannedEpochs:
    """Training epochs a study plans, by stage (retries of lost trainings come on top)."""

    screening: int
    confirmation: int
    diagnostics: int
    total: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedEpochs:
        return cls(data["screening"], data["confirmation"], data["diagnostics"], data["total"])


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    state: StudyStateName
    stage: Stage | None  # while queued or running
    counts: dict[str, int]
    best: Best | None
    confirmation: Confirmation | None
    error: str | None
    elapsed_s: float | None
    eta_s: float | None
    request: dict[str, Any] = field(default_factory=dict)
    waiting: str | None = None  # why a running study runs no trial now ("waiting for Ray: ...")
    planned_epochs: PlannedEpochs | None = None  # None from a service older than this client
    rungs: list[Confirmation] = field(default_factory=list)  # confirmation rungs below the top, lowest first
    searched: list[str] = field(default_factory=list)  # the keys the study searches
    warnings: list[str] = field(default_factory=list)  # what its numbers cannot support

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "stopped", "failed")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Study:
        return cls(
            id=data["id"],
            name=data["name"],
            state=data["state"],
            stage=data.get("stage"),
            counts=dict(data["counts"]),
            best=Best.from_json(data["best"]) if data.get("best") else None,
            confirmation=Confirmation.from_json(data["confirmation"]) if data.get("confirmation") else None,
            error=data.get("error"),
            elapsed_s=data.get("elapsed_s"),
            eta_s=data.get("eta_s"),
            request=dict(data.get("request") or {}),
            waiting=data.get("waiting"),
            planned_epochs=PlannedEpochs.from_json(data["planned_epochs"]) if data.get("planned_epochs") else None,
            rungs=[Confirmation.from_json(r) for r in data.get("rungs") or []],
            searched=list(data.get("searched") or []),
            warnings=list(data.get("warnings") or []),
        )


@dataclass(frozen=True)
class Trial:
    number: int
    state: TrialStateName
    stage: Stage
    seed: int | None
    confirms: int | None
    params: dict[str, float]
    fitness: float | None
    epochs: list[float]
    duration_s: float | None
    error: str | None
    rung: int | None = None  # on a confirmation training
    train_epochs: int | None = None  # the length it was planned to train
    probe: str | None = None  # on a probe (probe_keys): the move it made from the seed hyps

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        return cls(
            number=data["number"],
            state=data["state"],
            stage=cast(Stage, data.get("stage", "screening")),
            seed=data.get("seed"),
            confirms=data.get("confirms"),
            params=dict(data["params"]),
            fitness=data.get("fitness"),
            epochs=list(data.get("epochs") or []),
            duration_s=data.get("duration_s"),
            error=data.get("error"),
            rung=data.get("rung"),
            train_epochs=data.get("train_epochs"),
            probe=data.get("probe"),
        )


@dataclass(frozen=True)
class ImportResult:
    imported: int
    format: str
    trials: list[int]
