"""A study's answer as a YOLOv5 hyp.yaml and as ultralytics train arguments.

Two sources: the confirmed winner (the default once confirmation has finished: the verdict, the gain
over the seed hyps and its interval are in the header), or screening's top trial (its single
short-training fitness; what a study without confirmation, or ``?source=screening``, exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from hyps import HELD_KEYS, hyp_train_args, render_hyp_yaml
from service.data.weights import is_weights_name
from service.studies.confirmation import BASELINE_TRIAL, ConfirmationResult
from service.studies.store import BestTrial, StudyRecord
from service.studies.tables import utcnow


@dataclass(frozen=True)
class Answer:
    """What an export holds: the params, the epochs of the trainings that judged them, and header
    lines saying where they came from."""

    params: dict[str, Any]
    epochs: int
    provenance: list[str]
    # With AutoBatch: the batch sizes the trainings behind the answer used (empty: not recorded).
    batches: tuple[int, ...] = ()


def _batch(record: StudyRecord, answer: Answer) -> int | float:
    """The batch an export names: the study's, or with AutoBatch the one its trainings used most."""
    if not record.request.auto_batch() or not answer.batches:
        return record.request.batch
    return max(set(answer.batches), key=answer.batches.count)


def _batch_words(record: StudyRecord, answer: Answer) -> str:
    request = record.request
    if not request.auto_batch():
        return f"batch {request.batch}"
    asked = "-1" if request.batch == -1 else f"{request.batch:g} of GPU memory"
    if not answer.batches:
        return f"batch chosen by AutoBatch ({asked}; not recorded)"
    used = sorted(set(answer.batches))
    return f"batch {_batch(record, answer)} (AutoBatch, asked {asked}; these trainings used {used})"


def _setup(record: StudyRecord, epochs: int, batch: str) -> list[str]:
    request, plan = record.request, record.plan
    start = f"fine-tuned from the weights {request.model}" if is_weights_name(request.model) else request.model
    return [
        f"trained: {start} on {request.dataset}, {epochs} epochs, "
        f"imgsz {request.imgsz}, {batch}, SGD, ultralytics backend",
        f"searched: {', '.join(plan.evolve)}",
        f"not searched: the {plan.seed_name} seed's values" + (f", fixed {plan.fixed}" if plan.fixed else ""),
        f"exported {utcnow().strftime('%Y-%m-%d %H:%M:%S')} UTC",
    ]


def screening_answer(
    record: StudyRecord, best: BestTrial, note: str | None = None, batches: tuple[int, ...] = ()
) -> Answer:
    """Screening's top trial: one training at the study's seed; ``note`` says why it is not confirmed;
    ``batches``: the batch size it trained with, when AutoBatch chose it."""
    metrics = ", ".join(f"{k} {v:.5g}" for k, v in best.metrics.items())
    weights = ", ".join(f"{w:g}" for w in record.plan.fitness_weights)
    lines = [
        f"hypevolve study '{record.name}' (id {record.id}, {record.state}): its best trial",
        f"trial {best.trial}, fitness {best.fitness:.6g} (weights [P, R, mAP50, mAP50-95] = [{weights}])",
        f"metrics: {metrics}",
    ]
    if note:
        lines.append(note)
    answer = Answer(dict(best.params), record.request.epochs, lines, batches)
    answer.provenance.extend(_setup(record, record.request.epochs, _batch_words(record, answer)))
    return answer


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _percent(confidence: float) -> str:
    """95%, 97.5%, 98.33%: as many decimals as the level needs, up to two."""
    return f"{round(confidence * 100, 2):g}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _looks(record: StudyRecord, result: ConfirmationResult) -> str:
    """How racing entered the correction, in words (nothing without racing)."""
    looks = result.seed_cap - record.request.confirm_seeds + 1
    if looks <= 1:
        return ""
    return (
        f" x {looks} looks of racing (seeds added one at a time from {record.request.confirm_seeds} "
        f"up to {result.seed_cap})"
    )


