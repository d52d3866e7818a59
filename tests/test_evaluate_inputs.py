"""bidsnet_lib.evaluate (inputs): test photos, mask groups from the shipped layout, one set or any
folder, MaskGroup's checks, fitting a mask to a photo, and the stand-in data."""

import cv2
import numpy as np
import pytest

from bidsnet_lib import evaluate as ev
from bidsnet_lib.masks import (
    EVAL_PRESETS,
    RATIO_BINS,
    SHIPPED_MASKS,
    bin_name,
    irregular_mask,
    write_eval_set,
)

MASKS = SHIPPED_MASKS
GROUPS = [("Set I", bin_name(b)) for b in RATIO_BINS] + [("Set II", p) for p in EVAL_PRESETS]


# ------------------------------------------------------------------------------ moved from test_evaluate.py
def test_masks_outside_every_bin_are_an_error(tmp_path, capsys):
    folder = tmp_path / "tiny_holes"
    folder.mkdir()
    mask = np.zeros((64, 64), np.uint8)
    mask[:8, :8] = 255  # 1.6 % hole
    cv2.imwrite(str(folder / "a.png"), mask)
    with pytest.raises(ValueError, match=r"none of the 1 masks .* theirs span 1.6%\.\.1.6%"):
        ev.load_mask_groups(folder)


def test_mask_groups_of_the_shipped_root_a_set_and_a_plain_folder(tmp_path):
    groups = ev.load_mask_groups(MASKS, limit=3)
    assert [(g.set_name, g.name) for g in groups] == GROUPS
    assert all(len(g.masks) == 3 and g.masks[0].shape == (256, 256) for g in groups)
    assert groups[0].sources[0].endswith("set1/10-20/000.png")
    assert [g.name for g in ev.load_mask_groups(MASKS / "set2")] == list(EVAL_PRESETS)
    assert len(ev.load_mask_groups(MASKS / "set2")[0].masks) == 20
    # Any folder: grouped by each mask's hole ratio.
    rng = np.random.default_rng(0)
    for i, ratio_bin in enumerate([RATIO_BINS[0], RATIO_BINS[0], RATIO_BINS[3]]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), irregular_mask(64, 64, ratio_bin, rng) * np.uint8(255))
    groups = ev.load_mask_groups(tmp_path)
    assert [(g.set_name, g.name, len(g.masks)) for g in groups] == [("folder", "10-20", 2), ("folder", "40-50", 1)]
    with pytest.raises(ValueError, match="limit: got 0"):
        ev.load_mask_groups(MASKS, limit=0)


def test_the_rehearsal_keeps_every_group_with_one_mask(monkeypatch):
    """make rehearsal (BIDSNET_REHEARSAL=1) cuts every evaluation loop: one mask a group, whatever
    the caller's limit, every group kept."""
    monkeypatch.setenv("BIDSNET_REHEARSAL", "1")
    for limit in (None, 3):
        groups = ev.load_mask_groups(MASKS, limit=limit)
        assert [(g.set_name, g.name) for g in groups] == GROUPS and all(len(g.masks) == 1 for g in groups)
    with pytest.raises(ValueError, match="limit"):
        ev.load_mask_groups(MASKS, limit=0)  # still checked


def test_load_photos_crops_or_keeps_their_size(four_photos):
    crops = ev.load_photos(four_photos, 48, limit=2)
    assert list(crops) == sorted(p.stem for p in four_photos.glob("*.jpg"))[:2]
    assert all(c.shape == (48, 48, 3) and c.dtype == np.uint8 for c in crops.values())
    native = ev.load_photos(four_photos, None, limit=1)
    assert min(next(iter(native.values())).shape[:2]) == 512
    with pytest.raises(ValueError, match="size: got 16"):
        ev.load_photos(four_photos, 16)


def test_standin_data_is_the_shipped_masks_and_loads(tmp_path):
    photos, masks = ev.write_standin_data(tmp_path, per_group=2)
    assert sorted(ev.load_photos(photos, 64)) == sorted(ev.STANDIN_PHOTOS)
    groups = ev.load_mask_groups(masks)
    shipped = ev.load_mask_groups(SHIPPED_MASKS, limit=2)
    assert [g.name for g in groups] == [g.name for g in shipped] and all(len(g.masks) == 2 for g in groups)
    for ours, theirs in zip(groups, shipped, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(ours.masks, theirs.masks, strict=True)), ours.name
    with pytest.raises(ValueError, match="per_group: got 0"):
        ev.write_standin_data(tmp_path, per_group=0)


