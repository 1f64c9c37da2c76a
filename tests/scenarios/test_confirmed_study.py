"""A study with a confirmation stage through a real `hypevolve serve`: real trainings, the verdict in
the API and in hyp.yaml agreeing with the trials' own values, and a service killed mid-confirmation
resuming it."""

from __future__ import annotations

import io
import os
import signal
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml
from PIL import Image

from hyps import HYP_KEYS, load_seed_hyp
from tests.helpers import run_to_end, start_server, stop_server, wait_for

# Real trainings in two stages: minutes each on 2 cores, more when the machine is shared.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STUDY = {"dataset": "shapes/data.yaml", "imgsz": 64, "batch": 16, "epochs": 1, "n_trials": 3, "parallel": 2,
         "confirm_top_k": 1, "confirm_seeds": 2, "confirm_epochs": 2}  # fmt: skip
HEARTBEAT = {"HYPEVOLVE_HEARTBEAT_INTERVAL_S": "1", "HYPEVOLVE_HEARTBEAT_GRACE_S": "8"}


def _check_confirmation(server: httpx.Client, study: dict[str, Any]) -> None:
    """What must hold of any finished study with STUDY's confirmation settings."""
    trials = server.get(f"/studies/{study['id']}/trials").json()
    screening = [t for t in trials if t["stage"] == "screening"]
    confirming = [t for t in trials if t["stage"] == "confirmation" and t["state"] == "complete"]
    # 3 screening trials at the study's seed; the baseline and 1 candidate, each on 2 fresh seeds, 2 epochs.
    assert len([t for t in screening if t["state"] == "complete"]) == 3
    assert all(t["seed"] == 0 for t in screening)
    assert len(confirming) == 4
    assert {t["seed"] for t in confirming} == {1, 2}
    assert all(len(t["epochs"]) == 2 for t in confirming)

    confirmation = study["confirmation"]
    assert confirmation["finished"]
    assert (confirmation["epochs"], confirmation["seeds"], confirmation["trainings_done"]) == (2, [1, 2], 4)
    baseline, [candidate] = confirmation["baseline"], confirmation["candidates"]
    assert baseline["trial"] == 0
    # The candidate is screening's best trial other than the seed hyps.
    others = [t for t in screening if t["state"] == "complete" and t["params"] != screening[0]["params"]]
    assert candidate["trial"] == max(others, key=lambda t: (t["fitness"], -t["number"]))["number"]
    # Each entry's numbers are its trainings' own fitness, seed by seed.
    for entry in (baseline, candidate):
        own = {str(t["seed"]): t["fitness"] for t in confirming if t["confirms"] == entry["trial"]}
        assert entry["fitness_by_seed"] == own
        assert entry["mean"] == pytest.approx(statistics.fmean(own.values()))
        assert all(t["params"] == entry["params"] for t in confirming if t["confirms"] == entry["trial"])
    differences = [candidate["fitness_by_seed"][s] - baseline["fitness_by_seed"][s] for s in ("1", "2")]
    assert candidate["vs_baseline"]["mean"] == pytest.approx(statistics.fmean(differences))
    assert confirmation["noise_floor"] == pytest.approx(statistics.stdev(baseline["fitness_by_seed"].values()))
    winner = candidate if candidate["mean"] > baseline["mean"] else baseline
    assert confirmation["winner"] == winner["trial"]
    expected = (
        "defaults" if winner is baseline else "improved" if candidate["vs_baseline"]["low"] > 0 else "inconclusive"
    )
    assert confirmation["verdict"] == expected

    text = server.get(f"/studies/{study['id']}/hyp.yaml").text
    hyp = yaml.safe_load(text)
    assert list(hyp) == list(HYP_KEYS)
    # hyp.yaml is the winner's: its params for the searched keys, the seed file for the rest.
    assert {k: hyp[k] for k in winner["params"]} == winner["params"]
    seed = load_seed_hyp("scratch-low")
    assert {k: hyp[k] for k in HYP_KEYS if k not in winner["params"]} == {
        k: seed[k] for k in HYP_KEYS if k not in winner["params"]
    }
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert f"verdict: {expected}." in header
    assert f"mean fitness {winner['mean']:.4f}" in header
    assert "each trained 2 epochs on seeds [1, 2]" in header
    if expected != "improved":
        assert "no candidate beat the defaults by more than the noise" in header
    args = yaml.safe_load(server.get(f"/studies/{study['id']}/args.yaml").text)
    assert args["epochs"] == 2
    assert args["lr0"] == winner["params"]["lr0"]

    # ?source=screening keeps the top single screening trial's export.
    best = study["best"]
    screened = yaml.safe_load(server.get(f"/studies/{study['id']}/hyp.yaml", params={"source": "screening"}).text)
    assert {k: screened[k] for k in best["params"]} == best["params"]
    assert best["trial"] in {t["number"] for t in screening}


