"""bidsnet_lib.masks (draw): Set I bins, Set II = LaMa's presets, determinism, bad inputs, the shipped
set rewritten by `bidsnet masks` (masks as files: test_masks_files.py)."""

import sys

import cv2
import numpy as np
import pytest
import torch
from mask_checks import assert_binary, rng
from scripts import load_script

from bidsnet_lib import masks as M
from bidsnet_lib.commands import masks as masks_command
from bidsnet_lib.masks import (
    LARGE_MASK_PRESETS,
    RATIO_BINS,
    IrregularMaskParams,
    LargeMaskPreset,
    hole_ratio,
    irregular_mask,
    large_mask,
)

SHIPPED = M.SHIPPED_MASKS




# ----------------------------------------------------------------------------- Set I
@pytest.mark.parametrize("ratio_bin", RATIO_BINS)
def test_every_set1_mask_of_1000_lies_in_its_bin(ratio_bin):
    low, high = ratio_bin
    generator = rng(1)
    ratios = []
    for _ in range(1000):
        mask = irregular_mask(64, 64, ratio_bin, generator)
        ratios.append(hole_ratio(mask))
    ratios = np.array(ratios)
    assert ((low <= ratios) & (ratios < high)).all(), (ratios.min(), ratios.max())
    # the target is drawn inside the bin, so both halves of the bin are used
    middle = (low + high) / 2
    assert (ratios < middle).mean() > 0.2 and (ratios >= middle).mean() > 0.2


@pytest.mark.parametrize("ratio_bin", RATIO_BINS)
def test_set1_at_256_lies_in_its_bin(ratio_bin):
    generator = rng(2)
    for _ in range(200):
        mask = irregular_mask(256, 256, ratio_bin, generator)
        assert M.in_bin(hole_ratio(mask), ratio_bin)
    assert_binary(mask, (256, 256))


@pytest.mark.parametrize("shape,ratio_bin", [((48, 96), (0.3, 0.4)), ((32, 32), (0.0, 0.05)),
                                             ((40, 33), (0.9, 1.0)), ((64, 64), (0.25, 0.26))])
def test_set1_odd_sizes_and_bins(shape, ratio_bin):
    generator = rng(3)
    for _ in range(50):
        mask = irregular_mask(*shape, ratio_bin, generator)
        assert_binary(mask, shape)
        assert M.in_bin(hole_ratio(mask), ratio_bin)


def test_set1_pixel_finish_lands_in_the_bin_without_any_shape_tries(monkeypatch):
    monkeypatch.setattr(sys.modules["bidsnet_lib.masks.draw"], "SHAPE_TRIES", 0)  # where settle reads it
    generator = rng(4)
    for ratio_bin in RATIO_BINS:
        for _ in range(5):
            assert M.in_bin(hole_ratio(irregular_mask(64, 64, ratio_bin, generator)), ratio_bin)


def test_set1_same_seed_same_mask_different_seed_different():
    a = irregular_mask(128, 128, (0.3, 0.4), rng(7))
    b = irregular_mask(128, 128, (0.3, 0.4), rng(7))
    c = irregular_mask(128, 128, (0.3, 0.4), rng(8))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_set1_rotation_and_flip_change_the_mask():
    plain = IrregularMaskParams(rotate=False, flip=False)
    a = irregular_mask(128, 128, (0.2, 0.3), rng(5), params=plain)
    b = irregular_mask(128, 128, (0.2, 0.3), rng(5))
    assert (a != b).any()


def test_rotate_flip_flips_both_ways_and_rotates():
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 3:30] = 1  # asymmetric: every flip differs
    flips = {mask.tobytes(), mask[:, ::-1].tobytes(), mask[::-1].tobytes(), mask[::-1, ::-1].tobytes()}
    assert len(flips) == 4
    generator = rng(0)
    seen = {M.rotate_flip(mask, generator, rotate=False).tobytes() for _ in range(40)}
    assert seen == flips
    rotated = M.rotate_flip(mask, generator, flip=False)
    assert_binary(rotated, mask.shape)
    assert rotated.tobytes() not in flips
    np.testing.assert_array_equal(M.rotate_flip(mask, generator, rotate=False, flip=False), mask)


def test_draw_stroke_and_polygon_building_blocks():
    canvas = np.zeros((100, 100), np.uint8)
    points = M.draw_stroke(canvas, rng(0), max_vertices=6)
    assert points.shape[1] == 2 and 2 <= len(points) <= 6
    assert canvas.any() and set(np.unique(canvas)) == {0, 1}
    again = np.zeros_like(canvas)
    np.testing.assert_array_equal(M.draw_stroke(again, rng(0), max_vertices=6), points)
    np.testing.assert_array_equal(again, canvas)
    M.draw_stroke(canvas, rng(0), max_vertices=6, value=0)  # the same stroke erases itself
    assert not canvas.any()

    points = M.draw_polygon(canvas, rng(1), max_vertices=5, max_radius=0.3)
    assert 3 <= len(points) <= 5
    inside = points.mean(axis=0).round().astype(int)  # star-shaped about its centre
    assert canvas.any()
    assert cv2.pointPolygonTest(points.reshape(-1, 1, 2), tuple(map(float, inside)), False) >= 0