def confirmed_answer(record: StudyRecord, result: ConfirmationResult, batches: tuple[int, ...] = ()) -> Answer:
    """The confirmation stage's winner, with the verdict and the numbers behind it; ``batches``: the
    batch sizes its confirmation trainings used, when AutoBatch chose them."""
    assert result.verdict is not None, "confirmation has not finished"
    assert result.winner is not None, "confirmation has not finished"
    entries = {e.trial: e for e in (result.baseline, *result.candidates)}
    winner, baseline = entries[result.winner], result.baseline
    seed_name = record.plan.seed_name
    n_seeds = len(result.seeds)
    if result.verdict == "defaults":
        verdict = [
            f"verdict: defaults. The seed hyps ({seed_name}) had the highest mean fitness over {n_seeds} fresh "
            "seeds: no candidate beat the defaults by more than the noise. These are the seed values."
        ]
    else:
        vs = winner.vs_baseline
        gain = _signed(vs.mean) if vs else "n/a"
        interval = (
            f"[{_signed(vs.low)}, {_signed(vs.high)}]" if vs and vs.low is not None and vs.high is not None else "n/a"
        )
        verdict = [
            f"verdict: {result.verdict}. Trial {winner.trial} gained {gain} fitness over the seed hyps ({seed_name}), "
            f"mean of paired differences over {n_seeds} fresh seeds, {_percent(result.confidence)} t-interval "
            f"{interval} (Bonferroni over {len(result.candidates)} candidates{_looks(record, result)}: 95% for all "
            "together).",
        ]
        if result.verdict == "inconclusive":
            verdict.append(
                "The interval includes 0: no candidate beat the defaults by more than the noise. These hyps had "
                "the highest mean; the seed hyps may do as well."
            )
    by_seed = ", ".join(f"seed {s}: {v:.4f}" for s, v in winner.fitness_by_seed.items())
    lines = [
        f"hypevolve study '{record.name}' (id {record.id}, {record.state}): its confirmed answer",
        *verdict,
        f"confirmed: the seed hyps and {len(result.candidates)} candidate{'s' if len(result.candidates) != 1 else ''} "
        f"each trained {result.epochs} epochs "
        f"on seeds {result.seeds}"
        + (
            f", the top of {record.request.confirm_rungs} rungs ({', '.join(map(str, record.request.rung_epochs()))} "
            "epochs; each promoted its best third on seeds of its own)"
            if result.rung
            else ""
        ),
        f"this entry (trial {winner.trial}): mean fitness {_number(winner.mean)} ({by_seed}); seed hyps mean "
        f"{_number(baseline.mean)}; noise floor (seed hyps' sd across seeds) {_number(result.noise_floor)}",
    ]
    if winner.trial != BASELINE_TRIAL and winner.screening_fitness is not None:
        lines.append(
            f"screening: trial {winner.trial} scored {winner.screening_fitness:.4f} in one "
            f"{record.request.epochs}-epoch training at seed {record.request.seed}"
        )
    answer = Answer(dict(winner.params), result.epochs, lines, batches)
    answer.provenance.extend(_setup(record, result.epochs, _batch_words(record, answer)))
    return answer


def hyp_yaml(record: StudyRecord, answer: Answer) -> str:
    """A complete hyp file for ``python train.py --hyp``: the answer's values for the searched keys,
    the fixed and seed values for the rest, and a header saying where they came from."""
    plan = record.plan
    extras = plan.ultralytics_args_for(answer.params)
    untried = []
    if extras.get("close_mosaic", 0) >= answer.epochs:
        untried = [
            f"close_mosaic {extras['close_mosaic']} >= {answer.epochs} epochs: this trial trained without "
            "mosaic, so the mosaic value below was not tried"
        ]
    header = [
        *answer.provenance,
        f"{', '.join(HELD_KEYS)} have no effect on the ultralytics backend: carried unchanged",
        *([f"ultralytics-only, so in args.yaml and not here: {extras}"] if extras else []),
        *untried,
        "usage: python train.py --hyp hyp.yaml",
    ]
    return render_hyp_yaml(plan.hyp_for(answer.params), header)


def train_args(record: StudyRecord, answer: Answer) -> dict[str, Any]:
    """The answer as ultralytics arguments: the study's setup and the same hyp arguments the trials'
    trainings received (hyps.hyp_train_args)."""
    plan, request = record.plan, record.request
    return {
        "model": request.model,
        "epochs": answer.epochs,
        "imgsz": request.imgsz,
        "batch": _batch(record, answer),
        "seed": request.seed,
        **hyp_train_args(plan.hyp_for(answer.params), plan.ultralytics_args_for(answer.params)),
    }


def args_yaml(record: StudyRecord, answer: Answer) -> str:
    """train_args as a file for ``yolo train cfg=args.yaml data=your/data.yaml``."""
    header = [
        *answer.provenance,
        "box and cls are converted to ultralytics' scale (box 7.5 x box/0.05); YOLOv5-only keys are left out",
        "usage: yolo train cfg=args.yaml data=path/to/data.yaml",
    ]
    comments = "".join(f"# {line}\n" for line in header)
    return comments + "\n" + yaml.safe_dump(train_args(record, answer), sort_keys=False)
