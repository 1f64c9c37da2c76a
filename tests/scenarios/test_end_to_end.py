"""The whole path through a real `hypevolve serve` process: HTTP in, Optuna + Ray + ultralytics
trainings, hyp.yaml out."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from ultralytics.cfg import get_cfg

from hyps import (
    HYP_ARGS,
    HYP_KEYS,
    YOLOV5_PARITY_ARGS,
    default_evolve_keys,
    load_seed_hyp,
    load_ultralytics_space,
    translate_hyp,
    ultralytics_only_defaults,
)
from tests.conftest import BACKENDS
from tests.helpers import evolve_csv, run_to_end, start_server, stop_server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    small_shapes_root: Path, tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[httpx.Client]:
    """A real `hypevolve serve` process with its own local Ray, once per database backend."""
    process, client = start_server(tmp_path_factory.mktemp("home"), small_shapes_root, module_database_url)
    yield client
    stop_server(process, client)


def test_study_runs_to_completion_and_exports_the_best_hyps(server: httpx.Client) -> None:
    request = {"dataset": "shapes/data.yaml", "epochs": 2, "imgsz": 64, "batch": 16, "n_trials": 3, "parallel": 2,
               "confirm_top_k": 0, "diagnostics": False}  # fmt: skip
    created = server.post("/studies", json={**request, "name": "e2e"})
    assert created.status_code == 201, created.text
    study = created.json()
    assert study["name"] == "e2e"
    assert study["request"]["parallel"] == 2

    study = run_to_end(server, study["id"])
    assert study["state"] == "completed", study
    assert study["counts"] == {"running": 0, "waiting": 0, "complete": 3, "pruned": 0, "fail": 0}
    assert study["elapsed_s"] > 0

    trials = server.get(f"/studies/{study['id']}/trials").json()
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["state"] == "complete" and t["error"] is None for t in trials)
    # Trial 0 is hyp.scratch-low.yaml itself; the sampler moved every later trial elsewhere.
    seed = load_seed_hyp("scratch-low")
    # The sample set has box labels only: copy_paste, which pastes segments, is not searched.
    assert study["searched"] == [k for k in default_evolve_keys() if k != "copy_paste"]
    assert trials[0]["params"] == {k: seed[k] for k in study["searched"]}
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == 3
    for trial in trials:
        # What the trainer really used (read back from it) is the translation of this trial's hyps,
        # and the stated defaults for the ultralytics-only arguments the study does not name.
        expected = {**ultralytics_only_defaults(), **YOLOV5_PARITY_ARGS, **translate_hyp({**seed, **trial["params"]})}
        assert set(trial["train_args"]) == set(HYP_ARGS) | set(load_ultralytics_space())
        assert trial["train_args"] == pytest.approx(expected)
        assert len(trial["epochs"]) == 2
        assert trial["fitness"] == trial["epochs"][-1]
        assert set(trial["metrics"]) == {"precision", "recall", "mAP50", "mAP50-95"}
        assert trial["duration_s"] > 0
        assert trial["node"]

    best = study["best"]
    assert best["fitness"] == max(t["fitness"] for t in trials)
    assert best["params"] == trials[best["trial"]]["params"]

    response = server.get(f"/studies/{study['id']}/hyp.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-yaml")
    hyp = yaml.safe_load(response.text)
    assert list(hyp) == list(HYP_KEYS)
    # Searched keys carry the best trial's exact values; the rest are the seed file's.
    assert {k: hyp[k] for k in best["params"]} == best["params"]
    assert {k: hyp[k] for k in HYP_KEYS if k not in best["params"]} == {
        k: seed[k] for k in HYP_KEYS if k not in best["params"]
    }
    assert f"trial {best['trial']}" in response.text.splitlines()[1]

    listed = server.get("/studies").json()
    assert [s["id"] for s in listed] == [study["id"]]

    args = yaml.safe_load(server.get(f"/studies/{study['id']}/args.yaml").text)
    cfg = get_cfg(overrides=args)  # ultralytics' own check: unknown keys or wrong types raise
    assert (cfg.lr0, cfg.optimizer, cfg.epochs, cfg.imgsz) == (best["params"]["lr0"], "SGD", 2, 64)

    png = server.get(f"/studies/{study['id']}/evolve.png")
    assert png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"))
    # A 5-column grid of 20 scatter plots, not an empty canvas.
    assert image.shape[1] >= 1000
    assert image.std() > 10


def test_imported_evolve_csv_becomes_completed_trials_without_using_the_budget(server: httpx.Client) -> None:
    study = server.get("/studies").json()[0]
    assert study["state"] == "completed"
    good = {"metrics/precision": 0.9, "metrics/recall": 0.9, "metrics/mAP_0.5": 0.8, "metrics/mAP_0.5:0.95": 0.6,
            "lr0": 0.02, "mosaic": 0.7}  # fmt: skip
    bad = {**good, "metrics/mAP_0.5": 0.1, "metrics/mAP_0.5:0.95": 0.05}
    out_of_range = {**good, "lr0": 0.5}

    refused = server.post(f"/studies/{study['id']}/import", content=evolve_csv([good, out_of_range]))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["value"] == "line 3"
    assert "lr0=0.5 lies outside" in refused.json()["detail"]
    assert server.get(f"/studies/{study['id']}").json()["counts"]["complete"] == 3

    response = server.post(f"/studies/{study['id']}/import", content=evolve_csv([good, bad]))
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 2, "format": "evolve-csv", "trials": [3, 4]}
    after = server.get(f"/studies/{study['id']}").json()
    assert after["counts"]["complete"] == 5
    assert after["state"] == "completed"
    # Fitness is recomputed with the study's weights from the file's metrics.
    assert after["best"]["trial"] == 3
    assert after["best"]["fitness"] == pytest.approx(0.1 * 0.8 + 0.9 * 0.6)
    hyp = yaml.safe_load(server.get(f"/studies/{study['id']}/hyp.yaml").text)
    assert (hyp["lr0"], hyp["mosaic"]) == (0.02, 0.7)


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b'{"a":' * 50000 + b"1" + b"}" * 50000, None, "nested too deep"),
        (
            evolve_csv(
                [{"metrics/precision": 0.5, "metrics/recall": 0.5, "metrics/mAP_0.5": 0.5, "metrics/mAP_0.5:0.95": 0.3}]
            ),
            "tune-csv",
            "needs a 'fitness' column",
        ),
        (b"fitness,lr0\n1e308,0.01\n", None, "is not in [0, 1]"),
        (b'{"fitness": 0.5, "hyperparameters": {"lr0": "0.01"}}\n', None, "is not a JSON number"),
    ],
    ids=["deep-ndjson", "evolve-csv-as-tune-csv", "huge-fitness", "string-lr0"],
)
def test_hostile_results_files_get_422_and_add_nothing(
    server: httpx.Client, body: bytes, fmt: str | None, message: str
) -> None:
    study = server.get("/studies").json()[0]
    params = {"format": fmt} if fmt else {}
    refused = server.post(f"/studies/{study['id']}/import", content=body, params=params)
    assert refused.status_code == 422, refused.text
    assert message in refused.json()["detail"]
    assert server.get(f"/studies/{study['id']}").json()["counts"] == study["counts"]


def test_stop_cancels_the_running_trial_and_starts_no_more(server: httpx.Client) -> None:
    request = {"dataset": "shapes/data.yaml", "epochs": 50, "imgsz": 64, "n_trials": 4, "parallel": 1,
               "confirm_top_k": 0, "diagnostics": False}  # fmt: skip
    study_id = server.post("/studies", json=request).json()["id"]

    def running_trial() -> bool:
        return any(t["state"] == "running" for t in server.get(f"/studies/{study_id}/trials").json())

    wait_for(running_trial, 120, "a trial to start")
    stopped = server.post(f"/studies/{study_id}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"

    time.sleep(2)
    study = server.get(f"/studies/{study_id}").json()
    assert study["state"] == "stopped"
    assert study["counts"]["running"] == 0
    trials = server.get(f"/studies/{study_id}/trials").json()
    cancelled = [t for t in trials if t["state"] == "fail"]
    assert [t["error"] for t in cancelled] == ["cancelled: study stopped"]
    # The cancelled trial's params wait to run again if the study is resumed; nothing else started.
    assert [t["state"] for t in trials] == ["fail", "waiting"]
    assert trials[1]["params"] == trials[0]["params"]

    response = server.get(f"/studies/{study_id}/hyp.yaml")
    assert response.status_code == 404
    assert "no completed trial" in response.json()["detail"]
    assert server.post(f"/studies/{study_id}/stop").status_code == 409


CONFIGURED = {
    "yolov5, uploaded seed, evolve, fixed, bounds, weights": {
        "sampler": "yolov5",
        "seed_hyp": "lr0: 0.02\nmomentum: 0.9\nmixup: 0.0\n",
        "evolve": ["lr0", "momentum", "mixup", "degrees"],
        "fixed": {"mosaic": 0.5, "fliplr": 0.4},
        "bounds": {"lr0": [0.005, 0.05]},
        "fitness_weights": [0.1, 0.1, 0.4, 0.4],
    },
    "tpe, ultralytics-only arguments": {
        "name": "ultralytics-only",
        "sampler": "tpe",
        "evolve": ["lr0", "dfl", "close_mosaic"],
        "fixed": {"cutmix": 0.25, "mosaic": 0.5},
        "bounds": {"close_mosaic": [0, 1]},
    },
    **{
        name: {"sampler": name, "evolve": ["lr0", "momentum", "hsv_h"]}
        for name in ("cmaes", "gp", "nsga2", "qmc", "random")
    },
}


# Each configuration runs on one database, alternating: what it tests is the sampler and the plan; the
# whole path runs on both databases in the tests above and below.
BACKEND_OF = {name: BACKENDS[i % len(BACKENDS)] for i, name in enumerate(CONFIGURED)}
# ...except the study the tune-results test imports into, on both.
BACKEND_OF["tpe, ultralytics-only arguments"] = ""


@pytest.mark.parametrize("name", CONFIGURED)
def test_configured_studies_run(server: httpx.Client, module_database_url: str, name: str) -> None:
    if not module_database_url.startswith(BACKEND_OF[name]):  # "" starts every URL
        pytest.skip(f"runs on {BACKEND_OF[name]}")
    settings: dict[str, Any] = CONFIGURED[name]
    request = {"dataset": "shapes/data.yaml", "epochs": 1, "imgsz": 64, "n_trials": 3, "parallel": 2,
               "confirm_top_k": 0, "diagnostics": False, **settings}  # fmt: skip
    created = server.post("/studies", json=request)
    assert created.status_code == 201, created.text
    study = run_to_end(server, created.json()["id"])
    assert study["state"] == "completed", study
    assert study["counts"]["complete"] == 3
    trials = server.get(f"/studies/{study['id']}/trials").json()
    weights = settings.get("fitness_weights", [0, 0, 0.1, 0.9])
    bounds = settings.get("bounds", {})
    for trial in trials:
        assert set(trial["params"]) == set(settings["evolve"])
        for key, (low, high) in bounds.items():
            assert low <= trial["params"][key] <= high
        metrics = trial["metrics"]
        assert trial["fitness"] == pytest.approx(
            sum(w * metrics[k] for w, k in zip(weights, ("precision", "recall", "mAP50", "mAP50-95"), strict=True))
        )
        for key, value in settings.get("fixed", {}).items():
            if key in trial["train_args"]:
                assert trial["train_args"][key] == value
        # ultralytics-only arguments reach the trainer as they are.
        for key in load_ultralytics_space().keys() & trial["params"].keys():
            assert trial["train_args"][key] == trial["params"][key]
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == 3
    hyp = yaml.safe_load(server.get(f"/studies/{study['id']}/hyp.yaml").text)
    args = yaml.safe_load(server.get(f"/studies/{study['id']}/args.yaml").text)
    best = server.get(f"/studies/{study['id']}").json()["best"]["params"]
    assert list(hyp) == list(HYP_KEYS)
    for key, value in {**settings.get("fixed", {}), **best}.items():
        if key in HYP_KEYS:
            assert hyp[key] == value
        else:
            # An ultralytics-only argument has no YOLOv5 key: args.yaml carries it.
            assert args[key] == value
    if settings["sampler"] == "yolov5":
        # Trial 0 is the uploaded seed, clipped into the narrowed lr0 range.
        assert trials[0]["params"] == {"lr0": 0.02, "momentum": 0.9, "mixup": 0.0, "degrees": 0.0}
        assert hyp["cls_pw"] == 1.0


def test_tune_results_seed_a_study_that_searches_ultralytics_only_arguments(server: httpx.Client) -> None:
    [study] = [s for s in server.get("/studies").json() if s["name"] == "ultralytics-only"]
    assert study["state"] == "completed"
    refused = server.post(f"/studies/{study['id']}/import", content=b"fitness,lr0,dfl,close_mosaic\n0.9,0.01,2.5,0.5\n")
    assert refused.status_code == 422
    assert "close_mosaic=0.5 is not a whole number" in refused.json()["detail"]

    # ultralytics' tuner logs its own box scale and arguments no study searches (nbs): both handled.
    tuned = b"fitness,lr0,dfl,close_mosaic,box,nbs\n0.9,0.01,2.5,1,7.5,64\n"
    response = server.post(f"/studies/{study['id']}/import", content=tuned)
    assert response.status_code == 200, response.text
    [number] = response.json()["trials"]
    trial = server.get(f"/studies/{study['id']}/trials").json()[number]
    assert trial["params"] == {"lr0": 0.01, "dfl": 2.5, "close_mosaic": 1}
    # Its fitness beats every short training, so the exports are its values.
    assert server.get(f"/studies/{study['id']}").json()["best"]["trial"] == number
    args = yaml.safe_load(server.get(f"/studies/{study['id']}/args.yaml").text)
    assert (args["lr0"], args["dfl"], args["close_mosaic"], args["cutmix"]) == (0.01, 2.5, 1, 0.25)
    hyp_text = server.get(f"/studies/{study['id']}/hyp.yaml").text
    assert "dfl" not in yaml.safe_load(hyp_text)
    assert "ultralytics-only, so in args.yaml and not here" in hyp_text
    # close_mosaic 1 in 1-epoch trials: mosaic was off throughout, and the file says its value is untried.
    assert "close_mosaic 1 >= 1 epochs: this trial trained without mosaic" in hyp_text