# ----------------------------------------------------------------------------- Set II
LAMA = {  # LaMa configs/data_gen/random_*_256.yaml and its training masks
    "thin": dict(max_angle=4, max_len=40, max_width=10, min_times=4, max_times=50, box_proba=0),
    "medium": dict(max_angle=4, max_len=100, max_width=50, min_times=4, max_times=5, box_proba=0.3,
                   margin=0, bbox_min_size=10, bbox_max_size=50, box_min_times=1, box_max_times=5),
    "thick": dict(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5, box_proba=0.3,
                  margin=10, bbox_min_size=30, bbox_max_size=150, box_min_times=1, box_max_times=3),
    "train": dict(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5, box_proba=1,
                  margin=10, bbox_min_size=30, bbox_max_size=150, box_min_times=1, box_max_times=4),
}


@pytest.mark.parametrize("name", sorted(LAMA))
def test_set2_presets_are_lamas_parameters(name):
    preset = LARGE_MASK_PRESETS[name]
    assert isinstance(preset, LargeMaskPreset) and preset.irregular_proba == 1
    for field, value in LAMA[name].items():
        assert getattr(preset, field) == value, (name, field)
    assert set(LARGE_MASK_PRESETS) == set(LAMA)


@pytest.mark.parametrize("name", sorted(LAMA))
def test_set2_masks_are_binary_and_deterministic(name):
    a = large_mask(256, 256, name, rng(3))
    assert_binary(a, (256, 256))
    assert a.any()
    np.testing.assert_array_equal(a, large_mask(256, 256, name, rng(3)))
    others = [large_mask(256, 256, name, rng(s)) for s in range(4, 8)]
    assert any((a != o).any() for o in others)


def test_set2_picks_boxes_with_lamas_renormalised_weight(monkeypatch):
    calls = []
    draw = sys.modules["bidsnet_lib.masks.draw"]  # where large_mask looks the name up
    monkeypatch.setattr(draw, "draw_lama_boxes", lambda canvas, rng, preset: calls.append(1) or canvas.fill(1))
    generator = rng(0)
    for _ in range(2000):
        large_mask(64, 64, "thick", generator)
    # weights 1 (strokes) and 0.3 (boxes): boxes in 0.3 / 1.3 of the masks; 4 sigma = 0.038
    assert abs(len(calls) / 2000 - 0.3 / 1.3) < 0.038


def test_set2_max_hole_ratio_rejects_large_masks():
    generator = rng(0)
    raw = [hole_ratio(large_mask(128, 128, "thick", generator)) for _ in range(300)]
    assert max(raw) > 0.5  # LaMa's thick masks do exceed half the image
    capped = [hole_ratio(large_mask(128, 128, "thick", generator, max_hole_ratio=0.5)) for _ in range(300)]
    assert max(capped) <= 0.5


def test_set2_scales_with_image_size():
    box_only = LargeMaskPreset(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=1,
                               irregular_proba=0, box_proba=1, margin=10, bbox_min_size=30,
                               bbox_max_size=150, box_min_times=1, box_max_times=1)
    generator = rng(0)
    for size in (256, 512):
        scale = size // 256
        for _ in range(50):
            ys, xs = np.nonzero(large_mask(size, size, box_only, generator))
            for lo, hi in ((ys.min(), ys.max()), (xs.min(), xs.max())):
                assert 30 * scale <= hi - lo + 1 <= 150 * scale
                assert lo >= 10 * scale and hi < size - 10 * scale
    means = [np.mean([hole_ratio(large_mask(s, s, "thick", generator)) for _ in range(200)]) for s in (128, 512)]
    assert abs(means[0] - means[1]) < 0.05  # same coverage at any size


# ----------------------------------------------------------------------------- hole ratio, tensors
def test_hole_ratio_accepts_arrays_bool_and_tensors():
    mask = np.zeros((4, 5), np.uint8)
    mask[0] = 1
    assert hole_ratio(mask) == 0.25
    assert hole_ratio(mask.astype(bool)) == 0.25
    assert hole_ratio(torch.from_numpy(mask).float()[None, None]) == 0.25
    tensor = M.masks_to_tensor([mask, 1 - mask])
    assert tensor.shape == (2, 1, 4, 5) and tensor.dtype == torch.float32
    assert M.masks_to_tensor(mask).shape == (1, 1, 4, 5)


