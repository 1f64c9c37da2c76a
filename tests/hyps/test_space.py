from __future__ import annotations

import pytest

from hyps import HELD_KEYS, HYP_KEYS, SEED_HYPS, default_evolve_keys, load_search_space, load_seed_hyp


def test_space_covers_every_key_with_yolov5_bounds() -> None:
    space = load_search_space()
    assert list(space) == list(HYP_KEYS)
    assert (space["lr0"].low, space["lr0"].high, space["lr0"].log) == (1e-5, 0.1, True)
    assert (space["momentum"].low, space["momentum"].high, space["momentum"].gain) == (0.6, 0.98, 0.3)
    assert (space["degrees"].high, space["shear"].high, space["perspective"].high) == (45.0, 10.0, 0.001)


@pytest.mark.parametrize("name", SEED_HYPS)
def test_seed_values_lie_inside_the_bounds(name: str) -> None:
    space = load_search_space()
    assert {k: v for k, v in load_seed_hyp(name).items() if not space[k].contains(v)} == {}


def test_default_search_leaves_out_held_and_frozen_keys() -> None:
    keys = default_evolve_keys()
    assert not set(keys) & set(HELD_KEYS)
    # YOLOv5's gain-0 keys stay frozen, as in train.py --evolve.
    assert not set(keys) & {"iou_t", "fl_gamma", "perspective", "fliplr"}
    assert {"lr0", "momentum", "box", "cls", "mosaic", "hsv_h"} <= set(keys)
    assert len(keys) == 20
