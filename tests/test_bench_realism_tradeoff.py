"""bench/realism_tradeoff.py: the fidelity-realism points of several `bidsnet evaluate --realism` runs."""

import json

import pytest
from scripts import load_script

GROUPS = (("Set I", "30-40"), ("Set I", "40-50"), ("Set I", "50-60"), ("Set II", "medium"), ("Set II", "thick"))


@pytest.fixture(scope="module")
def bench():
    return load_script("bench/realism_tradeoff.py", "bench_realism_tradeoff")


def write_run(folder, model: str, scores: dict, baselines=("Telea", "PatchMatch")):
    """A results.json as `bidsnet evaluate --realism` writes it, with made-up scores
    ({method: (psnr, detectability, sharpness)}, the same in every group; LPIPS not measured: null)."""
    rows = [{"set": s, "group": g, "method": m, "metric": metric, "value": v}
            for s, g in GROUPS for m, values in scores.items()
            for metric, v in zip(("psnr", "detectability", "sharpness", "lpips"), (*values, None), strict=True)]
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "format": "bidsnet-evaluation", "protocol": "made up", "methods": [model, *baselines],
        "baselines": list(baselines), "rows": rows, "realism": {"protocol": "made up"}}))
    return folder


def test_points_of_several_runs_share_the_baselines(bench, tmp_path, capsys):
    classical = {"Telea": (20.0, 0.90, 0.5), "PatchMatch": (19.8, 0.65, 0.9)}
    fidelity = write_run(tmp_path / "a", "BIDS-Net (a.pt)", {"BIDS-Net (a.pt)": (21.0, 0.88, 0.45), **classical})
    realism = write_run(tmp_path / "b", "BIDS-Net (b.pt)", {"BIDS-Net (b.pt)": (20.5, 0.70, 0.8), **classical})
    out = tmp_path / "docs"
    assert bench.main(["--run", f"L1+SSIM={fidelity}", "--run", f"adversarial={realism}", "--out", str(out)]) == 0
    data = json.loads((out / "tradeoff.json").read_text())
    points = {p["method"]: p for p in data["points"]}
    assert list(points) == ["Telea", "PatchMatch", "L1+SSIM", "adversarial"]
    assert points["adversarial"]["delta_psnr"] == pytest.approx(0.5) and points["PatchMatch"]["delta_psnr"] == pytest.approx(-0.2)
    assert points["adversarial"]["detectability"] == pytest.approx(0.70) and points["Telea"]["baseline"]
    assert (out / "tradeoff.png").stat().st_size > 0
    table = (out / "tradeoff.md").read_text()
    assert "| adversarial | +0.50 | 0.700 | 0.80 |" in table and table in capsys.readouterr().out


def test_runs_that_scored_the_baselines_otherwise_are_refused(bench, tmp_path, capsys):
    one = write_run(tmp_path / "a", "m", {"m": (21.0, 0.88, 0.45), "Telea": (20.0, 0.90, 0.5), "PatchMatch": (19.8, 0.65, 0.9)})
    other = write_run(tmp_path / "b", "m", {"m": (21.0, 0.88, 0.45), "Telea": (20.1, 0.90, 0.5), "PatchMatch": (19.8, 0.65, 0.9)})
    assert bench.main(["--run", f"a={one}", "--run", f"b={other}", "--out", str(tmp_path / "o")]) == 2
    assert "its baselines" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert bench.main(["--run", str(one), "--out", str(tmp_path / "o")]) == 2
    assert "expected LABEL=DIR" in capsys.readouterr().err
    assert bench.main(["--run", f"a={tmp_path}", "--out", str(tmp_path / "o")]) == 2
    assert "no " in capsys.readouterr().err


def test_the_published_points_are_read_or_downloaded_and_checked(bench, tmp_path, monkeypatch):
    from bidsnet_lib import colab
    from bidsnet_lib.evaluate import load_tradeoff

    run = write_run(tmp_path / "a", "m", {"m": (21.0, 0.88, 0.45), "Telea": (20.0, 0.90, 0.5), "PatchMatch": (19.8, 0.65, 0.9)})
    assert bench.main(["--run", f"model={run}", "--out", str(tmp_path / "docs")]) == 0
    made = load_tradeoff(tmp_path / "docs" / "tradeoff.json")
    assert [p["method"] for p in made["points"]] == ["Telea", "PatchMatch", "model"]
    # A bare install has no docs/: the file comes from the repository (here a file:// copy of it).
    monkeypatch.setattr("bidsnet_lib.evaluate.realism.TRADEOFF", tmp_path / "missing" / "tradeoff.json")
    monkeypatch.setattr(colab, "published_url", lambda relative: (tmp_path / "docs" / "tradeoff.json").as_uri())
    assert load_tradeoff(download_to=tmp_path / "published") == made
    assert (tmp_path / "published" / "tradeoff.json").is_file()
    (tmp_path / "bad.json").write_text(json.dumps({"format": "bidsnet-evaluation", "rows": []}))
    with pytest.raises(ValueError, match="written by bench/realism_tradeoff.py"):
        load_tradeoff(tmp_path / "bad.json")
    (tmp_path / "torn.json").write_text('{"format": "bidsnet-realism-tr')
    with pytest.raises(ValueError, match="not JSON"):
        load_tradeoff(tmp_path / "torn.json")
