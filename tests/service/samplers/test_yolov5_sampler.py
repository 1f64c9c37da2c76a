"""YOLOv5's --evolve as an Optuna sampler: its statistics, not just that it runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import optuna
import pytest

from hyps import KeyRange, load_search_space, load_seed_hyp, load_ultralytics_space
from service.samplers.yolov5 import YOLOv5EvolutionSampler, first_probes, mutate, select_parent
from service.studies.plan import StudyPlan, build_plan
from workers.trial_tags import retry_attrs

DRAWS = 20000


def probe_moves(start: dict[str, float], ranges: Mapping[str, KeyRange], keys: list[str]) -> list[dict[str, float]]:
    """The params of a study's first probes, in order."""
    return [probe.params for probe in first_probes(start, ranges, keys)]


def test_parents_are_the_top_five_drawn_by_fitness_above_the_fifth() -> None:
    rng = np.random.RandomState(0)
    fitnesses = [0.1, 0.5, 0.3, 0.9, 0.2, 0.05, 0.7]
    counts = np.bincount([select_parent(fitnesses, rng) for _ in range(DRAWS)], minlength=len(fitnesses))
    # Weights fitness - min(top 5) + 1e-6: 0.7, 0.5, 0.3, 0.1 and ~0 for 0.9, 0.7, 0.5, 0.3, 0.2.
    expected = {3: 0.7 / 1.6, 6: 0.5 / 1.6, 1: 0.3 / 1.6, 2: 0.1 / 1.6}
    for index, share in expected.items():
        assert counts[index] / DRAWS == pytest.approx(share, abs=0.01)
    # Below the top five (0.1, 0.05) never; the fifth (weight 1e-6) practically never.
    assert counts[0] == counts[5] == 0
    assert counts[4] <= 2


def _wide(key: str, gain: float = 1.0) -> KeyRange:
    return KeyRange(key, 0.0, 1000.0, gain)


def test_mutation_changes_about_80_percent_of_keys_by_yolov5s_factor() -> None:
    rng = np.random.RandomState(1)
    ranges = {f"k{i}": _wide(f"k{i}") for i in range(10)}
    ranges["momentum_like"] = _wide("momentum_like", gain=0.3)
    ranges["frozen"] = _wide("frozen", gain=0.0)
    parent = dict.fromkeys(ranges, 10.0)
    factors: dict[str, list[float]] = {k: [] for k in ranges}
    for _ in range(4000):
        child = mutate(parent, ranges, rng)
        for key, value in child.items():
            factors[key].append(value / parent[key])
            # Values keep YOLOv5's 5 decimals.
            assert value == round(value, 5)
    gain_one = np.array([factors[f"k{i}"] for i in range(10)])
    changed = gain_one != 1.0
    # Mutation probability 0.8 per key (slightly more: an all-unchanged draw is redrawn).
    assert changed.mean() == pytest.approx(0.8, abs=0.02)
    # Factor - 1 = gain * randn * U(0,1) * 0.2 on a mutated key: sd 0.2 / sqrt(3) for gain 1.
    assert (gain_one[changed] - 1).std() == pytest.approx(0.2 / np.sqrt(3), rel=0.05)
    assert np.median(gain_one[changed]) == pytest.approx(1.0, abs=0.005)
    assert gain_one.min() >= 0.3
    assert gain_one.max() <= 3.0
    momentum = np.array(factors["momentum_like"])
    assert (momentum[momentum != 1] - 1).std() == pytest.approx(0.3 * 0.2 / np.sqrt(3), rel=0.1)
    # A key YOLOv5 v7.0 froze (gain 0) is searched once a study names it: it moves as with gain 1.
    frozen = np.array(factors["frozen"])
    assert (frozen != 1).mean() == pytest.approx(0.8, abs=0.03)
    assert (frozen[frozen != 1] - 1).std() == pytest.approx(0.2 / np.sqrt(3), rel=0.1)


def test_children_stay_inside_the_bounds() -> None:
    rng = np.random.RandomState(2)
    space = load_search_space()
    ranges = {k: space[k] for k in ("lr0", "momentum", "mosaic", "fliplr", "scale")}
    parent = {"lr0": 0.1, "momentum": 0.98, "mosaic": 1.0, "fliplr": 0.5, "scale": 0.9}
    for _ in range(2000):
        for key, value in mutate(parent, ranges, rng).items():
            assert ranges[key].low <= value <= ranges[key].high


