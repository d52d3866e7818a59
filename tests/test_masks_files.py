"""bidsnet_lib.masks (files): MaskFolder and the fixed evaluation set written by write_eval_set.
(One mask file is opened by bidsnet_lib.plumbing.read_mask: tests/test_plumbing.py.)"""

import sys

import cv2
import numpy as np
import pytest
from mask_checks import assert_binary, rng
from PIL import Image

from bidsnet_lib import masks as M
from bidsnet_lib.masks import (
    EVAL_PRESETS,
    RATIO_BINS,
    MaskFolder,
    write_eval_set,
)
from bidsnet_lib.plumbing import read_mask

SHIPPED = M.SHIPPED_MASKS




# ----------------------------------------------------------------------------- moved from test_masks.py
@pytest.fixture
def mask_folder(tmp_path):
    """A folder of masks in every format a downloaded set may use; returns (folder, expected masks)."""
    base = np.zeros((64, 64), np.uint8)
    base[:16] = 1  # 25 % hole
    wide = np.zeros((64, 64), np.uint8)
    wide[:, :40] = 1  # 62.5 %
    cv2.imwrite(str(tmp_path / "a_0255.png"), base * 255)
    blurred = cv2.GaussianBlur(wide * 255, (7, 7), 0)  # anti-aliased edge
    assert len(np.unique(blurred)) > 2
    cv2.imwrite(str(tmp_path / "b_antialiased.jpg"), blurred, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "c_rgb.png"), np.dstack([base * 255] * 3))
    Image.fromarray(wide.astype(bool)).save(tmp_path / "sub" / "d_1bit.png")  # mode "1"
    (tmp_path / "notes.txt").write_text("not a mask")
    return tmp_path, [base, wide, base, wide]


def test_mask_folder_reads_every_format(mask_folder):
    folder, expected = mask_folder
    masks = MaskFolder(folder)
    assert [p.name for p in masks.paths] == ["a_0255.png", "b_antialiased.jpg", "c_rgb.png", "d_1bit.png"]
    assert len(masks) == 4
    for i, want in enumerate(expected):
        assert_binary(masks[i], (64, 64))
        assert (masks[i] != want).mean() < 0.01, masks.paths[i]  # JPEG blur moves edges a pixel at most
    np.testing.assert_array_equal(masks[-1], masks[3])
    assert masks.by_bin() == {(0.1, 0.2): [], (0.2, 0.3): [0, 2], (0.3, 0.4): [], (0.4, 0.5): [], (0.5, 0.6): []}
    assert masks.by_bin([(0.6, 0.7)]) == {(0.6, 0.7): [1, 3]}
    inverted = MaskFolder(folder, invert=True)
    np.testing.assert_array_equal(inverted[0], 1 - expected[0])


def test_mask_folder_resizes_with_nearest_neighbour_and_augments(mask_folder):
    folder, expected = mask_folder
    small = MaskFolder(folder, size=(32, 48))
    assert_binary(small[0], (32, 48))
    np.testing.assert_array_equal(small[0], cv2.resize(expected[0], (48, 32), interpolation=cv2.INTER_NEAREST))
    assert MaskFolder(folder, size=40)[2].shape == (40, 40)
    flipped = MaskFolder(folder, flip=True, rng=rng(0))
    seen = {flipped[0].tobytes() for _ in range(20)}
    assert seen == {expected[0].tobytes(), expected[0][::-1].tobytes()}  # rows symmetric left-right
    rotated = MaskFolder(folder, rotate=True, rng=rng(0))
    assert any((rotated[0] != expected[0]).any() for _ in range(3))


def test_mask_folder_errors_name_the_folder_or_file(tmp_path, mask_folder):
    with pytest.raises(ValueError, match="no such folder"):
        MaskFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty', expected a folder holding .png/.jpg"):
        MaskFolder(tmp_path / "empty")
    folder, _ = mask_folder
    broken = folder / "zz_broken.png"
    broken.write_bytes(b"not a png at all")
    masks = MaskFolder(folder)
    with pytest.raises(ValueError, match="zz_broken.png: not an image this program can read"):
        masks[4]
    broken.write_bytes(b"")
    with pytest.raises(ValueError, match="zz_broken.png: not an image this program can read"):
        masks[4]
    red = np.zeros((8, 8, 3), np.uint8)
    red[:, :, 2] = 255
    cv2.imwrite(str(broken), red)
    with pytest.raises(ValueError, match="zz_broken.png: got colour channels that disagree"):
        masks.by_bin()
    with pytest.raises(IndexError, match="index 9 out of range for 5 masks"):
        masks[9]
    with pytest.raises(TypeError, match="index: got '0', expected an int"):
        masks["0"]
    with pytest.raises(TypeError, match="size: got '64', expected None, an int or"):
        MaskFolder(folder, size="64")
    with pytest.raises(ValueError, match=r"size: got \(0, 4\), expected positive sides"):
        MaskFolder(folder, size=(0, 4))
    with pytest.raises(TypeError, match="rng: got int, expected a numpy.random.Generator"):
        MaskFolder(folder, rng=3)


def test_shipped_masks_lie_in_their_bins():
    for ratio_bin in RATIO_BINS:
        folder = MaskFolder(SHIPPED / "set1" / M.bin_name(ratio_bin))
        assert len(folder) == 10
        assert all(M.in_bin(r, ratio_bin) for r in folder.ratios())
    for name in M.EVAL_PRESETS:
        folder = MaskFolder(SHIPPED / "set2" / name)
        assert len(folder) == 20 and max(folder.ratios()) <= 0.5