# ------------------------------------------------------------------------------ mask groups
def test_mask_group_checks_its_masks_and_names_its_row():
    mask = np.zeros((8, 8), np.uint8)
    group = ev.MaskGroup("Set I", "10-20", [mask])
    assert group.label == "Set I 10-20" and group.sources == []
    assert ev.SET_NAMES == {"set1": "Set I", "set2": "Set II"}
    with pytest.raises(ValueError, match=r"masks of group 'g': got an empty list, expected a non-empty list"):
        ev.MaskGroup("folder", "g", [])
    with pytest.raises(ValueError, match="masks of group 'g': got tuple, expected a non-empty list"):
        ev.MaskGroup("folder", "g", (mask,))
    with pytest.raises(ValueError, match=r"masks\[1\] of group 'g': got \(8, 8, 3\), expected an \(H, W\) array"):
        ev.MaskGroup("folder", "g", [mask, np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"masks\[0\] of group 'g': got list, expected an \(H, W\) array"):
        ev.MaskGroup("folder", "g", [[[0, 1]]])
    with pytest.raises(ValueError, match="mask: got a value 255, expected only 0 and 1"):
        ev.MaskGroup("folder", "g", [mask + 255])


def test_a_set_folder_under_another_name_is_recognised_by_its_subfolders(tmp_path):
    write_eval_set(tmp_path / "shipped", size=32, per_bin=1, per_preset=2)
    (tmp_path / "shipped" / "set1").rename(tmp_path / "irregular")
    (tmp_path / "shipped" / "set2").rename(tmp_path / "large")
    groups = ev.load_mask_groups(tmp_path / "irregular")
    assert [(g.set_name, g.name, len(g.masks)) for g in groups] == [("Set I", bin_name(b), 1) for b in RATIO_BINS]
    groups = ev.load_mask_groups(tmp_path / "large", limit=1)
    assert [(g.set_name, g.name, len(g.masks)) for g in groups] == [("Set II", p, 1) for p in EVAL_PRESETS]
    assert groups[0].sources[0].endswith("large/thin/000.png") and groups[0].masks[0].shape == (32, 32)


def test_set_folders_without_groups_and_bad_limits_are_refused(tmp_path):
    (tmp_path / "set1").mkdir()
    with pytest.raises(ValueError, match="masks: .* has set folders but no group subfolders in them"):
        ev.load_mask_groups(tmp_path)
    with pytest.raises(ValueError, match=r"masks: no such folder '.*absent'; expected the shipped root"):
        ev.load_mask_groups(tmp_path / "absent")
    for limit, error in ((True, TypeError), (1.5, TypeError), (-1, ValueError)):
        with pytest.raises(error, match=f"limit: got {limit!r}, expected None or an int >= 1"):
            ev.load_mask_groups(MASKS, limit=limit)


# ------------------------------------------------------------------------------ photos
def test_load_photos_refusals_name_the_folder_or_photo(tmp_path, four_photos):
    with pytest.raises(ValueError, match="images: no such folder '.*absent'"):
        ev.load_photos(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"images: got '.*empty', expected a folder holding .png/.jpg.*; it holds none"):
        ev.load_photos(tmp_path / "empty")
    (tmp_path / "small").mkdir()
    cv2.imwrite(str(tmp_path / "small" / "thumb.png"), np.zeros((20, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="images: got thumb.png of 20x40, expected both sides >= 32"):
        ev.load_photos(tmp_path / "small")
    with pytest.raises(TypeError, match="size: got True, expected None"):
        ev.load_photos(four_photos, True)
    with pytest.raises(ValueError, match="limit: got 0, expected None or an int >= 1"):
        ev.load_photos(four_photos, 48, limit=0)


def test_fit_mask_resizes_with_nearest_neighbour_and_keeps_a_fitting_mask():
    mask = np.zeros((4, 4), np.uint8)
    mask[:2, :2] = 1
    assert ev.fit_mask(mask, (4, 4)) is mask
    fitted = ev.fit_mask(mask, (8, 6))  # (H, W)
    assert fitted.shape == (8, 6) and fitted.dtype == np.uint8 and set(np.unique(fitted)) == {0, 1}
    np.testing.assert_array_equal(fitted[:4, :3], 1)
    assert fitted.sum() == 12


def test_write_standin_data_refuses_a_bad_count(tmp_path):
    for per_group, error in ((0, ValueError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(error, match=f"per_group: got {per_group!r}, expected None or an int >= 1"):
            ev.write_standin_data(tmp_path, per_group=per_group)
    assert not (tmp_path / "photos").exists()
