"""A study that fine-tunes from pretrained weights with AutoBatch, through a real `hypevolve serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from ultralytics.cfg import get_cfg

from hyps import default_evolve_keys, load_seed_hyp
from tests.helpers import run_to_end, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service home whose weights folder holds a real ultralytics checkpoint of 80 classes, as a
    released yolov5nu.pt is (written offline by ultralytics itself; untrained, which the mechanics
    tested here do not need: tests/workers/test_training.py checks that weights are learned from)."""
    from ultralytics import YOLO

    home = tmp_path_factory.mktemp("home")
    (home / "weights").mkdir()
    YOLO("yolov5n.yaml").save(home / "weights" / "coco-n.pt")
    return home


@pytest.fixture(scope="module")
def server(home: Path, small_shapes_root: Path) -> Iterator[httpx.Client]:
    process, client = start_server(home, small_shapes_root, f"sqlite:///{home / 'hypevolve.db'}")
    yield client
    stop_server(process, client)


def test_a_study_fine_tunes_from_weights_in_the_folder_and_says_so(server: httpx.Client) -> None:
    assert [w["name"] for w in server.get("/models").json()["weights"]] == ["coco-n.pt"]
    # batch -1 asks AutoBatch for the largest batch; on this CPU-only machine ultralytics uses 16.
    request = {"dataset": "shapes/data.yaml", "model": "coco-n.pt", "seed_hyp": "VOC", "epochs": 1, "imgsz": 64,
               "batch": -1, "n_trials": 2, "parallel": 2, "confirm_top_k": 0}  # fmt: skip
    created = server.post("/studies", json=request)
    assert created.status_code == 201, created.text
    study = run_to_end(server, created.json()["id"])
    assert study["state"] == "completed", study
    assert study["request"]["model"] == "coco-n.pt"
    # The data set's report, made when the study was created, stays with it.
    report = study["dataset_report"]
    assert (report["dataset"], report["imgsz"], report["usable"]) == ("shapes/data.yaml", 64, True)
    assert [s["split"] for s in report["splits"]] == ["train", "val"]
    assert report["splits"][0]["images"] == 128  # the small sample data set's training split
    # Two screening trials, then (no confirmation) one more training of the best with plots on.
    assert study["counts"]["complete"] == 3
    trials = server.get(f"/studies/{study['id']}/trials").json()
    # Trial 0 is YOLOv5's hyp.VOC.yaml, the seed for fine-tuning.
    voc = load_seed_hyp("VOC")
    # The sample set has box labels only: copy_paste, which pastes segments, is not searched.
    assert study["searched"] == [k for k in default_evolve_keys() if k != "copy_paste"]
    assert trials[0]["params"] == {k: voc[k] for k in study["searched"]}

    for trial in trials:
        assert trial["batch"] == 16
        assert trial["batch_note"] == "AutoBatch needs a GPU: on the CPU ultralytics trained with its default batch 16"

    screening = [t for t in trials if t["stage"] == "screening"]
    [diagnostics] = [t for t in trials if t["stage"] == "diagnostics"]
    assert diagnostics["confirms"] == study["best"]["trial"]
    assert diagnostics["params"] == study["best"]["params"]
    assert len(diagnostics["epochs"]) == 1
    assert len(screening) == 2
    listed = server.get(f"/studies/{study['id']}/artifacts").json()
    assert {a["trial"] for a in listed} == {diagnostics["number"]}
    assert {"winner/results.png", "winner/confusion_matrix.png", "winner/labels.jpg"} <= {a["name"] for a in listed}
    # The best screening trial is still the exported one: the extra training does not compete.
    assert study["best"]["trial"] in {t["number"] for t in screening}

    hyp = server.get(f"/studies/{study['id']}/hyp.yaml").text
    assert "batch 16 (AutoBatch, asked -1; these trainings used [16])" in hyp
    assert "trained: fine-tuned from the weights coco-n.pt on shapes/data.yaml" in hyp
    assert "not searched: the VOC seed's values" in hyp
    args_text = server.get(f"/studies/{study['id']}/args.yaml").text
    args = yaml.safe_load(args_text)
    # `yolo train cfg=args.yaml` fine-tunes from the same weights (the operator's file of that name).
    assert args["model"] == "coco-n.pt"
    assert args["batch"] == 16  # the batch the exported trial trained with, not -1
    assert get_cfg(overrides=args).model == "coco-n.pt"
    assert "fine-tuned from the weights coco-n.pt" in args_text