def test_keys_at_zero_move_unlike_yolov5s_multiplicative_step() -> None:
    rng = np.random.RandomState(3)
    space = load_search_space()
    ranges = {k: space[k] for k in ("degrees", "mixup", "shear", "flipud")}
    children = [mutate(dict.fromkeys(ranges, 0.0), ranges, rng) for _ in range(3000)]
    for key, bounds in ranges.items():
        values = np.array([c[key] for c in children])
        assert (values > 0).mean() == pytest.approx(0.8, abs=0.03)
        # The step is |factor - 1| of the key's range: about 8% of it on average when it moves.
        assert values[values > 0].mean() / (bounds.high - bounds.low) == pytest.approx(0.2 * 0.8 * 0.5, rel=0.15)


def test_whole_number_arguments_mutate_to_whole_numbers_inside_their_bounds() -> None:
    rng = np.random.RandomState(4)
    ranges = {"close_mosaic": load_ultralytics_space()["close_mosaic"], "lr0": load_search_space()["lr0"]}
    for start in (0, 5, 10):
        values = [mutate({"close_mosaic": start, "lr0": 0.01}, ranges, rng)["close_mosaic"] for _ in range(500)]
        assert all(isinstance(v, int) and 0 <= v <= 10 for v in values)
        # Rounding keeps many children on the parent's value, but not all of them.
        assert {v for v in values} - {start}
    # Optuna takes the sampler's whole numbers for an integer distribution.
    plan = build_plan("scratch-low", evolve=["lr0", "close_mosaic"])
    study = optuna.create_study(
        direction="maximize", sampler=YOLOv5EvolutionSampler(plan.ranges, plan.start_params(), seed=0)
    )
    study.enqueue_trial(plan.start_params())
    for _ in range(12):
        trial = study.ask(plan.distributions())
        study.tell(trial, trial.params["lr0"] + trial.params["close_mosaic"] / 100)
    assert study.trials[0].params["close_mosaic"] == 0
    assert all(isinstance(t.params["close_mosaic"], int) for t in study.trials)
    assert len({t.params["close_mosaic"] for t in study.trials}) > 1


