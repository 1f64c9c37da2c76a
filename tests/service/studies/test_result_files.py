"""Reading YOLOv5's evolve.csv and ultralytics' tune results, in the formats those tools write."""

from __future__ import annotations

import json

import pytest

from hyps import HYP_KEYS
from service.errors import InvalidRequest
from service.studies.result_files import detect_format, parse_results
from tests.helpers import evolve_csv


def _metrics(p: float, r: float, m50: float, m: float) -> dict[str, float]:
    return {"metrics/precision": p, "metrics/recall": r, "metrics/mAP_0.5": m50, "metrics/mAP_0.5:0.95": m}


def test_evolve_csv_rows_keep_their_metrics_and_all_yolov5_keys() -> None:
    body = evolve_csv([{**_metrics(0.5, 0.4, 0.3, 0.2), "lr0": 0.0123}, {**_metrics(0.6, 0.5, 0.4, 0.3)}])
    fmt, results = parse_results(body)
    assert fmt == "evolve-csv"
    assert [r.line for r in results] == [2, 3]
    assert results[0].metrics == {"precision": 0.5, "recall": 0.4, "mAP50": 0.3, "mAP50-95": 0.2}
    assert list(results[0].hyp) == list(HYP_KEYS)
    assert results[0].hyp["lr0"] == 0.0123


def test_tune_ndjson_comes_back_in_yolov5_terms_with_mean_metrics() -> None:
    metrics = {"metrics/precision(B)": 0.5, "metrics/recall(B)": 0.4, "metrics/mAP50(B)": 0.3,
               "metrics/mAP50-95(B)": 0.2, "fitness": 0.2}  # fmt: skip
    record = {
        "iteration": 1,
        "fitness": 0.2,
        "hyperparameters": {"lr0": 0.02, "box": 15.0, "cls": 0.25, "bgr": 0.1, "cutmix": 0.0},
        "datasets": {"a": metrics, "b": {**metrics, "metrics/mAP50(B)": 0.5}},
    }
    fmt, results = parse_results((json.dumps(record) + "\n\n").encode())
    assert fmt == "tune-ndjson"
    # box and cls convert back to YOLOv5's scale; ultralytics-only arguments a study can search stay.
    assert results[0].hyp == {"lr0": 0.02, "box": 0.1, "cls": 0.25, "bgr": 0.1, "cutmix": 0.0}
    assert results[0].metrics == {"precision": 0.5, "recall": 0.4, "mAP50": pytest.approx(0.4), "mAP50-95": 0.2}


def test_tune_csv_has_only_its_own_fitness() -> None:
    fmt, results = parse_results(b"fitness,lr0,box,dfl,close_mosaic,nbs\n0.25,0.01,7.5,1.5,10,64\n")
    assert fmt == "tune-csv"
    # Arguments with no YOLOv5 key that no study can search (nbs) are dropped.
    expected = {"lr0": 0.01, "box": 0.05, "dfl": 1.5, "close_mosaic": 10.0}
    assert (results[0].fitness, results[0].metrics, results[0].hyp) == (0.25, None, expected)


@pytest.mark.parametrize(
    ("body", "fmt", "value", "message"),
    [
        (b"fitness,lr0\n0.2,0.01\n0.3\n", None, "line 3", "1 values for 2 columns"),
        (b"fitness,lr0\n0.2,fast\n", None, "line 2", "lr0: 'fast' is not a number"),
        (b"fitness,lr0\n0.2,nan\n", None, "line 2", "not a finite number"),
        (b"fitness,lr0\n", None, "line 1", "at least one result"),
        (b"metrics/precision,metrics/recall,metrics/mAP_0.5,metrics/mAP_0.5:0.95,lr9\n1,1,1,1,1\n", None, "lr9",
         "unknown evolve.csv column"),
        (b'{"fitness": 0.1, "hyperparameters": {"lr0": 0.01}}\n{oops\n', None, "line 2", "is not JSON"),
        (b'{"fitness": 0.1}\n', None, "line 1", "'hyperparameters'"),
        (b"name,score\nx,1\n", None, "name,score", "not a results file"),
        (b"\xff\xfe", None, "body", "not UTF-8"),
        (b"fitness,lr0\n0.2,0.01\n", "yolo-csv", "yolo-csv", "unknown format"),
        # Bounded metrics and fitness: 1e308 once became a study's best, "fitness 1e+308" in its header.
        (b"fitness,lr0\n1e308,0.01\n", None, "line 2", r"fitness: '1e308' is not in \[0, 1\]"),
        (b"fitness,lr0\n-1e308,0.01\n", None, "line 2", r"is not in \[0, 1\]"),
        (b"metrics/precision,metrics/recall,metrics/mAP_0.5,metrics/mAP_0.5:0.95,lr0\n1e308,1,1,1,0.01\n", None,
         "line 2", r"metrics/precision: '1e308' is not in \[0, 1\]"),
        (b"metrics/precision,metrics/recall,metrics/mAP_0.5,metrics/mAP_0.5:0.95,lr0\n-5,1,1,1,0.01\n", None,
         "line 2", "is not in"),
        (b'{"fitness": 0.1, "hyperparameters": {"lr0": "0.01"}}\n', None, "line 1", "'0.01' is not a JSON number"),
        (b'{"fitness": true, "hyperparameters": {"lr0": 0.01}}\n', None, "line 1", "True is not a JSON number"),
        (b'{"a":' * 50000 + b"1" + b"}" * 50000, None, "line 1", "nested too deep"),
        # An evolve.csv sent as a tune-csv: no fitness column to read.
        (b"metrics/precision,lr0\n0.5,0.01\n", "tune-csv", "line 1", "needs a 'fitness' column"),
    ],
)  # fmt: skip
def test_malformed_files_are_refused_naming_the_line(body: bytes, fmt: str | None, value: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        parse_results(body, fmt)
    assert info.value.value == value


def test_format_detection() -> None:
    assert detect_format(evolve_csv([_metrics(0, 0, 0, 0)]).decode()) == "evolve-csv"
    assert detect_format('{"fitness": 1}') == "tune-ndjson"
    assert detect_format("fitness,lr0\n") == "tune-csv"
