"""bidsnet_lib.data: folders, colour conversion, crops, flips, mask mix, determinism, errors."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib import data as data_module
from bidsnet_lib import masks, plumbing
from bidsnet_lib.data import (
    COURSE_IMAGES,
    DEFAULT_MASKS_DIR,
    LARGE_PHOTO,
    InpaintingDataset,
    course_photos,
    find_images,
    fixed_validation_set,
    large_photo,
    mask_sources,
)


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """Images at several depths, extensions in mixed case, and files that must be ignored."""
    root = tmp_path / "photos"
    save(root / "a.jpg", noise(200, 300, 1))
    save(root / "sub" / "b.PNG", noise(64, 64, 2))
    save(root / "sub" / "deeper" / "c.webp", noise(50, 40, 3))
    save(root / "d.JPEG", noise(120, 90, 4))
    (root / "notes.txt").write_text("not an image")
    save(root / "e.gif", noise(40, 40, 5))
    return root


@pytest.fixture
def square(tmp_path):
    """One 64×64 PNG: with size 64 and crop_scale (1, 1) a training crop is the whole image."""
    return save(tmp_path / "square" / "x.png", noise(64, 64, 7)).parent


def test_find_images_recursive_and_case_insensitive(tree):
    paths, bad = find_images(tree)
    names = [p.relative_to(tree).as_posix() for p in paths]
    assert names == ["a.jpg", "d.JPEG", "sub/b.PNG", "sub/deeper/c.webp"] and bad == []
    both, _ = find_images([tree / "sub", str(tree / "sub" / "deeper")])
    assert len(both) == 3  # one list per root, concatenated in the order given


def test_grayscale_and_rgba_become_rgb(tmp_path):
    grey = plumbing.read_photo(save(tmp_path / "g.png", np.full((8, 8), 90, np.uint8), "L")).rgb
    assert grey.shape == (8, 8, 3) and np.all(grey == 90)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red under every pixel
    rgba[:4, :, 3] = 0  # top half fully transparent
    rgba[4:, :, 3] = 128  # bottom half half-transparent
    out = plumbing.read_photo(save(tmp_path / "t.png", rgba, "RGBA")).rgb.astype(int)
    assert np.all(out[:4] == 255)  # composited on white, not black, and not the hidden red
    np.testing.assert_allclose(out[4:, :, 0], 200 * 128 / 255 + 255 * 127 / 255, atol=1)
    np.testing.assert_allclose(out[4:, :, 1], 255 * 127 / 255, atol=1)


def test_dataset_items_from_grey_rgba_and_exif_rotated_files(tmp_path):
    root = tmp_path / "mixed"
    save(root / "g.png", np.full((40, 40), 90, np.uint8), "L")
    rgba = np.zeros((40, 40, 4), np.uint8)
    save(root / "t.png", rgba, "RGBA")  # fully transparent: white
    tall = np.zeros((80, 40, 3), np.uint8)
    tall[:, :20] = 255  # stored 40 wide × 80 tall, left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: 80 wide × 40 tall, top half white
    root.mkdir(exist_ok=True)
    Image.fromarray(tall).save(root / "r.jpg", exif=exif, quality=95)
    assert plumbing.image_size(root / "r.jpg") == (80, 40)
    assert plumbing.read_photo(root / "r.jpg").rgb.shape == (40, 80, 3)
    val = InpaintingDataset(root, size=32, train=False, masks_dir=DEFAULT_MASKS_DIR)
    grey, rotated, white = (val[i]["image"] for i in range(3))  # sorted: g, r, t
    assert torch.allclose(grey, torch.full_like(grey, 90 / 255), atol=1e-6)
    assert torch.all(white == 1)
    # The centre crop of the shown (landscape) photo: white above, black below.
    assert rotated[:, :12].mean() > 0.95 and rotated[:, -12:].mean() < 0.05


def test_jpeg_draft_decoding_crops_the_same_region(tmp_path):
    y, x = np.mgrid[0:384, 0:512]
    smooth = np.stack([x / 2, y / 1.5, (x + y) / 3.5], -1).astype(np.uint8)  # 512 × 384 ramps
    path = save(tmp_path / "big" / "b.jpg", smooth)
    val = InpaintingDataset(path.parent, size=64, train=False, masks_dir=DEFAULT_MASKS_DIR)
    with Image.open(path) as full:  # no draft: decode everything, then crop and resize
        reference = full.convert("RGB").resize(
            (64, 64), Image.Resampling.BICUBIC, box=(64, 0, 448, 384)
        )
    expected = torch.from_numpy(np.array(reference)).permute(2, 0, 1) / 255
    assert (val[0]["image"] - expected).abs().mean() < 0.02


@pytest.mark.parametrize("train", [True, False])
def test_every_item_has_the_training_size(tree, tmp_path, train):
    masks_dir = tmp_path / "masks"
    save(masks_dir / "set1" / "10-20" / "000.png", np.zeros((32, 32), np.uint8))
    kwargs = {"train": True} if train else {"train": False, "masks_dir": masks_dir}
    ds = InpaintingDataset(tree, size=48, **kwargs)
    for i in range(len(ds)):  # 300×200, 64×64, 40×50 (smaller than 48: upscaled), 90×120
        item = ds[i]
        assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 48, 48)
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_small_image_is_upscaled_keeping_aspect(tmp_path):
    ramp = np.zeros((80, 40, 3), np.uint8)  # 40 wide, 80 tall; brightness grows left to right
    ramp[:] = np.linspace(0, 255, 40).astype(np.uint8)[None, :, None]
    root = save(tmp_path / "ramp" / "r.png", ramp).parent
    ds = InpaintingDataset(root, size=64, flip=False)
    for epoch in range(5):
        ds.set_epoch(epoch)
        row = ds[0]["image"][0, 32]
        # The whole width (short side) is in the crop: dark left edge, bright right edge.
        assert row[0] < 0.05 and row[-1] > 0.95


def test_large_image_crop_scale_bounds(tmp_path):
    root = save(tmp_path / "big" / "b.png", noise(256, 384)).parent
    for scale in [(0.25, 0.25), (1.0, 1.0)]:
        ds = InpaintingDataset(root, size=64, crop_scale=scale, flip=False)
        assert ds[0]["image"].shape == (3, 64, 64)
    with pytest.raises(ValueError, match=r"crop_scale: got \(0.0, 1.0\), expected \(low, high\)"):
        InpaintingDataset(root, size=64, crop_scale=(0.0, 1.0))


def test_flips_happen_about_half_the_time(square):
    ds = InpaintingDataset(square, size=64, crop_scale=(1.0, 1.0), mask_mix={"set2/thick": 1})
    original = torch.from_numpy(np.array(Image.open(square / "x.png"))).permute(2, 0, 1) / 255
    flipped = 0
    for epoch in range(40):
        ds.set_epoch(epoch)
        image = ds[0]["image"]
        if torch.allclose(image, original.flip(-1), atol=1e-6):
            flipped += 1
        else:
            torch.testing.assert_close(image, original)  # otherwise exactly the photo
    assert 10 <= flipped <= 30
    no_flip = InpaintingDataset(square, size=64, crop_scale=(1.0, 1.0), flip=False)
    assert all(torch.equal(no_flip[0]["image"], original) for _ in range(3))


def test_mask_mix_probabilities_and_sources(square, tmp_path):
    folder = tmp_path / "ext"
    block = np.zeros((40, 40), np.uint8)
    block[10:30, 10:30] = 255
    save(folder / "m.png", block)
    mix = {"set1/30-40": 1, "set2/thin": 2, "folder": 1}
    ds = InpaintingDataset(square, size=32, mask_mix=mix, mask_folder=folder)
    counts = {"set1/30-40": 0, "set2/thin": 0, "folder": 0}
    for epoch in range(400):
        ds.set_epoch(epoch)
        item = ds[0]
        counts[item["mask_source"]] += 1
        if item["mask_source"] == "set1/30-40":
            assert 0.3 <= item["mask"].mean().item() < 0.4  # Set I masks lie in their bin
    shares = {k: v / 400 for k, v in counts.items()}
    assert abs(shares["set1/30-40"] - 0.25) < 0.07 and abs(shares["set2/thin"] - 0.5) < 0.07
    assert abs(shares["folder"] - 0.25) < 0.07


def test_default_mix_uses_every_set1_bin(square):
    ds = InpaintingDataset(square, size=32)
    seen = set()
    for epoch in range(80):
        ds.set_epoch(epoch)
        seen.add(ds[0]["mask_source"])
    assert seen == {f"set1/{masks.bin_name(b)}" for b in masks.RATIO_BINS} | {"set2/train"}


def test_bad_mask_mix_is_named(square):
    with pytest.raises(
        ValueError, match=r"mask_mix: unknown source 'set3', expected keys from \['set1'"
    ):
        InpaintingDataset(square, size=32, mask_mix={"set3": 1})
    with pytest.raises(ValueError, match="'folder' has weight > 0 but mask_folder is None"):
        InpaintingDataset(square, size=32, mask_mix={"folder": 1})
    with pytest.raises(ValueError, match=r"mask_mix\['set1'\]: got -1, expected a finite number >= 0"):
        InpaintingDataset(square, size=32, mask_mix={"set1": -1})
    with pytest.raises(ValueError, match="mask_mix: weights sum to 0"):
        InpaintingDataset(square, size=32, mask_mix={"set1": 0})
    assert "set2/train" in mask_sources() and "set1/50-60" in mask_sources()


def test_items_are_deterministic_per_seed_epoch_index(tree):
    a, b = InpaintingDataset(tree, size=32), InpaintingDataset(tree, size=32)
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["mask"], b[i]["mask"])
    first = a[1]
    assert torch.equal(a[1]["mask"], first["mask"])  # reading again changes nothing
    a.set_epoch(1)
    assert not torch.equal(a[1]["mask"], first["mask"])
    other_seed = InpaintingDataset(tree, size=32, seed=5)
    assert not torch.equal(other_seed[1]["mask"], first["mask"])
    with pytest.raises(ValueError, match="epoch: got -1"):
        a.set_epoch(-1)


def test_dataloader_with_two_workers_matches_one_process(tree):
    ds = InpaintingDataset(tree, size=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [b["image"].shape for b in batches] == [(2, 3, 32, 32)] * 2
    direct = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    torch.testing.assert_close(torch.cat([b["mask"] for b in batches]), direct)


def test_fixed_validation_set_is_fixed_and_centre_cropped(tmp_path):
    root = save(tmp_path / "val" / "v.png", noise(60, 90)).parent
    save(root / "w.png", noise(64, 64, 9))
    val = fixed_validation_set(root, size=48)  # the shipped bidsnet_lib/eval_masks
    n_masks = sum(1 for _ in DEFAULT_MASKS_DIR.glob("set[12]/*/*.png"))
    assert len(val) == max(2, n_masks) and n_masks >= 50
    again = fixed_validation_set(root, size=48)
    for k in (0, 1, len(val) - 1):
        assert torch.equal(val[k]["image"], again[k]["image"]) and torch.equal(
            val[k]["mask"], again[k]["mask"]
        )
    assert val[0]["mask_source"] == "set1/10-20" and val[len(val) - 1]["mask_source"].startswith(
        "set2/"
    )
    centre = Image.open(root / "v.png").resize(
        (48, 48), Image.Resampling.BICUBIC, box=(15, 0, 75, 60)
    )
    expected = torch.from_numpy(np.array(centre)).permute(2, 0, 1) / 255
    torch.testing.assert_close(val[0]["image"], expected)  # centre crop, no flip
    val.set_epoch(3)
    assert torch.equal(val[0]["image"], expected)  # epochs change nothing in validation
    mask_file = sorted((DEFAULT_MASKS_DIR / "set2" / "thick").glob("*.png"))[1]
    only_thick = fixed_validation_set(root, size=256, mask_groups=["set2/thick"])
    assert {only_thick[k]["mask_source"] for k in range(len(only_thick))} == {"set2/thick"}
    np.testing.assert_array_equal(only_thick[1]["mask"][0].numpy(), plumbing.read_mask(mask_file))


def test_validation_errors_name_the_masks_folder(tree, tmp_path):
    with pytest.raises(
        ValueError,
        match=f"masks_dir: '{tmp_path / 'nope'}' is not a folder.*bidsnet masks write",
    ):
        fixed_validation_set(tree, masks_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match=r"mask_groups: \['set1/90-99'\] not found"):
        fixed_validation_set(tree, mask_groups=["set1/90-99"])
    with pytest.raises(ValueError, match="mask_mix / mask_folder: only for train=True"):
        InpaintingDataset(tree, train=False, mask_mix={"set1": 1})


def test_corrupt_files_reported_with_their_path(tree):
    (tree / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"1 of 5 image files cannot be read:\n  .*broken.jpg"):
        InpaintingDataset(tree, on_error="raise")
    with pytest.warns(
        UserWarning, match=r"skipping 1 of 5 image files that cannot be read:\n  .*broken.jpg"
    ):
        ds = InpaintingDataset(tree, size=32)
    assert len(ds) == 4 and ds.skipped[0][0] == tree / "broken.jpg"


def test_truncated_file_found_late_is_skipped_not_fatal(tmp_path):
    root = tmp_path / "t"
    good = save(root / "b_good.jpg", noise(64, 64))
    data = good.read_bytes()
    (root / "a_cut.jpg").write_bytes(data[: len(data) // 3])  # header intact, data cut
    assert find_images(root)[1] == []  # a header check cannot see it ...
    with pytest.raises(ValueError, match="a_cut.jpg"):
        find_images(root, check="full", on_error="raise")  # ... a full decode can
    ds = InpaintingDataset(root, size=32)
    with pytest.warns(UserWarning, match=r"skipping unreadable image .*a_cut.jpg.*1 such files"):
        item = ds[0]
    assert item["image"].shape == (3, 32, 32) and ds.load_failures == 1


def test_empty_and_missing_folders_are_named(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(
        ValueError, match=f"roots: got '{tmp_path / 'empty'}', expected a folder holding .png/.jpg/.jpeg/.bmp"
    ):
        InpaintingDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match=f"roots: '{tmp_path / 'missing'}' is not a folder"):
        InpaintingDataset([tmp_path / "missing"])
    with pytest.raises(TypeError, match="roots: got"):
        InpaintingDataset([])
    with pytest.raises(ValueError, match="size: got 16, expected an int >= 32"):
        InpaintingDataset(tmp_path, size=16)
    with pytest.raises(ValueError, match="check: got 'deep'"):
        find_images(tmp_path, check="deep")


def test_only_unreadable_files_is_an_error_even_when_skipping(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "x.png").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning first: straight to the error
        with pytest.raises(ValueError, match=r"1 of 1 image files cannot be read:\n  .*x.png"):
            InpaintingDataset(root)


@pytest.mark.parametrize("size", [32, 64, 96, 128])
@pytest.mark.parametrize("train", [True, False])
def test_shipped_jpegs_crop_at_every_draft_scale(size, train):
    # JPEG drafts round each axis on its own (767x512 at 1/4 is 192x128); no photo may be skipped.
    shipped = Path(__file__).resolve().parents[1] / "data" / "images"
    dataset = InpaintingDataset([shipped / "train", shipped / "test"], size=size, train=train, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for index in range(len(dataset)):
            assert dataset[index]["image"].shape == (3, size, size)


def test_course_photos_are_square_crops_with_the_chosen_one_first(monkeypatch, tmp_path):
    photos = course_photos(48, limit=3, first="skimage_chelsea.jpg")
    assert len(photos) == 3 and all(p.shape == (48, 48, 3) and p.dtype == np.uint8 for p in photos)
    chelsea = masks.square_photo(plumbing.read_photo(COURSE_IMAGES / "train" / "skimage_chelsea.jpg").rgb, 48)
    assert np.array_equal(photos[0], chelsea)
    # The three splits; test_hires holds larger copies of test photos, not photos of their own.
    assert len(course_photos(32)) == sum(len(list((COURSE_IMAGES / s).glob("*.jpg"))) for s in ("test", "val", "train"))
    whole = course_photos(None, limit=1, first="skimage_chelsea.jpg")[0]
    assert np.array_equal(whole, plumbing.read_photo(COURSE_IMAGES / "train" / "skimage_chelsea.jpg").rgb)
    with pytest.raises(ValueError, match="first: got 'cat.jpg', expected one of the photos in"):
        course_photos(32, first="cat.jpg")
    monkeypatch.setattr(data_module, "COURSE_IMAGES", tmp_path)  # a bare pip install: no data/
    standins = course_photos(32, first="skimage_chelsea.jpg")
    assert len(standins) == 5 and all(p.shape == (32, 32, 3) for p in standins)


def test_large_photo_is_a_high_resolution_test_photo_or_a_stand_in(tmp_path):
    photo, about = large_photo()
    assert photo.shape == (1364, 2048, 3) and photo.dtype == np.uint8 and LARGE_PHOTO in about
    with pytest.raises(ValueError, match="name: got 'cat.jpg', expected a photo in"):
        large_photo("cat.jpg")
    standin, about = large_photo(folder=tmp_path / "absent")  # a bare pip install: no data/
    assert standin.shape == (1411, 1411, 3) and "retina" in about


# ------------------------------------------------------------------ downloadable sets
def _remote(monkeypatch, archive_name="set.tar", md5=None, folder="inner/photos", files=3):
    """Point REMOTE_SETS["places365_val_256"] at a test description."""
    remote = data_module.RemoteSet("unused://", archive_name, md5, folder, files, "a test set")
    monkeypatch.setitem(data_module.REMOTE_SETS, "places365_val_256", remote)
    return remote


def _tar(path: Path, members: dict[str, np.ndarray]) -> Path:
    import tarfile

    staging = path.parent / "staging"
    for name, array in members.items():
        save(staging / name, array)
    with tarfile.open(path, "w") as t:
        for name in members:
            t.add(staging / name, arcname=name)
    return path


def test_download_set_fetches_checks_and_unpacks_a_local_archive(tmp_path, monkeypatch):
    import hashlib

    source = _tar(tmp_path / "src" / "set.tar", {f"inner/photos/{i}.jpg": noise(16, 16, i) for i in range(3)})
    _remote(monkeypatch, md5=hashlib.md5(source.read_bytes()).hexdigest())
    drive, disk = tmp_path / "drive", tmp_path / "disk"
    folder = data_module.download_set("places365_val_256", disk, archive_dir=drive, url=source.as_uri())
    assert folder == disk / "places365_val_256"
    assert sorted(p.name for p in folder.iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert (drive / "set.tar").read_bytes() == source.read_bytes()  # kept for the next session
    assert [p.name for p in disk.iterdir()] == ["places365_val_256"]  # no scratch folder left
    # A second call (say, the next Colab session after the disk was wiped) unpacks the kept
    # archive without downloading: the url given now does not exist.
    import shutil

    shutil.rmtree(disk)
    again = data_module.download_set("places365_val_256", disk, archive_dir=drive, url="file:///no/such/file")
    assert sorted(p.name for p in again.iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]


def test_download_set_fails_clearly_offline_and_leaves_nothing(tmp_path, monkeypatch):
    _remote(monkeypatch)
    with pytest.raises(plumbing.DownloadError, match=r"could not download http://127.0.0.1:9/set.tar .*place it as "):
        data_module.download_set("places365_val_256", tmp_path, url="http://127.0.0.1:9/set.tar", timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_download_set_refuses_a_wrong_checksum_and_a_wrong_archive(tmp_path, monkeypatch):
    source = _tar(tmp_path / "src" / "set.tar", {"inner/photos/0.jpg": noise(16, 16)})
    _remote(monkeypatch, md5="0" * 32, files=1)
    with pytest.raises(plumbing.DownloadError, match="expected 0{32}"):
        data_module.download_set("places365_val_256", tmp_path / "out", url=source.as_uri())
    assert list((tmp_path / "out").iterdir()) == []
    _remote(monkeypatch, folder="elsewhere", files=1)
    with pytest.raises(plumbing.DownloadError, match=r"holds no folder 'elsewhere' \(found \['inner/photos'\]\)"):
        data_module.download_set("places365_val_256", tmp_path / "out", url=source.as_uri())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["set.tar"]  # the archive stays, no debris
    with pytest.raises(ValueError, match=r"name: got 'places2', expected one of \['pconv_test_masks', 'places365_val_256'\]"):
        data_module.download_set("places2", tmp_path)


def test_download_set_unpacks_a_zip_and_warns_on_a_wrong_count(tmp_path, monkeypatch):
    import zipfile

    png = tmp_path / "m.png"
    save(png, np.zeros((8, 8), np.uint8), "L")
    with zipfile.ZipFile(tmp_path / "test_mask.zip", "w") as z:
        z.write(png, "mask/testing_mask_dataset/00000.png")
    monkeypatch.setitem(data_module.REMOTE_SETS, "pconv_test_masks", data_module.RemoteSet(
        "unused://", "test_mask.zip", None, "mask/testing_mask_dataset", 12_000, "masks"))
    with pytest.warns(UserWarning, match="holds 1 image files, expected 12000"):
        folder = data_module.download_set("pconv_test_masks", tmp_path / "out",
                                          url=(tmp_path / "test_mask.zip").as_uri())
    assert len(masks.MaskFolder(folder)) == 1


def test_remote_sets_name_what_they_hold():
    places = data_module.REMOTE_SETS["places365_val_256"]
    assert places.url.endswith("/val_256.tar") and places.files == 36_500 and len(places.md5) == 32
    assert data_module.REMOTE_SETS["pconv_test_masks"].files == 12_000


def test_hold_out_splits_once_and_apart(tmp_path):
    folder = tmp_path / "photos"
    for i in range(10):
        save(folder / f"{i:02d}.jpg", noise(8, 8, i))
    train, test = data_module.hold_out(folder, 3)
    names = lambda f: sorted(p.name for p in f.iterdir())  # noqa: E731
    assert test == tmp_path / "photos_test" and names(test) == ["00.jpg", "03.jpg", "06.jpg"]
    assert len(names(train)) == 7 and not set(names(train)) & set(names(test))
    assert data_module.hold_out(folder, 3) == (train, test) and len(names(train)) == 7  # nothing moved again
    for i in range(10):
        save(tmp_path / "other" / f"{i}.jpg", noise(8, 8))
    with pytest.raises(ValueError, match=r"count: got 10, expected an int from 1 to 9"):
        data_module.hold_out(tmp_path / "other", 10)
    assert not (tmp_path / "other_test").exists()


def test_course_photo_folders_share_no_photo(tmp_path, monkeypatch):
    from bidsnet_lib import evaluate

    assert data_module.STANDIN_TEST_PHOTOS == evaluate.STANDIN_PHOTOS  # what notebook 07 scores on
    train, test = data_module.course_photo_folders(tmp_path)
    assert train.is_dir() and test.is_dir() and not {p.name for p in train.iterdir()} & {p.name for p in test.iterdir()}
    assert data_module.course_photo_folders(tmp_path, held_out="val")[1].name == "val"  # for choosing settings
    with pytest.raises(ValueError, match="held_out: got 'train', expected 'val' or 'test'"):
        data_module.course_photo_folders(tmp_path, held_out="train")
    monkeypatch.setattr(data_module, "COURSE_IMAGES", tmp_path / "no_data")  # a bare pip install
    train, test = data_module.course_photo_folders(tmp_path / "scratch")
    assert sorted(p.stem for p in train.iterdir()) == sorted(data_module.STANDIN_TRAIN_PHOTOS)
    assert sorted(p.stem for p in test.iterdir()) == sorted(data_module.STANDIN_TEST_PHOTOS)
    assert not set(data_module.STANDIN_TRAIN_PHOTOS) & set(data_module.STANDIN_TEST_PHOTOS)
    assert len(InpaintingDataset([train], size=64)) == 3


def test_every_image_extension_the_inpainter_reads_also_trains(tmp_path):
    """Issue 13: a folder of .bmp photos inpainted but did not train (two extension lists)."""
    for i, ext in enumerate(plumbing.IMAGE_EXTENSIONS):
        Image.fromarray(np.full((40, 40, 3), 10 * i, np.uint8)).save(tmp_path / f"p{i}{ext}")
    good, bad = find_images(tmp_path)
    assert len(good) == len(plumbing.IMAGE_EXTENSIONS) and not bad


def test_transparent_and_16_bit_photos_train_as_they_are_inpainted(tmp_path):
    """Issue 13: training composited alpha on white, the inpainter dropped it: one opener now."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255  # top opaque red, bottom transparent
    save(tmp_path / "photos" / "a.png", rgba, "RGBA")
    save(tmp_path / "photos" / "b.png", np.full((32, 32), 32768, np.uint16))
    val = InpaintingDataset(tmp_path / "photos", size=32, train=False, masks_dir=DEFAULT_MASKS_DIR)
    for index, name in enumerate(("a.png", "b.png")):
        expected = plumbing.read_photo(tmp_path / "photos" / name).rgb
        torch.testing.assert_close(val[index]["image"], torch.from_numpy(expected).permute(2, 0, 1) / 255)
    assert (val[0]["image"][:, 16:] == 1).all()  # transparent: white
    assert val[1]["image"].mean() == pytest.approx(0.5, abs=0.01)  # 16-bit scaled, not clipped to 255
