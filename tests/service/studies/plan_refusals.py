"""Search settings the plan refuses, with the field, value and message each refusal must name: checked
on the plan directly (test_plan.py) and through HTTP (test_api_validation.py)."""

from __future__ import annotations

from typing import Any

REFUSALS: list[tuple[dict[str, Any], str, Any, str]] = [
    ({"seed_hyp": "scratch-huge"}, "seed_hyp", "scratch-huge", "valid names"),
    ({"seed_hyp": {"lr1": 0.01}}, "seed_hyp", "lr1", "unknown YOLOv5 hyp key"),
    ({"seed_hyp": {"lr0": "fast"}}, "seed_hyp.lr0", "fast", "must be a number"),
    ({"seed_hyp": {"lr0": 0.5}}, "seed_hyp.lr0", 0.5, "within [1e-05, 0.1]"),
    ({"seed_hyp": "lr0: [0.01"}, "seed_hyp", "lr0: [0.01", "valid YAML"),
    ({"evolve": ["lr0", "nope"]}, "evolve", "nope", "unknown YOLOv5 hyp key"),
    ({"evolve": ["obj"]}, "evolve", "obj", "no effect on the ultralytics backend"),
    ({"evolve": ["lr0", "lr0"]}, "evolve", ["lr0", "lr0"], "twice"),
    ({"evolve": []}, "evolve", [], "at least one key"),
    ({"evolve": ["lr0"], "fixed": {"lr0": 0.01}}, "evolve", "lr0", "also in fixed"),
    ({"fixed": {"nope": 1.0}}, "fixed", "nope", "unknown YOLOv5 hyp key"),
    # Holding a key without effect is as meaningless as searching it.
    ({"fixed": {"obj": 1.0}}, "fixed.obj", 1.0, "no effect on the ultralytics backend"),
    ({"fixed": {"mosaic": 1.5}}, "fixed.mosaic", 1.5, "within [0.0, 1.0]"),
    ({"bounds": {"lr0": [0.05, 0.01]}}, "bounds.lr0", [0.05, 0.01], "low must be below high"),
    ({"bounds": {"lr0": [0.01, 0.01]}}, "bounds.lr0", [0.01, 0.01], "low must be below high"),
    ({"bounds": {"degrees": [0.0, 90.0]}}, "bounds.degrees", [0.0, 90.0], "within YOLOv5's bounds"),
    ({"bounds": {"fliplr": [0.2, 0.8]}}, "bounds.fliplr", [0.2, 0.8], "not searched"),
    ({"bounds": {"nope": [0.0, 1.0]}}, "bounds", "nope", "unknown YOLOv5 hyp key"),
    ({"fitness_weights": [0, 0, 0, 0]}, "fitness_weights", [0, 0, 0, 0], "not all 0"),
    ({"seed_hyp": {"dfl": 2.0}}, "seed_hyp", "dfl", "ultralytics-only argument"),
    ({"evolve": ["dfl", "dfl_gain"]}, "evolve", "dfl_gain", "ultralytics-only arguments: dfl, bgr"),
    ({"fixed": {"close_mosaic": 2.5}}, "fixed.close_mosaic", 2.5, "whole number in [0, 10]"),
    ({"fixed": {"dfl": 20.0}}, "fixed.dfl", 20.0, "within [0.4, 12.0]"),
    (
        {"evolve": ["close_mosaic"], "bounds": {"close_mosaic": [0.5, 3]}},
        "bounds.close_mosaic",
        [0.5, 3],
        "whole numbers only",
    ),
    (
        {"evolve": ["dfl"], "bounds": {"dfl": [0.1, 2.0]}},
        "bounds.dfl",
        [0.1, 2.0],
        "within ultralytics' tuner's bounds",
    ),
]