def test_write_removes_stale_masks_and_validates(tmp_path):
    stale = tmp_path / "set1" / "10-20" / "999.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    paths = M.write_eval_set(tmp_path, size=32, per_bin=1, per_preset=1, presets=("train",))
    assert not stale.exists() and len(paths) == 6
    assert (tmp_path / "set2" / "train" / "000.png").exists()
    assert "--presets train" in (tmp_path / "README.md").read_text()
    with pytest.raises(ValueError, match="presets: got 'wide', expected names from"):
        M.write_eval_set(tmp_path, presets=("wide",))
    with pytest.raises(ValueError, match="per_bin: got -1, expected an int >= 0"):
        M.write_eval_set(tmp_path, per_bin=-1)


def test_write_keeps_the_old_set_when_generation_fails(tmp_path, monkeypatch):
    """#1: `masks write` deleted the existing set before generating; any failure wiped it."""
    M.write_eval_set(tmp_path, size=32, per_bin=1, per_preset=1)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.png")}
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise MemoryError("simulated: out of memory while drawing mask 4")
        return original(*args, **kwargs)

    files = sys.modules["bidsnet_lib.masks.files"]  # where write_eval_set looks the name up
    original = files.irregular_mask
    monkeypatch.setattr(files, "irregular_mask", failing)
    with pytest.raises(MemoryError):
        M.write_eval_set(tmp_path, size=48, per_bin=2, per_preset=2)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.png")} == before
    assert not list(tmp_path.rglob("*.tmp"))


# ----------------------------------------------------------------------------- MaskFolder
def test_mask_folder_load_is_not_augmented_and_ratios_are_read_once(mask_folder, monkeypatch):
    folder, expected = mask_folder
    masks = MaskFolder(folder, flip=True, rotate=True, rng=rng(1))
    for _ in range(5):
        np.testing.assert_array_equal(masks.load(0), expected[0])
    np.testing.assert_array_equal(masks.load(-4), expected[0])
    ratios = masks.ratios()
    assert ratios == pytest.approx([0.25, 0.625, 0.25, 0.625], abs=0.01)
    ratios.append(1.0)  # a copy: the cache is not changed by its reader
    files = sys.modules["bidsnet_lib.masks.files"]  # where MaskFolder.load looks read_mask up
    monkeypatch.setattr(files, "read_mask", lambda *args, **kwargs: pytest.fail("read again"))
    assert masks.ratios() == pytest.approx([0.25, 0.625, 0.25, 0.625], abs=0.01)
    assert masks.by_bin([(0.0, 0.3)]) == {(0.0, 0.3): [0, 2]}


def test_mask_folder_bad_options(mask_folder):
    folder, _ = mask_folder
    with pytest.raises(ValueError, match=r"bins: got \(0.5, 0.2\), expected \(low, high\) with low < high"):
        MaskFolder(folder).by_bin([(0.5, 0.2)])
    with pytest.raises(IndexError, match="index -5 out of range for 4 masks"):
        MaskFolder(folder).load(-5)
    with pytest.raises(TypeError, match="index: got True, expected an int"):
        MaskFolder(folder).load(True)
    with pytest.raises(TypeError, match=r"size: got \(32, 32, 3\), expected None, an int or \(height, width\)"):
        MaskFolder(folder, size=(32, 32, 3))
    with pytest.raises(ValueError, match=r"threshold: got 1.0, expected a number in \(0.0, 1.0\)"):
        MaskFolder(folder, threshold=1.0)
    with pytest.raises(ValueError, match=r"root: got '.*notes.txt' \(no such folder\), expected a folder of mask"):
        MaskFolder(folder / "notes.txt")


# ----------------------------------------------------------------------------- write_eval_set
def test_write_eval_set_is_deterministic_and_lays_out_the_groups(tmp_path):
    paths = write_eval_set(tmp_path / "a", size=32, seed=3, per_bin=2, per_preset=1)
    assert len(paths) == len(RATIO_BINS) * 2 + len(EVAL_PRESETS)
    assert sorted(p.parent.name for p in paths if p.parent.parent.name == "set2") == sorted(EVAL_PRESETS)
    assert paths[0].relative_to(tmp_path / "a").as_posix() == "set1/10-20/000.png"
    again = write_eval_set(tmp_path / "b", size=32, seed=3, per_bin=2, per_preset=1)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    other = write_eval_set(tmp_path / "c", size=32, seed=4, per_bin=2, per_preset=1)
    assert [p.read_bytes() for p in paths] != [p.read_bytes() for p in other]
    # Mask NNN of a group does not depend on how many others are written.
    fewer = write_eval_set(tmp_path / "d", size=32, seed=3, per_bin=1, per_preset=1)
    assert (tmp_path / "d" / "set1" / "10-20" / "000.png").read_bytes() == paths[0].read_bytes()
    assert len(fewer) == len(RATIO_BINS) + len(EVAL_PRESETS)
    for path in paths:
        mask = read_mask(path)
        assert_binary(mask, (32, 32))
        if path.parent.parent.name == "set2":
            assert M.hole_ratio(mask) <= 0.5  # large masks over half the image are redrawn
    readme = (tmp_path / "a" / "README.md").read_text()
    assert "--size 32 --seed 3 --per-bin 2 --per-preset 1" in readme and "--presets" not in readme


@pytest.mark.parametrize("kwargs,message", [
    (dict(size=16), "size: got 16, expected an int from 32 to 8192"),
    (dict(seed=-1), "seed: got -1, expected an int >= 0"),
    (dict(per_preset=-2), "per_preset: got -2, expected an int >= 0"),
])
def test_write_eval_set_bad_inputs_write_nothing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_eval_set(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_write_eval_set_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out: got '.*file', expected a folder for the mask set; it is a file"):
        write_eval_set(tmp_path / "file", size=32, per_bin=1, per_preset=1)
    assert (tmp_path / "file").read_text() == "x"
