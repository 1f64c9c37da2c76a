"""`hypevolve study ...` and the Python client against a real `hypevolve serve`: start and watch a
study to its end, downloads equal to the API's, and every kind of error with its message and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hypevolve_client import Client, ClientError, ServiceUnreachable
from hypevolve_client.cli import parse_fields, status_line, trial_line, verdict_lines
from hypevolve_client.models import Study, Trial
from tests.conftest import LiveServer, make_settings
from tests.helpers import free_port

HYPEVOLVE = str(Path(sys.executable).parent / "hypevolve")


def cli(url: str, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPEVOLVE_URL": url}
    env.pop("HYPEVOLVE_API_KEY", None)
    if key is not None:
        env["HYPEVOLVE_API_KEY"] = key
    return subprocess.run([HYPEVOLVE, "study", *args], env=env, capture_output=True, text=True, timeout=900)


def test_fields_parse_as_users_type_them(tmp_path: Path) -> None:
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text("lr0: 0.02\n")
    fields = parse_fields(
        ["epochs=3", "evolve=lr0,momentum", "fixed.mosaic=0.5", "bounds.lr0=0.001,0.05", f"seed_hyp={hyp}",
         "name=my-study", "gpus_per_trial=0.5", "fitness_weights=0,0,0.1,0.9", "seed_hyp_name=scratch-low",
         "fixed.lr0=1e-3", "diagnostics=false", "probe_keys=cls", "confirm_probe_keys="]
    )  # fmt: skip
    assert fields == {
        "epochs": 3,
        "evolve": ["lr0", "momentum"],
        # 1e-3 is a number (YAML alone would keep it a string, which the service refuses).
        "fixed": {"mosaic": 0.5, "lr0": 0.001},
        "diagnostics": False,
        "probe_keys": ["cls"],  # a list field with one key is still a list
        "confirm_probe_keys": [],  # and with none, the empty list (not null: the default)
        "bounds": {"lr0": [0.001, 0.05]},
        "seed_hyp": "lr0: 0.02\n",
        "name": "my-study",
        "gpus_per_trial": 0.5,
        "fitness_weights": [0, 0, 0.1, 0.9],
        "seed_hyp_name": "scratch-low",  # an unknown field is sent as it is: the service refuses it
    }


def test_the_status_line_says_what_a_study_waits_for() -> None:
    answer = {"id": 1, "name": "s", "state": "running", "stage": "screening", "request": {"n_trials": 4},
              "counts": {"complete": 1, "running": 0, "fail": 2}, "best": None, "confirmation": None,
              "error": None, "elapsed_s": 60.0, "eta_s": None}  # fmt: skip
    assert "waiting" not in status_line(Study.from_json(answer), clock=False)
    waiting = Study.from_json({**answer, "waiting": "waiting for Ray: LocalRayletDiedError"})
    line = status_line(waiting, clock=False)
    assert line.startswith("screening    screening 1/4  running 0  failed 2")
    assert line.endswith("(waiting for Ray: LocalRayletDiedError)")


@pytest.mark.slow
def test_start_watch_and_download_through_the_cli(sqlite_server: httpx.Client, tmp_path: Path) -> None:
    url = str(sqlite_server.base_url)
    fields = [
        "epochs=1",
        "imgsz=64",
        "n_trials=2",
        "parallel=2",
        "confirm_top_k=0",
        "diagnostics=false",
        "name=cli-study",
    ]
    run = cli(url, "start", "shapes/data.yaml", *fields, "--watch")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("study ")
    assert "'cli-study' started: 2 trials x 1 epochs of yolov5n.yaml at 64 px" in lines[0]
    # What it will cost, said before it is spent: 2 trials x 1 epoch, no confirmation, no diagnostics.
    assert lines[1] == (
        "it plans 2 training epochs: screening 2, confirmation 0, diagnostics 0 (at most; retries come on top)"
    )
    study_id = int(lines[0].split()[1])
    # Not a terminal: plain lines, one per trial as it ended, and the final state.
    assert sum(line.startswith("trial ") for line in lines) == 2
    assert f"study {study_id} 'cli-study' completed" in lines

    out = tmp_path / "hyp.yaml"
    assert cli(url, "hyp", str(study_id), "-o", str(out)).returncode == 0
    api_text = sqlite_server.get(f"/studies/{study_id}/hyp.yaml").text

    def undated(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("# exported ")]

    assert undated(out.read_text()) == undated(api_text)
    args = cli(url, "args", str(study_id))
    assert undated(args.stdout) == undated(sqlite_server.get(f"/studies/{study_id}/args.yaml").text)

    listed = cli(url, "list")
    assert listed.returncode == 0
    assert any(line.split()[:3] == [str(study_id), "cli-study", "completed"] for line in listed.stdout.splitlines())
    trials = cli(url, "trials", str(study_id))
    assert [line.split()[1] for line in trials.stdout.splitlines()] == ["0", "1"]
    # watch of a finished study ends at once, with its exit code.
    assert cli(url, "watch", str(study_id)).returncode == 0

    # The Python client sees the same study, typed.
    with Client(url) as client:
        study = client.study(study_id)
        assert (study.name, study.state, study.counts["complete"]) == ("cli-study", "completed", 2)
        assert study.best is not None
        assert study.best.fitness == max(t.fitness or 0.0 for t in client.trials(study_id))
        assert undated(client.hyp_yaml(study_id)) == undated(api_text)


@pytest.mark.slow
def test_a_stopped_study_watches_to_a_nonzero_exit(sqlite_server: httpx.Client) -> None:
    url = str(sqlite_server.base_url)
    started = cli(
        url, "start", "shapes/data.yaml", "epochs=30", "imgsz=64", "n_trials=3", "confirm_top_k=0", "diagnostics=false"
    )
    study_id = int(started.stdout.split()[1])
    stopped = cli(url, "stop", str(study_id))
    assert stopped.returncode == 0
    assert stopped.stdout.strip().endswith("stopped")
    assert cli(url, "watch", str(study_id)).returncode == 1


def test_starting_a_study_waits_for_the_data_set_check_longer_than_other_calls(sqlite_server: httpx.Client) -> None:
    # POST /studies reads a new data set's labels before it answers (about 50 s per 100,000 images):
    # a client whose other calls give up after 10 ms still gets its study, not a timeout.
    with Client(str(sqlite_server.base_url), timeout=0.01) as client:
        study = client.start_study("shapes/data.yaml", epochs=1, imgsz=64, n_trials=1, confirm_top_k=0)
    assert sqlite_server.get(f"/studies/{study.id}").json()["id"] == study.id
    assert sqlite_server.delete(f"/studies/{study.id}").status_code == 204


def test_errors_print_the_service_message_and_exit_2(api: httpx.Client) -> None:
    url = str(api.base_url)
    bad = cli(url, "start", "shapes/data.yaml", "epochs=0")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: 422: epochs: Input should be greater than or equal to 1 (got 0)"
    missing = cli(url, "show", "999")
    assert (missing.returncode, missing.stderr.strip()) == (2, "error: 404: study 999 does not exist")
    malformed = cli(url, "start", "shapes/data.yaml", "epochs")
    assert (malformed.returncode, malformed.stderr.strip()) == (2, "error: expected field=value, got 'epochs'")


def test_no_service_gets_one_line_saying_how_to_start_one() -> None:
    run = cli(f"http://127.0.0.1:{free_port()}", "list")
    assert run.returncode == 3
    [line] = run.stderr.splitlines()
    assert "no hypevolve service answers at http://127.0.0.1:" in line
    assert "start one with `hypevolve serve`" in line
    with Client(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(ServiceUnreachable):
        client.studies()


def test_a_wrong_key_is_refused_with_the_service_message(tmp_path: Path, data_root: Path) -> None:
    settings = make_settings(tmp_path / "home", data_root, API_KEY="right-key")
    with LiveServer(settings) as api:
        url = str(api.base_url)
        run = cli(url, "list", key="wrong-key")
        assert run.returncode == 2
        assert run.stderr.startswith("error: 401: ")
        assert cli(url, "list", key="right-key").returncode == 0
        with Client(url, api_key="wrong-key") as client, pytest.raises(ClientError) as info:
            client.studies()
        assert info.value.status == 401


def test_the_client_imports_no_server_stack() -> None:
    heavy = "{'torch', 'ray', 'fastapi', 'service', 'optuna'}"
    code = f"import sys, hypevolve_client; print(sorted({heavy} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"


def test_help_reads_as_plain_text() -> None:
    for args in ([], ["study"], ["study", "start"]):
        run = subprocess.run([HYPEVOLVE, *args, "--help"], capture_output=True, text=True, timeout=60, check=True)
        assert "``" not in run.stdout
        assert run.stdout.startswith("usage: hypevolve")


def test_each_trial_line_names_its_stage() -> None:
    def line(stage: str, confirms: int | None) -> str:
        data = {"number": 7, "state": "complete", "stage": stage, "seed": 1, "confirms": confirms, "params": {},
                "fitness": 0.5, "epochs": [0.5], "duration_s": 1.0, "error": None}  # fmt: skip
        return trial_line(Trial.from_json(data))

    assert "screening" in line("screening", None)
    assert "confirms trial 3" in line("confirmation", 3)
    # A diagnostics training is not a screening trial: it is screening's best trained again with plots.
    diagnostics = line("diagnostics", 3)
    assert "screening" not in diagnostics
    assert "plots of trial 3" in diagnostics


def test_a_probe_trial_line_says_the_move_it_made() -> None:
    data = {"number": 2, "state": "complete", "stage": "screening", "seed": 1, "confirms": None, "params": {},
            "fitness": 0.5, "epochs": [0.5], "duration_s": 1.0, "error": None, "probe": "cls 0.5 -> 1"}  # fmt: skip
    assert trial_line(Trial.from_json(data)).endswith("probe cls 0.5 -> 1")
    assert "probe" not in trial_line(Trial.from_json({**data, "probe": None}))


def test_the_verdict_lines_say_the_intervals_confidence() -> None:
    entry = {"trial": 0, "params": {}, "screening_fitness": None, "fitness_by_seed": {"1": 0.2}, "mean": 0.2}
    candidate = {**entry, "trial": 4, "vs_baseline": {"mean": 0.01, "low": -0.02, "high": 0.04}}
    confirmation = {"finished": True, "verdict": "inconclusive", "winner": 4, "baseline": entry,
                    "candidates": [candidate, {**candidate, "trial": 5}, {**candidate, "trial": 6}],
                    "noise_floor": 0.01, "rank_correlation": None, "epochs": 9, "seeds": [1, 2, 3],
                    "trainings_done": 12, "trainings_total": 12, "confidence": 1 - 0.05 / 3}  # fmt: skip
    study = Study.from_json({"id": 1, "name": "s", "state": "completed", "stage": None, "counts": {}, "best": None,
                             "confirmation": confirmation, "error": None, "elapsed_s": 1.0, "eta_s": 0.0})  # fmt: skip
    lines = "\n".join(verdict_lines(study))
    # Three candidates: each interval at 98.33%, so that the three hold together at 95%.
    assert "intervals at 98.33%: 95% for all 3 candidates together (Bonferroni)" in lines
    assert "trial 4" in lines
    assert "[-0.0200, +0.0400]" in lines
    assert "verdict: inconclusive, winner trial 4" in lines


def test_the_lines_follow_a_study_up_its_rungs() -> None:
    entry = {"trial": 0, "params": {}, "screening_fitness": None, "fitness_by_seed": {"3": 0.2}, "mean": 0.2}
    lowest = {"finished": True, "verdict": None, "winner": None, "baseline": entry,
              "candidates": [{**entry, "trial": 4, "vs_baseline": {"mean": -0.01, "low": None, "high": None}},
                             {**entry, "trial": 5, "vs_baseline": {"mean": 0.03, "low": None, "high": None}}],
              "noise_floor": None, "rank_correlation": None, "epochs": 3, "seeds": [3, 4], "trainings_done": 6,
              "trainings_total": 6, "rung": 0, "promoted": [5]}  # fmt: skip
    top = {**lowest, "finished": False, "candidates": lowest["candidates"][1:], "epochs": 9, "seeds": [1, 2],
           "trainings_done": 1, "trainings_total": 4, "rung": 1, "promoted": None}  # fmt: skip
    answer = {"id": 1, "name": "s", "state": "running", "stage": "confirmation",
              "request": {"n_trials": 4, "confirm_rungs": 2}, "counts": {}, "best": None, "confirmation": None,
              "rungs": [lowest], "error": None, "elapsed_s": 60.0, "eta_s": None}  # fmt: skip
    # While the lowest rung is the last planned, the status line counts its trainings.
    assert "confirmation rung 1/2 (3 epochs) 6/6" in status_line(Study.from_json(answer), clock=False)
    climbing = Study.from_json({**answer, "confirmation": top})
    assert "confirmation rung 2/2 (9 epochs) 1/4" in status_line(climbing, clock=False)
    lines = verdict_lines(climbing)
    # The rung below: its length, seeds, the gains it ranked by (best first) and what it promoted.
    assert lines[0] == "rung 1: 3 epochs on seeds [3, 4], 6/6 trainings, promoted [5]"
    assert lines[1] == "  gain vs seed hyps: trial 5 +0.0300  trial 4 -0.0100"
    assert lines[2] == "confirmation (rung 2, the top): 9 epochs on seeds [1, 2]"
