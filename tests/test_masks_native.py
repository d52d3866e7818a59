"""Masks drawn at a photo's own resolution (bidsnet_lib.masks.native): hole ratios, determinism,
shapes, widths that scale with the photo, thin scribbles, bad inputs, and the fixed mask set of
the high-resolution test photos (data/test_hires_masks)."""

import csv
import math
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from bidsnet_lib.masks import (
    HIRES_IMAGES,
    HIRES_MASKS,
    HIRES_PER_KIND,
    HIRES_SEED,
    MIN_LINE_WIDTH,
    MIN_SIZE,
    NATIVE_KINDS,
    SCRIBBLE_WIDTH,
    STROKE_WIDTH,
    blob_mask,
    hole_ratio,
    native_mask,
    native_seed,
    photo_scale,
    scribbles_mask,
    strokes_mask,
    write_native_set,
)
from bidsnet_lib.plumbing import read_mask

KINDS = list(NATIVE_KINDS)


def _widest(height: int, width: int, fractions) -> int:
    return max(MIN_LINE_WIDTH, round(fractions[1] * photo_scale(height, width)))


def _half_width(mask: np.ndarray) -> np.ndarray:
    """Each hole pixel's distance to the nearest known pixel, the photo's border counting as known."""
    return cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape, seeds", [((256, 384), 40), ((683, 1024), 8), ((MIN_SIZE, MIN_SIZE), 40),
                                          ((40, 600), 20), ((1024, 359), 8)])
def test_hole_ratio_within_the_kinds_range_for_every_seed(kind, shape, seeds):
    low, high = NATIVE_KINDS[kind]
    ratios = []
    for seed in range(seeds):
        mask = native_mask(*shape, kind, np.random.default_rng(seed))
        assert mask.shape == shape and mask.dtype == np.uint8
        ratios.append(hole_ratio(mask))  # raises unless 0/1
    assert low <= min(ratios) and max(ratios) < high, (kind, shape, min(ratios), max(ratios))
    # The targets are spread over the range, not piled at one end.
    assert max(ratios) - min(ratios) > 0.4 * (high - low)


def test_the_kinds_functions_and_native_mask_agree_and_are_deterministic():
    for kind, make in zip(KINDS, (blob_mask, strokes_mask, scribbles_mask), strict=True):
        a = make(300, 500, np.random.default_rng(7))
        b = native_mask(300, 500, kind, np.random.default_rng(7))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, make(300, 500, np.random.default_rng(8)))
        assert make(300, 500).shape == (300, 500)  # rng=None: a fresh generator


def test_one_blob_is_one_object_inside_the_photo():
    for seed in range(20):
        mask = blob_mask(600, 900, np.random.default_rng(seed))
        count, _ = cv2.connectedComponents(mask)
        assert count == 2, seed  # background + one blob
        # Object-sized: as wide as a disc of a fifth of its area at least, far wider than strokes.
        assert _half_width(mask).max() >= math.sqrt(0.2 * mask.sum() / math.pi), seed
    ys, xs = np.nonzero(blob_mask(1080, 1920, np.random.default_rng(0)))
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 1079 and xs.max() < 1919  # it fits


def test_scribbles_are_thin_and_strokes_are_thick():
    # Thin: no hole pixel is farther than about two brush widths from known pixels (crossings of
    # two or three lines are the widest places), at every size, the smallest included.
    for shape, seeds in (((MIN_SIZE, MIN_SIZE), 40), ((256, 384), 30), ((683, 1024), 8), ((1152, 2048), 3)):
        widest = _widest(*shape, SCRIBBLE_WIDTH)
        for seed in range(seeds):
            mask = scribbles_mask(*shape, np.random.default_rng(seed))
            assert _half_width(mask).max() <= 2 * widest + 1, (shape, seed)
        thinnest_stroke = max(MIN_LINE_WIDTH, round(STROKE_WIDTH[0] * photo_scale(*shape)))
        if thinnest_stroke > 4 * widest + 2:
            for seed in range(5):
                assert _half_width(strokes_mask(*shape, np.random.default_rng(seed))).max() > 2 * widest + 1


