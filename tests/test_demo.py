"""`make demo`: galleries and the before/after grid from shipped photos, masks and checkpoint."""

import pytest
from PIL import Image

from bidsnet_lib import demo


def test_demo_writes_galleries_and_inpainting_grid(tmp_path):
    assert demo.main(["--out", str(tmp_path)]) == 0
    for name in ("masks_set1.png", "masks_set2.png", "inpainting.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.format == "PNG" and min(picture.size) > 200
    with Image.open(tmp_path / "inpainting.png") as grid:  # one row per demo mask, not per photo
        assert grid.size[1] == round(2.5 * len(demo.DEMO_MASKS) * 100)


def test_demo_masks_are_shipped():
    for name in demo.DEMO_MASKS:
        assert (demo.SHIPPED_MASKS / name).is_file(), name


def test_missing_photos_name_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DATA", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no photos in .*images/test.*tools/make_photos.py"):
        demo.shipped_photos()
