"""The shipped photos in data/images: manifest, licences, sizes, split and tools/make_photos.py."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "data" / "images"
LICENSES = ROOT / "data" / "LICENSES.md"


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_photos", ROOT / "tools" / "make_photos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


make_photos = _load_tool()


@pytest.fixture(scope="module")
def manifest() -> list[dict[str, str]]:
    with open(IMAGES / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_manifest_lists_exactly_the_files_present(manifest):
    on_disk = sorted(str(p.relative_to(IMAGES)) for p in IMAGES.glob("*/*") if p.is_file())
    assert sorted(r["file"] for r in manifest) == on_disk
    assert list(manifest[0]) == make_photos.MANIFEST_FIELDS
    for r in manifest:
        assert r["file"].split("/")[0] == r["split"] in ("train", "test")
        assert all(r[k].strip() for k in make_photos.MANIFEST_FIELDS), r


def test_every_file_has_source_author_and_licence_in_licenses_md(manifest):
    rows = [
        line for line in LICENSES.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    by_file = {line.split("`")[1]: line for line in rows}
    assert sorted(by_file) == sorted(r["file"] for r in manifest)
    for r in manifest:
        line = by_file[r["file"]]
        assert r["source"] in line and r["author"] in line and r["licence"] in line
        assert r["licence"] in make_photos.LICENCE_URLS


def test_photos_are_rgb_with_short_side_512(manifest):
    for r in manifest:
        with Image.open(IMAGES / r["file"]) as im:
            assert im.mode == "RGB", r["file"]
            assert min(im.size) == 512, (r["file"], im.size)
            w, h = (int(v) for v in r["original_size"].split("x"))
            # Aspect ratio kept to within one pixel of rounding.
            assert abs(max(im.size) - 512 * max(w, h) / min(w, h)) <= 1, r["file"]


def test_split_is_by_photo_about_80_20_and_varied(manifest):
    train = [r for r in manifest if r["split"] == "train"]
    test = [r for r in manifest if r["split"] == "test"]
    assert len({r["source"] for r in manifest}) == len(manifest)  # each source photo once
    stems = [Path(r["file"]).name for r in manifest]
    assert len(set(stems)) == len(stems)
    assert len(test) >= 4 and 0.15 <= len(test) / len(manifest) <= 0.3
    assert len({Path(r["file"]).name.split("_")[0] for r in test}) >= 2  # several packages
    assert len(train) > len(test)


def test_no_test_photo_reappears_in_train(manifest):
    def thumb(rel):
        with Image.open(IMAGES / rel) as im:
            return np.asarray(im.convert("L").resize((16, 16)), np.float64).ravel()

    train = [thumb(r["file"]) for r in manifest if r["split"] == "train"]
    for r in (r for r in manifest if r["split"] == "test"):
        t = thumb(r["file"])
        assert all(np.corrcoef(t, u)[0, 1] < 0.98 for u in train), r["file"]


def test_data_folder_within_size_budget():
    total = sum(p.stat().st_size for p in (ROOT / "data").rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024, f"data/ holds {total / 2**20:.1f} MB"


def test_packaged_photos_rebuild_to_the_shipped_files(manifest):
    rows = {Path(r["file"]).stem: r for r in manifest}
    for photo, load in make_photos.PACKAGED:
        row = rows[photo.name]
        assert (row["source"], row["author"], row["licence"]) == (
            photo.source,
            photo.author,
            photo.licence,
        )
        rebuilt = make_photos.resize_short_side(load()).astype(np.float64)
        with Image.open(IMAGES / row["file"]) as im:
            shipped = np.asarray(im, np.float64)
        assert shipped.shape == rebuilt.shape
        psnr = 10 * np.log10(255**2 / np.mean((shipped - rebuilt) ** 2))
        assert psnr > 36, (photo.name, psnr)  # JPEG q92 loss only


def test_resize_short_side_keeps_aspect():
    out = make_photos.resize_short_side(np.zeros((300, 451, 3), np.uint8))
    assert out.shape == (512, 770, 3)
    out = make_photos.resize_short_side(np.zeros((3000, 2000, 3), np.uint8))
    assert out.shape == (768, 512, 3)


def test_assign_splits_is_stratified_and_deterministic():
    photos = [
        make_photos.Photo(f"{g}_{i}", g, f"{g}/{i}", "a", "CC0-1.0", "")
        for g, n in (("a", 14), ("b", 4), ("c", 2), ("d", 1))
        for i in range(n)
    ]
    split = make_photos.assign_splits(photos, test_fraction=0.2, seed=1)
    assert split == make_photos.assign_splits(photos, test_fraction=0.2, seed=1)
    test = sorted(name for name, s in split.items() if s == "test")
    assert len(test) == 4  # round(0.2 * 21)
    assert sum(t.startswith("a_") for t in test) == 3 and sum(t.startswith("b_") for t in test) == 1


def test_parse_debian_copyright():
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        'Files: 16.04/Dragonfly_by_Bolly.jpg\nCopyright: "Bolly", 2018\n'
        "License: CC-BY-SA-4.0\n\n"
        "Files: debian/*\n AUTHORS\nCopyright: 2018, Someone\n  2022, Else\nLicense: Expat\n\n"
        "License: Expat\n Permission is hereby granted\n"
    )
    parsed = make_photos.parse_debian_copyright(text)
    assert parsed["Dragonfly_by_Bolly.jpg"] == (
        "16.04/Dragonfly_by_Bolly.jpg",
        '"Bolly", 2018',
        "CC-BY-SA-4.0",
    )
    assert parsed["AUTHORS"][2] == "Expat"


def test_missing_lomiri_tree_fails_with_the_apt_command(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_photos.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert "apt-get download lomiri-wallpapers" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no extracted lomiri-wallpapers tree.*apt-get download"):
        make_photos.main([str(tmp_path), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