def _line_width(mask: np.ndarray) -> float:
    """The mean width of a mask of lines: twice its area over its outline's length (w L / 2 L)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2 * mask.sum() / sum(cv2.arcLength(c, True) for c in contours)


def test_widths_scale_with_the_photo():
    # Four times the photo, about four times the line (a few-pixel brush draws about 1 px wider).
    for make, fractions in ((scribbles_mask, SCRIBBLE_WIDTH), (strokes_mask, STROKE_WIDTH)):
        small, large = ([_line_width(make(*shape, np.random.default_rng(seed))) for seed in range(3)]
                        for shape in ((384, 512), (1536, 2048)))
        assert 2.5 < np.mean(large) / np.mean(small) < 5.0, (make.__name__, small, large)
        scale = photo_scale(1536, 2048)
        assert 0.8 * fractions[0] * scale < np.mean(large) < 1.2 * fractions[1] * scale, (make.__name__, large)


def test_photo_scale_and_native_seed():
    assert photo_scale(1152, 2048) == pytest.approx(1536.0)
    assert native_seed(3, "strokes", "cat", 5)[:2] == [3, 1] and native_seed(3, "strokes", "cat", 5)[3] == 5
    assert native_seed(0, "blob", "cat", 0) != native_seed(0, "blob", "dog", 0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: native_mask(0, 100), ValueError, "height: got 0, expected an int from 32 to 8192"),
    (lambda: blob_mask(100, 9000), ValueError, "width: got 9000, expected an int from 32 to 8192"),
    (lambda: strokes_mask(64.0, 64), TypeError, "height: got 64.0, expected an int"),
    (lambda: scribbles_mask(64, True), TypeError, "width: got True, expected an int"),
    (lambda: native_mask(64, 64, "dots"), ValueError, r"kind: got 'dots', expected one of \['blob', 'strokes', 'scribbles'\]"),
    (lambda: native_mask(64, 64, "blob", 5), TypeError, "rng: got int, expected a numpy.random.Generator"),
    (lambda: photo_scale(31, 64), ValueError, "height: got 31, expected an int from 32 to 8192"),
])
def test_bad_inputs_are_refused_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
        call()


# ----------------------------------------------------------------------------- the fixed set
def _photos(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(np.full((height, width, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_write_native_set_layout_bytes_and_independence(tmp_path):
    photos = _photos(tmp_path / "photos", [(48, 64), (90, 50)])
    out = tmp_path / "masks"
    written = write_native_set(photos, out, seed=3, per_kind=2)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        f"{kind}/p{i}/{n:03d}.png" for kind in KINDS for i in range(2) for n in range(2))
    for path in written:
        mask = read_mask(path)
        assert mask.shape == ((48, 64) if path.parent.name == "p0" else (90, 50))
        low, high = NATIVE_KINDS[path.parts[-3]]
        assert low <= hole_ratio(mask) < high
        expected = native_mask(*mask.shape, path.parts[-3],
                               np.random.default_rng(native_seed(3, path.parts[-3], path.parent.name,
                                                                 int(path.stem))))
        np.testing.assert_array_equal(mask, expected)
        with Image.open(path) as im:
            assert im.mode == "1"  # 1-bit PNG
    assert "seed=3, per_kind=2" in (out / "README.md").read_text()
    before = {p: p.read_bytes() for p in written}
    # The same call rewrites the same bytes; a photo's masks do not depend on the other photos.
    assert {p: p.read_bytes() for p in write_native_set(photos, out, seed=3, per_kind=2)} == before
    alone = _photos(tmp_path / "alone", [(48, 64)])
    for path in write_native_set(alone, tmp_path / "alone_masks", seed=3, per_kind=2):
        assert path.read_bytes() == before[out / path.relative_to(tmp_path / "alone_masks")]
    # Fewer masks per kind: the extra NNN.png files go, other files stay.
    (out / "blob" / "notes.txt").write_text("kept")
    assert len(write_native_set(photos, out, seed=3, per_kind=1)) == 6
    assert sorted(p.name for p in out.glob("*/*/*.png")) == ["000.png"] * 6
    assert (out / "blob" / "notes.txt").read_text() == "kept"


def test_write_native_set_refuses_bad_inputs(tmp_path):
    photos = _photos(tmp_path / "photos", [(48, 64)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    for kwargs, error, message in [
        ({"seed": -1}, ValueError, "seed: got -1, expected an int >= 0"),
        ({"per_kind": 0}, ValueError, "per_kind: got 0, expected an int >= 1"),
        ({"photos": tmp_path / "nowhere"}, ValueError, "photos: got '.*nowhere', expected a folder of photos"),
        ({"photos": tmp_path / "empty"}, ValueError, "photos: got '.*empty', expected a folder holding photos"),
        ({"out": tmp_path / "file"}, ValueError, "out: got '.*file', expected a folder for the mask set"),
    ]:
        args = {"photos": photos, "out": tmp_path / "out", **kwargs}
        with pytest.raises(error, match=message):
            write_native_set(**args)


@pytest.fixture(scope="module")
def hires_sizes() -> dict[str, tuple[int, int]]:
    with open(HIRES_IMAGES.parent / "manifest_hires.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["file"].split("/")[-1].rsplit(".", 1)[0]: tuple(map(int, r["size"].split("x")))[::-1]
            for r in rows}


def test_shipped_set_holds_every_hires_photos_masks_at_its_size(hires_sizes):
    found = sorted(p.relative_to(HIRES_MASKS).as_posix() for p in HIRES_MASKS.rglob("*") if p.is_file())
    expected = sorted(f"{kind}/{stem}/{n:03d}.png" for kind in KINDS for stem in hires_sizes
                      for n in range(HIRES_PER_KIND))
    assert found == sorted([*expected, "README.md"])
    ratios = {kind: [] for kind in KINDS}
    for rel in expected:
        kind, stem, _ = rel.split("/")
        mask = read_mask(HIRES_MASKS / rel)
        assert mask.shape == hires_sizes[stem], rel
        ratios[kind].append(hole_ratio(mask))
    for kind, (low, high) in NATIVE_KINDS.items():
        assert low <= min(ratios[kind]) and max(ratios[kind]) < high, (kind, min(ratios[kind]), max(ratios[kind]))
    readme = (HIRES_MASKS / "README.md").read_text()
    assert f"seed={HIRES_SEED}, per_kind={HIRES_PER_KIND}" in readme and f"{len(hires_sizes)} photos" in readme


def test_shipped_set_rewrites_byte_for_byte(tmp_path, hires_sizes):
    # Three photos (the smallest, a 1,920-px and the largest): their masks do not depend on the
    # others, so rewriting them alone must give the shipped bytes.
    by_area = sorted(hires_sizes, key=lambda s: (hires_sizes[s][0] * hires_sizes[s][1], s))
    chosen = [by_area[0], next(s for s in by_area if hires_sizes[s] == (1080, 1920)), by_area[-1]]
    photos = tmp_path / HIRES_IMAGES.name
    photos.mkdir()
    for stem in chosen:
        shutil.copy(HIRES_IMAGES / f"{stem}.jpg", photos)
    out = tmp_path / "masks"
    written = write_native_set(photos, out, seed=HIRES_SEED, per_kind=HIRES_PER_KIND)
    assert len(written) == 3 * len(KINDS) * HIRES_PER_KIND
    for path in written:
        assert path.read_bytes() == (HIRES_MASKS / path.relative_to(out)).read_bytes(), path
