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


def test_a_service_killed_during_confirmation_resumes_it(shapes_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hypevolve.db'}"
    env = {**os.environ, **HEARTBEAT}
    process, server = start_server(tmp_path, shapes_root, url, env)
    study_id = server.post("/studies", json=STUDY).json()["id"]

    def confirming() -> bool:
        study = server.get(f"/studies/{study_id}").json()
        running = [t for t in server.get(f"/studies/{study_id}/trials").json() if t["state"] == "running"]
        return study["stage"] == "confirmation" and any(t["stage"] == "confirmation" for t in running)

    wait_for(confirming, 600, "a confirmation training to run")
    plan_before = server.get(f"/studies/{study_id}").json()["confirmation"]
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    server.close()

    process, server = start_server(tmp_path, shapes_root, url, env)
    try:
        study = run_to_end(server, study_id, timeout=900)
        assert study["state"] == "completed", study
        trials = server.get(f"/studies/{study_id}/trials").json()
        # One or two confirmation trainings ran when the service was killed (parallel 2).
        cut = [t for t in trials if t["error"] == "interrupted: the service stopped while it ran"]
        assert 1 <= len(cut) <= 2, cut
        for trial in cut:
            assert trial["stage"] == "confirmation"
            # Its retry is the same training: same entry, same seed, same params.
            [retry] = [t for t in trials if t["retry_of"] == trial["number"]]
            assert retry["stage"] == "confirmation"
            for key in ("confirms", "seed", "params"):
                assert retry[key] == trial[key], key
        # The restart kept the plan: the same candidates on the same seeds, nothing trained twice.
        after = study["confirmation"]
        # Every confirmation training trained the hyps of the entry it confirms, the retries included.
        planned = {entry["trial"]: entry["params"] for entry in (after["baseline"], *after["candidates"])}
        for trial in trials:
            if trial["stage"] == "confirmation":
                assert trial["params"] == planned[trial["confirms"]], trial
        assert [c["trial"] for c in after["candidates"]] == [c["trial"] for c in plan_before["candidates"]]
        assert study["counts"] == {"running": 0, "waiting": 0, "complete": 7, "pruned": 0, "fail": len(cut)}
        # Every confirmation training, the retry included, trained the confirmation's 2 epochs.
        assert {len(t["epochs"]) for t in trials if t["stage"] == "confirmation" and t["state"] == "complete"} == {2}
        _check_confirmation_counts(trials)
    finally:
        stop_server(process, server)


def _check_confirmation_counts(trials: list[dict[str, Any]]) -> None:
    done = [(t["confirms"], t["seed"]) for t in trials if t["stage"] == "confirmation" and t["state"] == "complete"]
    # Every planned training completed exactly once.
    assert sorted(done) == sorted(set(done))
    assert len(done) == 4