def test_hole_ratio_bad_inputs():
    with pytest.raises(ValueError, match="mask: got a value 255, expected only 0 and 1"):
        hole_ratio(np.full((4, 4), 255, np.uint8))
    with pytest.raises(ValueError, match=r"mask: got shape \(0, 4\), expected a non-empty mask"):
        hole_ratio(np.zeros((0, 4)))
    with pytest.raises(TypeError, match="mask: got list, expected a numpy array or torch tensor"):
        hole_ratio([[0, 1]])
    with pytest.raises(ValueError, match=r"masks: got shape \(2, 1, 4, 4\), expected \(H, W\)"):
        M.masks_to_tensor(np.zeros((2, 1, 4, 4), np.uint8))


def test_bins_and_names():
    assert RATIO_BINS == ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
    assert [M.bin_name(b) for b in RATIO_BINS] == ["10-20", "20-30", "30-40", "40-50", "50-60"]
    assert M.in_bin(0.1, (0.1, 0.2)) and not M.in_bin(0.2, (0.1, 0.2))


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs,error,message", [
    (dict(ratio_bin=(10, 20)), ValueError, r"ratio_bin: got \(10, 20\), expected two fractions inside \[0, 1\]"),
    (dict(ratio_bin=(-0.1, 0.2)), ValueError, r"ratio_bin: got .*, expected two fractions inside \[0, 1\]"),
    (dict(ratio_bin=(0.3, 0.2)), ValueError, r"ratio_bin: got \(0.3, 0.2\), expected .* low < high"),
    (dict(ratio_bin=(0.3, 0.3)), ValueError, "ratio_bin: got .* low < high"),
    (dict(ratio_bin=0.3), TypeError, "ratio_bin: got 0.3, expected a pair"),
    (dict(ratio_bin=("a", "b")), TypeError, "ratio_bin: got .*, expected two numbers"),
    (dict(ratio_bin=(0.3, 0.3001)), ValueError, "narrower than one pixel of a 32x32"),
    (dict(height=16), ValueError, "height: got 16, expected an int from 32 to 8192"),
    (dict(width=31), ValueError, "width: got 31, expected an int from 32 to 8192"),
    (dict(height=32.0), TypeError, "height: got 32.0, expected an int"),
    (dict(width=True), TypeError, "width: got True, expected an int"),
    (dict(rng=0), TypeError, "rng: got int, expected a numpy.random.Generator or None"),
    (dict(rng=np.random.RandomState(0)), TypeError, "rng: got RandomState, expected a numpy.random.Generator"),
    (dict(params={"stroke_width": 0.1}), TypeError, "params: got dict, expected an IrregularMaskParams"),
])
def test_irregular_mask_bad_inputs(kwargs, error, message):
    args = dict(height=32, width=32, ratio_bin=(0.1, 0.2), rng=None) | kwargs
    with pytest.raises(error, match=message):
        irregular_mask(**args)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(preset="huge"), ValueError, r"preset: got 'huge', expected one of \['medium', 'thick', 'thin', 'train'\]"),
    (dict(preset=3), TypeError, "preset: got int, expected a name or a LargeMaskPreset"),
    (dict(max_hole_ratio=0), ValueError, r"max_hole_ratio: got 0, expected a number in \(0.0, 1.0\]"),
    (dict(max_hole_ratio=1.5), ValueError, r"max_hole_ratio: got 1.5, expected a number in \(0.0, 1.0\]"),
    (dict(max_hole_ratio="0.5"), TypeError, "max_hole_ratio: got '0.5', expected a number"),
    (dict(max_hole_ratio=1e-6), ValueError, "max_hole_ratio 1e-06 rejected 1000 masks in a row"),
    (dict(height=8), ValueError, "height: got 8, expected an int from 32 to 8192"),
    (dict(rng="seed"), TypeError, "rng: got str, expected a numpy.random.Generator or None"),
])
def test_large_mask_bad_inputs(kwargs, error, message):
    args = dict(height=32, width=32, preset="thick", rng=None) | kwargs
    with pytest.raises(error, match=message):
        large_mask(**args)


