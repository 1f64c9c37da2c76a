from __future__ import annotations

import pytest
import yaml

from hyps import HYP_KEYS, SEED_HYPS, load_seed_hyp, render_hyp_yaml


@pytest.mark.parametrize("name", SEED_HYPS)
def test_seed_files_carry_yolov5s_28_keys_in_order(name: str) -> None:
    values = load_seed_hyp(name)
    assert list(values) == list(HYP_KEYS)
    assert len(HYP_KEYS) == 28


def test_seed_files_hold_yolov5s_values() -> None:
    low, med, high = (load_seed_hyp(n) for n in ("scratch-low", "scratch-med", "scratch-high"))
    assert (low["lr0"], low["momentum"], low["box"], low["anchor_t"]) == (0.01, 0.937, 0.05, 4.0)
    # The three files differ exactly where YOLOv5's differ.
    assert {k for k in HYP_KEYS if low[k] != med[k]} == {"lrf", "cls", "obj", "scale", "mixup"}
    assert {k for k in HYP_KEYS if med[k] != high[k]} == {"copy_paste"}
    assert (med["lrf"], med["cls"], med["obj"], med["scale"], med["mixup"], high["copy_paste"]) == (
        0.1, 0.3, 0.7, 0.9, 0.1, 0.1,
    )  # fmt: skip


def test_the_fine_tuning_seeds_hold_yolov5s_values() -> None:
    med, voc, bare = (load_seed_hyp(n) for n in ("scratch-med", "VOC", "no-augmentation"))
    # hyp.no-augmentation.yaml is scratch-med with every augmentation YOLOv5 applies switched off.
    augmentations = {"hsv_h", "hsv_s", "hsv_v", "translate", "scale", "fliplr", "mosaic", "mixup"}
    assert {k for k in HYP_KEYS if med[k] != bare[k]} == augmentations
    assert all(bare[k] == 0.0 for k in augmentations)
    # hyp.VOC.yaml: evolved while fine-tuning yolov5m6.pt on VOC (lower lr0 and momentum than scratch).
    assert (voc["lr0"], voc["lrf"], voc["momentum"], voc["mosaic"], voc["mixup"]) == (
        0.00334, 0.15135, 0.74832, 0.85834, 0.04266,
    )  # fmt: skip


def test_a_seed_without_comments_renders_with_scratch_lows() -> None:
    text = render_hyp_yaml({}, [], seed_hyp="VOC")
    assert yaml.safe_load(text) == load_seed_hyp("VOC")
    assert "\nlr0: 0.00334  # initial learning rate (SGD=1E-2, Adam=1E-3)\n" in text


def test_render_writes_every_key_in_order_with_overrides_and_seed_values() -> None:
    text = render_hyp_yaml({"lr0": 0.0123456789, "mosaic": 0.25}, ["from a test"], seed_hyp="scratch-med")
    parsed = yaml.safe_load(text)
    assert list(parsed) == list(HYP_KEYS)
    # Overrides come back exactly (no rounding); every other key is the seed file's.
    assert parsed["lr0"] == 0.0123456789
    assert parsed["mosaic"] == 0.25
    med = load_seed_hyp("scratch-med")
    assert {k: parsed[k] for k in HYP_KEYS if k not in ("lr0", "mosaic")} == {
        k: med[k] for k in HYP_KEYS if k not in ("lr0", "mosaic")
    }
    assert text.startswith("# from a test\n")
    assert "\nanchor_t: 4.0  # anchor-multiple threshold\n# anchors: 3" in text


def test_render_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown YOLOv5 hyp keys \\['lr1'\\]"):
        render_hyp_yaml({"lr1": 0.1}, [])


def test_unknown_seed_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="scratch-low, scratch-med, scratch-high"):
        load_seed_hyp("scratch-huge")
