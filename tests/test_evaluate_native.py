"""bidsnet_lib.evaluate (native): photos at their own resolution with their own masks, by mask kind,
and `bidsnet evaluate --hires`."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from bidsnet_lib.commands.evaluate import main
from bidsnet_lib.evaluate import (
    HIRES_JOURNAL,
    NativePair,
    NativeResult,
    RowJournal,
    evaluate_native,
    load_native_set,
    score_fill,
    whole_photo_baseline,
)
from bidsnet_lib.inference import SHIPPED_CHECKPOINT
from bidsnet_lib.masks import NATIVE_KINDS, write_native_set

SHIPPED_LABEL = "BIDS-Net (Telea fill + residual head, bidsnet_small.pt)"


@pytest.fixture(scope="module")
def hires(tmp_path_factory):
    """Two photos of different sizes and one native mask of each kind for each: (photos, masks)."""
    root = tmp_path_factory.mktemp("hires")
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(skdata.astronaut()).resize((160, 120)).save(photos / "astronaut.png")
    Image.fromarray(skdata.coffee()).resize((100, 150)).save(photos / "coffee.png")
    write_native_set(photos, root / "masks", seed=0, per_kind=1)
    return photos, root / "masks"


def test_each_photo_is_paired_with_its_own_masks_of_every_kind(hires):
    photos, masks = hires
    pairs = load_native_set(photos, masks)
    assert [p.kind for p in pairs] == [k for k in NATIVE_KINDS for _ in range(2)]
    assert all(p.masks[0].parent.name == p.photo.stem and p.masks[0].parent.parent.name == p.kind for p in pairs)


def test_an_incomplete_set_is_refused_naming_what_is_missing(hires, tmp_path):
    photos, masks = hires
    extra = tmp_path / "photos"
    extra.mkdir()
    for p in photos.iterdir():
        (extra / p.name).write_bytes(p.read_bytes())
    Image.fromarray(skdata.camera()).save(extra / "camera.png")
    with pytest.raises(ValueError, match="masks/blob: got 'folders for 2 photos', .*unmatched: camera"):
        load_native_set(extra, masks)
    with pytest.raises(ValueError, match="masks: got .* expected subfolders named blob, strokes, scribbles"):
        load_native_set(photos, tmp_path)
    with pytest.raises(ValueError, match="images: got .*absent.*, expected a folder"):
        load_native_set(tmp_path / "absent", masks)


def truth_of(pair: NativePair):
    return np.asarray(Image.open(pair.photo).convert("RGB"))


def test_the_truth_scores_sharpness_1_a_blur_less_and_known_pixels_stay():
    rgb = np.asarray(Image.fromarray(skdata.astronaut()).resize((160, 120)))
    holes = np.zeros((120, 160), np.uint8)
    holes[30:90, 40:120] = 1
    assert score_fill(rgb, rgb, holes)["sharpness"] == pytest.approx(1.0)
    blurred = np.where(holes[..., None] > 0, cv2.GaussianBlur(rgb, (0, 0), 4), rgb)
    assert score_fill(blurred, rgb, holes)["sharpness"] < 0.6
    filled = whole_photo_baseline("telea", 3)(rgb, holes)
    np.testing.assert_array_equal(filled[holes == 0], rgb[holes == 0])
    assert filled.shape == rgb.shape and filled.dtype == np.uint8


def test_evaluate_native_compares_every_method_with_the_baselines_photo_by_photo(hires):
    pairs = load_native_set(*hires)
    result = evaluate_native({"truth": lambda rgb, holes: rgb.copy(), "telea": whole_photo_baseline("telea")},
                             pairs, baselines=("telea",))
    assert len(result.rows) == 2 * len(pairs)  # one mask a pair, two methods
    summary = {(e["kind"], e["method"]): e for e in result.summary()}
    for kind in NATIVE_KINDS:
        truth, telea = summary[kind, "truth"], summary[kind, "telea"]
        assert truth["sharpness"] == pytest.approx(1.0) and truth["photos"] == 2
        assert truth["ssim"] == pytest.approx(1.0) and truth["ssim"] > telea["ssim"]
        assert truth["ssim_vs_telea"]["wins"] == 1.0 and "truth_vs_telea" not in telea
    table = result.markdown()
    assert table.count("| strokes |") == 3 and "| scribbles | truth | telea |" in table  # 2 rows + 1 difference


def test_evaluate_native_refuses_unknown_baselines_and_empty_methods(hires):
    pairs = load_native_set(*hires)
    with pytest.raises(ValueError, match=r"baselines: got \['ns'\], expected names among the methods"):
        evaluate_native({"telea": whole_photo_baseline("telea")}, pairs, baselines=("ns",))
    with pytest.raises(ValueError, match="methods: got {}, expected a non-empty"):
        evaluate_native({}, pairs)


def test_an_interrupted_evaluation_goes_on_from_its_journal(hires, tmp_path):
    pairs = load_native_set(*hires)
    calls = []

    def truth(rgb, holes):
        calls.append(holes.shape)
        if len(calls) == 4:
            raise KeyboardInterrupt  # stopped in the middle of the fourth fill
        return rgb.copy()

    methods = {"truth": truth, "telea": whole_photo_baseline("telea")}
    journal = RowJournal(tmp_path / "rows.jsonl", {"weights": "abc"})
    with pytest.raises(KeyboardInterrupt):
        evaluate_native(methods, pairs, baselines=("telea",), journal=journal)
    with open(tmp_path / "rows.jsonl", "a") as f:
        f.write('{"kind": "blob", "meth')  # a line cut short by the kill
    kept = RowJournal(tmp_path / "rows.jsonl", {"weights": "abc"})
    assert len(kept.rows) == 3 + 3  # three fills of each method were written before the stop
    calls.clear()
    result = evaluate_native(methods, pairs, baselines=("telea",), journal=kept)
    assert len(calls) == len(pairs) - 3  # only the fills not kept are made again
    assert len(result.rows) == 2 * len(pairs)
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 2 * len(pairs) and all(json.loads(line) for line in lines)  # the torn line cut off
    assert len(RowJournal(tmp_path / "rows.jsonl", {"weights": "abc"}).rows) == 2 * len(pairs)
    (tmp_path / "junk.jsonl").write_text("not a journal\n")
    with pytest.raises(ValueError, match="not a settings header"):
        RowJournal(tmp_path / "junk.jsonl", {"weights": "abc"})
    with pytest.raises(ValueError, match=r"other settings \(differing: \['weights'\]\)"):
        RowJournal(tmp_path / "rows.jsonl", {"weights": "another checkpoint"})


def test_peak_memory_sees_an_allocation_while_it_lives():
    # In a fresh process: in a test worker, memory freed by earlier tests stays resident and a new
    # 64 MB array can reuse it without the RSS growing (seen in CI: 0 MB).
    script = ("import numpy as np\nfrom bidsnet_lib.evaluate import PeakMemory\n"
              "with PeakMemory() as memory:\n    block = np.ones(64 * 2**20, np.uint8)\nprint(memory.peak_mb)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert float(out) >= 48  # 64 MB, touched, alive when the block ends: seen at exit


def test_bidsnet_evaluate_hires_runs_both_model_paths_and_the_baselines(hires, tmp_path, capsys):
    photos, masks = hires
    code = main(["--hires", "--checkpoint", str(SHIPPED_CHECKPOINT), "--images", str(photos), "--masks", str(masks),
                 "--baselines", "telea", "--out", str(tmp_path / "out"), "--device", "cpu", "--no-mirror",
                 "--work-size", "64"])  # photos larger than the working square: coarse to fine has levels
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "out" / "results_hires.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {f"{SHIPPED_LABEL}, thumbnail", f"{SHIPPED_LABEL}, coarse to fine", "telea"}
    assert all(np.isfinite(r["psnr"]) and r["seconds"] > 0 for r in rows)
    # The thumbnail row is the old path, not coarse to fine again (from_checkpoint's default now).
    psnr = {(r["method"], r["kind"], r["photo"], r["mask"]): r["psnr"] for r in rows}
    assert any(psnr[(f"{SHIPPED_LABEL}, thumbnail", *key[1:])] != value for key, value in psnr.items()
               if key[0] == f"{SHIPPED_LABEL}, coarse to fine")
    assert f"| blob | {SHIPPED_LABEL}, coarse to fine | telea |" in (
        tmp_path / "out" / "results_hires.md").read_text()
    assert (tmp_path / "out" / HIRES_JOURNAL).is_file()
    capsys.readouterr()
    assert main(["--hires", "--checkpoint", str(SHIPPED_CHECKPOINT), "--images", str(photos), "--masks", str(masks),
                 "--baselines", "telea", "--out", str(tmp_path / "out"), "--device", "cpu", "--no-mirror",
                 "--work-size", "64"]) == 0  # the same command again: every fill read back
    err = capsys.readouterr().err
    assert f"{len(rows)} of {len(rows)} fills kept" in err and " dB, " not in err
    assert json.loads((tmp_path / "out" / "results_hires.json").read_text())["rows"] == rows
    assert main(["--hires", "--checkpoint", str(SHIPPED_CHECKPOINT), "--images", str(photos), "--masks", str(masks),
                 "--baselines", "telea", "--out", str(tmp_path / "out"), "--device", "cpu", "--work-size", "64"]) == 2
    assert "differing: ['mirror']" in capsys.readouterr().err
    assert main(["--hires", "--checkpoint", str(SHIPPED_CHECKPOINT), "--images", str(tmp_path),
                 "--masks", str(masks), "--out", str(tmp_path / "o2")]) == 2
    assert "expected subfolders" not in capsys.readouterr().err  # the photos are what is missing here
    assert main(["--hires", "--realism", "--checkpoint", str(SHIPPED_CHECKPOINT), "--out", str(tmp_path / "o3")]) == 2
    assert "--realism with --hires" in capsys.readouterr().err


def test_native_result_means_a_photos_masks_first():
    result = NativeResult(rows=[{"kind": "blob", "method": "m", "photo": p, "mask": k, "psnr": v, "ssim": 0.5,
                                 "sharpness": 1.0, "seconds": 1.0, "peak_mb": 1.0}
                                for p, k, v in (("a", "0", 10.0), ("a", "1", 20.0), ("b", "0", 30.0))])
    assert result.photo_means("blob", "m", "psnr") == {"a": 15.0, "b": 30.0}
    assert result.summary()[0]["psnr"] == 22.5  # the mean of photos, not of masks (20.0)