def test_config_and_building_block_bad_inputs():
    with pytest.raises(ValueError, match="stroke_vertices: got 1, expected an int >= 2"):
        IrregularMaskParams(stroke_vertices=1)
    with pytest.raises(ValueError, match=r"polygon_proba: got 1.5, expected a number in \[0, 1\]"):
        IrregularMaskParams(polygon_proba=1.5)
    with pytest.raises(ValueError, match=r"stroke_width: got -0.1, expected a finite number > 0.0"):
        IrregularMaskParams(stroke_width=-0.1)
    with pytest.raises(ValueError, match=r"min_times: got 5, expected <= max_times \(1\)"):
        LargeMaskPreset(max_angle=4, max_len=10, max_width=10, min_times=5, max_times=1)
    with pytest.raises(TypeError, match="max_len: got 2.5, expected an int >= 0"):
        LargeMaskPreset(max_angle=4, max_len=2.5, max_width=10, min_times=1, max_times=1)
    with pytest.raises(ValueError, match="with box_proba > 0"):
        LargeMaskPreset(max_angle=4, max_len=10, max_width=10, min_times=1, max_times=1, box_proba=1)
    with pytest.raises(TypeError, match=r"canvas: got float64 \(4, 4\), expected a \(H, W\) uint8 numpy array"):
        M.draw_stroke(np.zeros((4, 4)), rng())
    with pytest.raises(TypeError, match="rng: got int, expected a numpy.random.Generator"):
        M.draw_polygon(np.zeros((4, 4), np.uint8), 1)
    with pytest.raises(TypeError, match=r"mask: got \(4, 4, 3\), expected a \(H, W\) numpy array"):
        M.rotate_flip(np.zeros((4, 4, 3), np.uint8), rng())


# ----------------------------------------------------------------------------- shipped set, CLI, bench
def test_shipped_masks_regenerate_byte_for_byte(tmp_path):
    out = tmp_path / "masks"
    assert masks_command.main(["write", "--out", str(out), "--size", "256", "--seed", "0",
                   "--per-bin", "10", "--per-preset", "20"]) == 0
    shipped = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*.png"))
    fresh = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert len(shipped) == 5 * 10 + 3 * 20 and shipped == fresh
    for rel in shipped:
        assert (SHIPPED / rel).read_bytes() == (out / rel).read_bytes(), rel
    readme = (out / "README.md").read_text().replace(str(out), "DIR")
    assert readme == (SHIPPED / "README.md").read_text()
    assert "bidsnet masks write --out DIR --size 256 --seed 0" in readme


def test_cli_reports_bad_input_and_draws_a_gallery(tmp_path, capsys):
    assert masks_command.main(["write", "--out", str(tmp_path), "--size", "8"]) == 2
    assert "size: got 8, expected an int from 32 to 8192" in capsys.readouterr().err
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.jpg"), rng().integers(0, 255, (80, 120, 3), dtype=np.uint8))
    assert masks_command.main(["gallery", "--photos", str(photos), "--out", str(tmp_path / "out"),
                   "--size", "64", "--columns", "2"]) == 0
    for name in ("masks_set1.png", "masks_set2.png"):
        image = cv2.imread(str(tmp_path / "out" / name))
        assert image is not None and image.shape[0] > 200
    assert masks_command.main(["gallery", "--photos", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--photos: got " in err and "expected a folder of photos" in err


def test_mask_gallery_takes_arrays_and_overlay_paints_holes(tmp_path):
    photo = np.full((50, 70, 3), 40, np.uint8)
    paths = M.mask_gallery([photo], tmp_path, rng(0), size=48, columns=1)
    assert [p.name for p in paths] == ["masks_set1.png", "masks_set2.png"] and all(p.exists() for p in paths)
    mask = np.zeros((48, 48), np.uint8)
    mask[:10] = 1
    shown = M.overlay_mask(M.square_photo(photo, 48), mask)
    assert (shown[:10] == 255).all() and (shown[10:] == 40).all()
    with pytest.raises(ValueError, match=r"photos: got \[\], expected a non-empty list"):
        M.mask_gallery([], tmp_path)
    with pytest.raises(ValueError, match="mask: got shape .*, expected the image's height and width"):
        M.overlay_mask(photo, mask)


def test_bench_quick_runs(capsys):
    bench = load_script("bench/masks.py", "bench_masks")
    assert bench.main(["--quick"]) == 0
    table = capsys.readouterr().out
    assert "| masks | masks/s |" in table and "Set I 50-60 %" in table and "Set II thick" in table


# ----------------------------------------------------------------------------- issue 17: nothing lost
def test_write_size_has_bounds_named_in_one_phrase(tmp_path, capsys):
    """#13: --size 100000 had no upper limit (MemoryError), --size 0 was called a height."""
    for size in ("0", "100000"):
        assert masks_command.main(["write", "--out", str(tmp_path / "m"), "--size", size]) == 2
        assert f"size: got {size}, expected an int from 32 to 8192" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    (tmp_path / "file").write_text("x")
    assert masks_command.main(["write", "--out", str(tmp_path / "file"), "--size", "32"]) == 2
    assert "expected a folder for the mask set; it is a file" in capsys.readouterr().err


def test_errors_name_the_command_the_user_typed(tmp_path, capsys):
    """Hostile pass: `bidsnet masks` errors were signed "python -m bidsnet_lib.masks"."""
    from bidsnet_lib.cli import main as bidsnet

    assert bidsnet(["masks", "write", "--out", str(tmp_path), "--size", "0"]) == 2
    assert capsys.readouterr().err.startswith("bidsnet masks: error: size: got 0")
