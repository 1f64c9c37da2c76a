"""Reading a user's earlier evolution results: YOLOv5's evolve.csv and ultralytics' tune results.

Each row becomes an ImportedResult in YOLOv5 terms; the controller turns them into completed trials.
Any malformed row refuses the whole file (InvalidRequest naming the line), so nothing is half-added.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from hyps import HYP_KEYS, METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, load_ultralytics_space, untranslate_args
from service.errors import InvalidRequest

FORMATS: tuple[str, ...] = ("evolve-csv", "tune-csv", "tune-ndjson")
MAX_IMPORT_BYTES = 10 << 20

# YOLOv5 v7.0 print_mutation(): results columns, then the hyp keys (and 'anchors' when evolved).
_EVOLVE_METRICS = {
    "metrics/precision": "precision",
    "metrics/recall": "recall",
    "metrics/mAP_0.5": "mAP50",
    "metrics/mAP_0.5:0.95": "mAP50-95",
}
_EVOLVE_IGNORED = ("val/box_loss", "val/obj_loss", "val/cls_loss", "anchors")
_ULTRALYTICS_METRICS = dict(zip(ULTRALYTICS_METRIC_COLUMNS, METRIC_NAMES, strict=True))


@dataclass(frozen=True)
class ImportedResult:
    """One row of a results file: the hyps it trained with (YOLOv5 keys) and how it scored."""

    line: int
    hyp: dict[str, float]
    metrics: dict[str, float] | None  # when the file has them, fitness is recomputed from them
    fitness: float | None  # the file's own fitness, used only without metrics


def _bad(line: int, reason: str) -> InvalidRequest:
    return InvalidRequest("file", f"line {line}", reason)


def _float(line: int, column: str, text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise _bad(line, f"{column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(line, f"{column}: {text!r} is not a finite number")
    return value


def _share(line: int, column: str, text: Any) -> float:
    """A metric (precision, recall, mAP) or ultralytics' fitness: a share, in [0, 1]."""
    value = _float(line, column, text)
    if not 0.0 <= value <= 1.0:
        raise _bad(line, f"{column}: {text!r} is not in [0, 1]")
    return value


def _json_number(line: int, column: str, value: Any) -> float:
    """A JSON number in a JSON line: "0.01" (a string) or true is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(line, f"{column}: {value!r} is not a JSON number")
    return _float(line, column, value)


def detect_format(text: str) -> str:
    """Guess the format from the first line: JSON lines, YOLOv5's metric columns, or a fitness column."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{"):
        return "tune-ndjson"
    columns = [c.strip() for c in first.split(",")]
    if columns and columns[0] == "metrics/precision":
        return "evolve-csv"
    if columns and columns[0] == "fitness":
        return "tune-csv"
    raise InvalidRequest("file", first[:80], f"not a results file hypevolve reads ({', '.join(FORMATS)})")


def _csv_rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), start=1) if r]
    if len(rows) < 2:
        raise InvalidRequest("file", "line 1", "needs a header line and at least one result")
    header = [c.strip() for c in rows[0][1]]
    body = []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise _bad(number, f"has {len(row)} values for {len(header)} columns")
        body.append((number, [v.strip() for v in row]))
    return header, body


def _parse_evolve_csv(text: str) -> list[ImportedResult]:
    header, body = _csv_rows(text)
    for column in header:
        if column not in _EVOLVE_METRICS and column not in _EVOLVE_IGNORED and column not in HYP_KEYS:
            raise InvalidRequest("file", column, "unknown evolve.csv column")
    missing = [c for c in _EVOLVE_METRICS if c not in header]
    if missing:
        raise InvalidRequest("file", "line 1", f"evolve.csv lacks the metric columns {missing}")
    results = []
    for number, row in body:
        values = dict(zip(header, row, strict=True))
        metrics = {ours: _share(number, theirs, values[theirs]) for theirs, ours in _EVOLVE_METRICS.items()}
        hyp = {k: _float(number, k, values[k]) for k in header if k in HYP_KEYS}
        results.append(ImportedResult(number, hyp, metrics, None))
    return results


def _tuner_values(args: dict[str, float]) -> dict[str, float]:
    """A tuner row in our terms: YOLOv5 values where a YOLOv5 key exists, and the ultralytics-only
    arguments a study can search (dfl, close_mosaic, ...) as they are."""
    return {**untranslate_args(args), **{k: v for k, v in args.items() if k in load_ultralytics_space()}}


def _parse_tune_csv(text: str) -> list[ImportedResult]:
    header, body = _csv_rows(text)
    if "fitness" not in header:
        raise InvalidRequest("file", "line 1", "a tune-csv needs a 'fitness' column (ultralytics' tune_results.csv)")
    results = []
    for number, row in body:
        values = dict(zip(header, row, strict=True))
        fitness = _share(number, "fitness", values.pop("fitness"))
        args = {k: _float(number, k, v) for k, v in values.items()}
        results.append(ImportedResult(number, _tuner_values(args), None, fitness))
    return results


def _mean_metrics(number: int, datasets: Any) -> dict[str, float] | None:
    if not isinstance(datasets, dict) or not datasets:
        return None
    rows = [m for m in datasets.values() if isinstance(m, dict) and all(k in m for k in _ULTRALYTICS_METRICS)]
    if not rows:
        return None
    return {
        ours: sum(_share(number, theirs, _json_number(number, theirs, m[theirs])) for m in rows) / len(rows)
        for theirs, ours in _ULTRALYTICS_METRICS.items()
    }


def _parse_tune_ndjson(text: str) -> list[ImportedResult]:
    results = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(number, f"is not JSON: {exc.msg}") from None
        except RecursionError:
            raise _bad(number, "is not JSON hypevolve reads: nested too deep") from None
        if not isinstance(record, dict) or not isinstance(record.get("hyperparameters"), dict):
            raise _bad(number, "needs an object with 'hyperparameters'")
        args = {k: _json_number(number, k, v) for k, v in record["hyperparameters"].items()}
        fitness = (
            _share(number, "fitness", _json_number(number, "fitness", record["fitness"]))
            if "fitness" in record
            else None
        )
        results.append(
            ImportedResult(number, _tuner_values(args), _mean_metrics(number, record.get("datasets")), fitness)
        )
    if not results:
        raise InvalidRequest("file", "line 1", "holds no results")
    return results


_PARSERS = {"evolve-csv": _parse_evolve_csv, "tune-csv": _parse_tune_csv, "tune-ndjson": _parse_tune_ndjson}


def parse_results(body: bytes, fmt: str | None = None) -> tuple[str, list[ImportedResult]]:
    """Parse an uploaded results file; ``fmt`` is one of FORMATS, or None to detect it."""
    if len(body) > MAX_IMPORT_BYTES:
        raise InvalidRequest("file", f"{len(body)} bytes", f"is larger than {MAX_IMPORT_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("file", "body", "is not UTF-8 text") from None
    if fmt is not None and fmt not in _PARSERS:
        raise InvalidRequest("format", fmt, f"unknown format; valid formats: {', '.join(FORMATS)}")
    fmt = fmt or detect_format(text)
    return fmt, _PARSERS[fmt](text)