def test_a_study_confirms_its_best_candidate_and_exports_the_verdict(sqlite_server: httpx.Client) -> None:
    created = sqlite_server.post("/studies", json=STUDY)
    assert created.status_code == 201, created.text
    study = run_to_end(sqlite_server, created.json()["id"], timeout=900)
    assert study["state"] == "completed", study
    assert study["stage"] is None
    assert study["counts"] == {"running": 0, "waiting": 0, "complete": 7, "pruned": 0, "fail": 0}
    _check_confirmation(sqlite_server, study)
    _check_diagnostics(sqlite_server, study)


def _check_diagnostics(server: httpx.Client, study: dict[str, Any]) -> None:
    """The winner's (and, if it is not the seed hyps, the baseline's) training on the first
    confirmation seed drew ultralytics' plots; the API lists them and serves only what it lists."""
    trials = server.get(f"/studies/{study['id']}/trials").json()
    winner = study["confirmation"]["winner"]
    entries = {"winner": winner} if winner == 0 else {"winner": winner, "baseline": 0}
    drew = {
        entry: next(
            t["number"] for t in trials if t["stage"] == "confirmation" and t["confirms"] == trial and t["seed"] == 1
        )
        for entry, trial in entries.items()
    }
    listed = server.get(f"/studies/{study['id']}/artifacts").json()
    assert {a["entry"]: a["trial"] for a in listed} == drew
    names = {a["name"] for a in listed}
    for entry in entries:
        for file in ("results.png", "BoxPR_curve.png", "confusion_matrix.png", "train_batch0.jpg", "labels.jpg",
                     "results.csv"):  # fmt: skip
            assert f"{entry}/{file}" in names, (file, sorted(names))
    # The training's weights: a model ultralytics loads, trained the confirmation's epochs.
    assert "winner/last.pt" in names
    weights = server.get(f"/studies/{study['id']}/artifacts/winner/last.pt")
    assert weights.headers["content-type"] == "application/octet-stream"
    checkpoint = torch.load(io.BytesIO(weights.content), map_location="cpu", weights_only=False)
    assert checkpoint["model"] is not None
    # The winner's training on the first confirmation seed, for the confirmation's epochs.
    trained = checkpoint["train_args"]
    assert (trained["epochs"], trained["seed"]) == (study["confirmation"]["epochs"], 1)
    confirmation = study["confirmation"]
    entries = {e["trial"]: e for e in (confirmation["baseline"], *confirmation["candidates"])}
    assert trained["lr0"] == pytest.approx(entries[winner]["params"]["lr0"])
    png = server.get(f"/studies/{study['id']}/artifacts/winner/confusion_matrix.png")
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size[0] > 100
    csv = server.get(f"/studies/{study['id']}/artifacts/winner/results.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 1 + study["confirmation"]["epochs"]  # a header, a row an epoch
    # Nothing but the listed names: not the training's data.yaml, not a path out of the folder.
    for name in ("winner/data.yaml", "winner/../../hypevolve.db", "screening/results.png"):
        assert server.get(f"/studies/{study['id']}/artifacts/{name}").status_code == 404


def test_confirmation_off_exports_the_top_screening_trial(sqlite_server: httpx.Client) -> None:
    study = run_to_end(
        sqlite_server,
        sqlite_server.post("/studies", json={**STUDY, "confirm_top_k": 0, "diagnostics": False}).json()["id"],
        timeout=900,
    )
    assert study["state"] == "completed"
    assert study["confirmation"] is None
    assert study["counts"]["complete"] == 3
    text = sqlite_server.get(f"/studies/{study['id']}/hyp.yaml").text
    assert f"trial {study['best']['trial']}" in text.splitlines()[1]
    assert "verdict" not in text


# Two rungs: the lowest at 1 epoch (3 / 3) on seeds 3 and 4 trains every candidate screening has (at most
# 3 x confirm_top_k), the top at 3 epochs on seeds 1 and 2 trains the one it promotes.
RUNGS = {**STUDY, "confirm_rungs": 2, "confirm_epochs": 3}


def test_a_service_killed_during_a_rung_resumes_it_and_climbs_to_the_verdict(
    small_shapes_root: Path, tmp_path: Path
) -> None:
    # The service's mechanics (what each rung trains, the resume, the verdict against the trials' own
    # values), not how much a training learns: the small data set.
    url = f"sqlite:///{tmp_path / 'hypevolve.db'}"
    env = {**os.environ, **HEARTBEAT}
    process, server = start_server(tmp_path, small_shapes_root, url, env)
    study_id = server.post("/studies", json=RUNGS).json()["id"]

    def in_the_lowest_rung() -> bool:
        study = server.get(f"/studies/{study_id}").json()
        running = [t for t in server.get(f"/studies/{study_id}/trials").json() if t["state"] == "running"]
        return bool(study["rungs"]) and any(t["stage"] == "confirmation" for t in running)

    wait_for(in_the_lowest_rung, 600, "a training of the lowest rung to run")
    lowest_before = server.get(f"/studies/{study_id}").json()["rungs"][0]
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    server.close()

    process, server = start_server(tmp_path, small_shapes_root, url, env)
    try:
        study = run_to_end(server, study_id, timeout=900)
        assert study["state"] == "completed", study
        trials = server.get(f"/studies/{study_id}/trials").json()
        # One or two trainings of the lowest rung ran when the service was killed (parallel 2).
        cut = [t for t in trials if t["error"] == "interrupted: the service stopped while it ran"]
        assert 1 <= len(cut) <= 2, cut
        for trial in cut:
            assert (trial["stage"], trial["rung"], trial["train_epochs"]) == ("confirmation", 0, 1)
            [retry] = [t for t in trials if t["retry_of"] == trial["number"]]
            for key in ("stage", "rung", "train_epochs", "confirms", "seed", "params"):
                assert retry[key] == trial[key], key
        [lowest] = study["rungs"]
        # The restart kept the lowest rung's plan.
        assert [c["trial"] for c in lowest["candidates"]] == [c["trial"] for c in lowest_before["candidates"]]
        _check_rungs(server, study, trials)
        assert study["counts"]["fail"] == len(cut)
    finally:
        stop_server(process, server)


def _check_rungs(server: httpx.Client, study: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """What must hold of a finished study with RUNGS's settings, against the trials' own values."""
    screening = [t for t in trials if t["stage"] == "screening" and t["state"] == "complete"]
    assert len(screening) == 3
    done = [t for t in trials if t["stage"] == "confirmation" and t["state"] == "complete"]
    # Every planned training completed exactly once.
    keys = [(t["rung"], t["confirms"], t["seed"]) for t in done]
    assert sorted(keys) == sorted(set(keys))
    [lowest], top = study["rungs"], study["confirmation"]
    assert (lowest["rung"], lowest["epochs"], lowest["seeds"], lowest["verdict"]) == (0, 1, [3, 4], None)
    assert (top["rung"], top["epochs"], top["seeds"]) == (1, 3, [1, 2])
    # The lowest rung trained screening's candidates other than the seed hyps (distinct ones; at most 3).
    others = {t["number"] for t in screening if t["params"] != screening[0]["params"]}
    assert {c["trial"] for c in lowest["candidates"]} == others
    for rung, entry_numbers, seeds, epochs in (
        (0, [0, *others], (3, 4), 1),
        (1, [0, *(c["trial"] for c in top["candidates"])], (1, 2), 3),
    ):
        trained = [t for t in done if t["rung"] == rung]
        assert sorted((t["confirms"], t["seed"]) for t in trained) == sorted(
            (n, s) for n in entry_numbers for s in seeds
        )
        assert {len(t["epochs"]) for t in trained} == {epochs}
        assert {t["train_epochs"] for t in trained} == {epochs}

    def gains(rung: int) -> dict[int, float]:
        own = {(t["confirms"], t["seed"]): t["fitness"] for t in done if t["rung"] == rung}
        base = {s: v for (n, s), v in own.items() if n == 0}
        return {
            n: statistics.fmean(v - base[s] for (m, s), v in own.items() if m == n)
            for n in {n for n, _ in own if n != 0}
        }

    # The lowest rung promoted its best mean paired gain over the seed hyps (ties: screening's order).
    low_gains = gains(0)
    best = max(low_gains.values())
    assert lowest["promoted"] == [c["trial"] for c in top["candidates"]]
    [promoted] = lowest["promoted"]
    assert low_gains[promoted] == pytest.approx(best)
    # The verdict is the top rung's, from its own trainings.
    [candidate] = top["candidates"]
    assert candidate["vs_baseline"]["mean"] == pytest.approx(gains(1)[candidate["trial"]])
    winner = candidate if candidate["mean"] > top["baseline"]["mean"] else top["baseline"]
    assert top["winner"] == winner["trial"]
    hyp = yaml.safe_load(server.get(f"/studies/{study['id']}/hyp.yaml").text)
    assert {k: hyp[k] for k in winner["params"]} == winner["params"]
    header = server.get(f"/studies/{study['id']}/hyp.yaml").text
    assert "each trained 3 epochs on seeds [1, 2], the top of 2 rungs (1, 3 epochs" in header
    assert f"verdict: {top['verdict']}." in header
    # The plots are the top rung's: its first seed.
    listed = server.get(f"/studies/{study['id']}/artifacts").json()
    drew = {t["number"] for t in done if t["rung"] == 1 and t["seed"] == 1}
    assert listed
    assert {a["trial"] for a in listed} <= drew