def test_first_children_mutate_the_seed_then_completed_trials_are_the_parents() -> None:
    plan = build_plan("scratch-low", evolve=["lr0", "momentum", "mosaic"])
    sampler = YOLOv5EvolutionSampler(plan.ranges, plan.start_params(), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(plan.start_params())
    seed = load_seed_hyp("scratch-low")

    trial0 = study.ask(plan.distributions())
    assert trial0.params == plan.start_params()
    # With nothing completed yet, a running seed trial's sibling is a mutation of the seed.
    trial1 = study.ask(plan.distributions())
    assert trial1.params != trial0.params
    assert all(0.3 * seed[k] <= v <= 3.0 * seed[k] for k, v in trial1.params.items())
    study.tell(trial0, 0.1)
    study.tell(trial1, 0.0)

    # A toy objective with its optimum at lr0 = 0.03: selection plus mutation must climb towards it.
    def objective(trial: optuna.Trial) -> float:
        lr0 = trial.suggest_float("lr0", 1e-5, 0.1, log=True)
        trial.suggest_float("momentum", 0.6, 0.98)
        trial.suggest_float("mosaic", 0.0, 1.0)
        return -abs(np.log(lr0 / 0.03))

    study.optimize(objective, n_trials=60)
    assert study.best_value > -abs(np.log(0.01 / 0.03)) / 3


def test_parent_draw_survives_non_finite_and_tied_fitness() -> None:
    rng = np.random.RandomState(0)
    # A non-finite fitness counts as the lowest; ties and all-equal values still give a valid draw.
    assert select_parent([float("inf"), 0.5, 0.1, float("nan")], rng, parents=1) == 1
    assert all(select_parent([0.2, 0.2, 0.2], rng) in (0, 1, 2) for _ in range(20))
    assert select_parent([float("nan")] * 3, rng) in (0, 1, 2)


def test_probes_move_each_key_up_then_down_clipped_and_never_twice() -> None:
    space = load_search_space()
    ranges = {k: space[k] for k in ("box", "cls", "momentum", "degrees")}
    start = {"box": 0.05, "cls": 0.5, "momentum": 0.937, "degrees": 0.0}
    moves = probe_moves(start, ranges, ["cls", "box", "momentum", "degrees"])
    moved = [{k: v for k, v in m.items() if v != start[k]} for m in moves]
    assert moved == [
        {"cls": 1.0},
        {"cls": 0.25},
        {"box": 0.1},
        {"box": 0.025},
        {"momentum": ranges["momentum"].high},  # x2 clipped to the top
        {"momentum": ranges["momentum"].low},  # x0.5 clipped to the bottom
        {"degrees": 0.25 * ranges["degrees"].high},  # at 0: up a quarter of the range; down is no move
    ]
    # A move that clips back onto the seed value is no probe.
    assert probe_moves({"box": 0.2}, {"box": KeyRange("box", 0.02, 0.2, 1.0)}, ["box"]) == [{"box": 0.1}]
    # Whole-number keys stay whole.
    close = {"close_mosaic": load_ultralytics_space()["close_mosaic"]}
    assert [m["close_mosaic"] for m in probe_moves({"close_mosaic": 0}, close, ["close_mosaic"])] == [3]
    assert [m["close_mosaic"] for m in probe_moves({"close_mosaic": 10}, close, ["close_mosaic"])] == [5]


def _probing_study(
    plan_keys: list[str], probe_keys: list[str], storage: str | None = None, seed: int = 0
) -> tuple[StudyPlan, optuna.Study]:
    plan = build_plan("scratch-low", evolve=plan_keys)
    sampler = YOLOv5EvolutionSampler(plan.ranges, plan.start_params(), seed=seed, probe_keys=probe_keys)
    study = optuna.create_study(
        direction="maximize", sampler=sampler, storage=storage, study_name="probes", load_if_exists=True
    )
    return plan, study


def test_probes_come_after_the_seed_trial_in_order_then_evolution() -> None:
    plan, study = _probing_study(["lr0", "box", "cls"], ["box", "cls"])
    study.enqueue_trial(plan.start_params())
    expected = probe_moves(plan.start_params(), plan.ranges, ["box", "cls"])
    assert len(expected) == 4
    trials = [study.ask(plan.distributions()) for _ in range(7)]  # all running at once, as parallel workers ask
    assert trials[0].params == plan.start_params()
    assert [t.params for t in trials[1:5]] == expected
    # Then mutations of the seed: not the seed, not a probe.
    for trial in trials[5:]:
        assert trial.params != plan.start_params()
        assert trial.params not in expected


def test_a_resumed_study_goes_on_with_the_next_probe_and_a_retry_is_not_probed_again(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'probes.db'}"
    plan, study = _probing_study(["lr0", "box", "cls"], ["box", "cls"], storage)
    expected = probe_moves(plan.start_params(), plan.ranges, ["box", "cls"])
    study.enqueue_trial(plan.start_params())
    seed_trial, first, second = (study.ask(plan.distributions()) for _ in range(3))
    assert [first.params, second.params] == expected[:2]
    study.tell(seed_trial, 0.5)
    study.tell(first, 0.6)
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial(second.params, user_attrs=retry_attrs(study.trials[second.number], 1))  # the runner's retry

    # A new process: the sampler rebuilt (with another seed, as the runner offsets it) on the same storage.
    plan, study = _probing_study(["lr0", "box", "cls"], ["box", "cls"], storage, seed=3)
    retry, third, fourth, evolved = (study.ask(plan.distributions()) for _ in range(4))
    assert retry.params == expected[1]
    # The retry is the same probe, tagged as one.
    assert study.trials[retry.number].user_attrs["probe"] == study.trials[second.number].user_attrs["probe"]
    assert [third.params, fourth.params] == expected[2:]
    assert evolved.params not in expected
    # Every probe was asked exactly once besides the retry.
    asked = [t.params for t in study.trials]
    assert [asked.count(p) for p in expected] == [1, 2, 1, 1]


def _peaked(cls: float, box: float) -> Callable[[dict[str, float]], float]:
    """A stand-in fitness with a known best at ``cls`` and ``box``."""
    return lambda params: -abs(np.log2(params["cls"] / cls)) - abs(np.log2(params["box"] / box))


def _probe_one_at_a_time(fitness: Callable[[dict[str, float]], float], trials: int) -> list[tuple[dict, str | None]]:
    """Each trial's move from the seed hyps and its probe tag, as stored, in a study probing box and cls
    that asks and ends one trial at a time (parallel 1)."""
    plan, study = _probing_study(["lr0", "box", "cls"], ["box", "cls"])
    start = plan.start_params()
    assert (start["box"], start["cls"]) == (0.05, 0.5)
    study.enqueue_trial(start)
    asked = []
    for _ in range(trials):
        trial = study.ask(plan.distributions())
        study.tell(trial, fitness(trial.params))
        moved = {k: v for k, v in trial.params.items() if v != start[k]}
        asked.append((moved, study.trials[trial.number].user_attrs.get("probe")))
    return asked


def test_probes_combine_the_first_winners_then_go_on_along_each_winning_direction_and_combine_the_best() -> None:
    asked = _probe_one_at_a_time(_peaked(cls=2.0, box=0.025), 11)  # best at x4 and x0.5 of scratch-low's
    assert asked[:10] == [
        ({}, None),  # the seed trial
        ({"box": 0.1}, "box 0.05 -> 0.1"),
        ({"box": 0.025}, "box 0.05 -> 0.025"),  # beats the seed: box goes on down
        ({"cls": 1.0}, "cls 0.5 -> 1"),  # beats the seed: cls goes on up
        ({"cls": 0.25}, "cls 0.5 -> 0.25"),
        ({"box": 0.025, "cls": 1.0}, "box 0.05 -> 0.025, cls 0.5 -> 1"),  # both first winners, combined
        ({"box": 0.02}, "box 0.05 -> 0.02"),  # x0.25 clipped to box's low end; worse than x0.5: box's line ends
        ({"cls": 2.0}, "cls 0.5 -> 2"),  # better than x2: on
        ({"cls": 4.0}, "cls 0.5 -> 4"),  # x8, worse than x4: cls's line ends
        ({"box": 0.025, "cls": 2.0}, "box 0.05 -> 0.025, cls 0.5 -> 2"),  # each key's best, combined
    ]
    # Then evolution: untagged, and none of the probes.
    evolved, tag = asked[10]
    assert tag is None
    assert evolved not in [moved for moved, _ in asked[:10]]


def test_a_final_combination_equal_to_the_first_is_not_trained_again() -> None:
    asked = _probe_one_at_a_time(_peaked(cls=1.0, box=0.025), 9)  # both lines end at their first move
    tags = [tag for _, tag in asked]
    assert tags[5:8] == ["box 0.05 -> 0.025, cls 0.5 -> 1", "box 0.05 -> 0.02", "cls 0.5 -> 2"]
    assert tags[8] is None  # evolution, not the same combination again
    assert tags.count("box 0.05 -> 0.025, cls 0.5 -> 1") == 1


def test_one_first_winner_is_no_combination() -> None:
    asked = _probe_one_at_a_time(lambda params: -abs(np.log2(params["cls"])), 7)  # only cls x2 beats the seed
    tags = [tag for _, tag in asked]
    assert tags[5:7] == ["cls 0.5 -> 2", None]  # cls's line, then (x4 worse) evolution


def test_no_line_goes_on_where_no_first_probe_beat_the_seed_trial() -> None:
    plan, study = _probing_study(["lr0", "box", "cls"], ["box", "cls"])
    study.enqueue_trial(plan.start_params())
    tags = []
    for _ in range(8):
        trial = study.ask(plan.distributions())
        study.tell(trial, 1.0 if trial.params == plan.start_params() else 0.5)
        tags.append(study.trials[trial.number].user_attrs.get("probe"))
    assert tags[1:5] == ["box 0.05 -> 0.1", "box 0.05 -> 0.025", "cls 0.5 -> 1", "cls 0.5 -> 0.25"]
    assert tags[5:] == [None] * 3
