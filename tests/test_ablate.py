"""bidsnet_lib.ablate (runner): a quick study end to end, resume, the streams and start studies in quick
mode, plans, docs sections, the published tables (the studies and the verdict rule:
test_ablate_studies.py, test_ablate_tables.py)."""

import contextlib
import csv
import dataclasses
import io
import json
import shutil
from types import SimpleNamespace

import pytest

from bidsnet_lib import ablate
from bidsnet_lib.ablate import (
    DOCS,
    STUDIES,
    STUDY_NAMES,
    AblationSettings,
    fetch_published,
    load_report,
    makespan,
    plan_tasks,
    reference_model,
    resolve_studies,
    run_ablations,
    section_markers,
    study_variants,
    training_seconds,
    write_docs_section,
)
from bidsnet_lib.checkpoint import load_inference_model
from bidsnet_lib.commands.ablate import main
from bidsnet_lib.model import BIDSNet, BIDSNetConfig, SingleStream
from bidsnet_lib.plumbing import SHIPPED_IMAGES, image_files
from bidsnet_lib.train import Trainer


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def quick_fusion(tmp_path_factory):
    """`bidsnet ablate --study fusion --quick --docs`, run once for this module's tests, training on
    and scoring 2 test photos: the runner's plumbing is the same for 244 and 37, at a fraction of the
    time. Returns its folders, the flags it shared with later invocations and what it printed."""
    tmp = tmp_path_factory.mktemp("quick")
    photos, docs = tmp / "photos", tmp / "ablations.md"
    photos.mkdir()
    for path in image_files(SHIPPED_IMAGES)[:2]:
        shutil.copy2(path, photos / path.name)
    begin, end = section_markers("fusion")
    docs.write_text(f"# Ablations\n\n{section_markers('status')[0]}\nnot yet run\n{section_markers('status')[1]}\n"
                    f"intro kept\n\n{begin}\nStatus: not yet run.\n{end}\n\ntail kept\n")
    flags = ["--quick", "--data", str(photos), "--images", str(photos), "--out", str(tmp / "out")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["--study", "fusion", *flags, "--docs", str(docs)])
    assert status == 0, printed.getvalue()
    settings = AblationSettings.quick_preset(train_images=str(photos), test_images=str(photos))
    return SimpleNamespace(tmp=tmp, out=tmp / "out", docs=docs, flags=flags, settings=settings,
                           printed=printed.getvalue())


def test_quick_study_writes_tables_verdicts_and_docs(quick_fusion):
    out, docs, tmp_path = quick_fusion.out, quick_fusion.docs, quick_fusion.tmp
    assert "runs: 4 (0 finished earlier, 4 to do)" in quick_fusion.printed
    assert "2 steps at 64 px, batch 2" in quick_fusion.printed and "estimated time" in quick_fusion.printed

    summary = read_csv(out / "fusion.csv")
    assert [r["variant"] for r in summary] == ["fusion=sff", "fusion=add", "Telea (r=3)", "Navier-Stokes (r=3)"]
    assert [r["role"] for r in summary] == ["paper's choice", "variant", "baseline", "baseline"]
    assert summary[0]["run"] == "reference" and summary[0]["seeds"] == "2"
    assert int(summary[0]["params"]) != int(summary[1]["params"])  # SFF has weights, addition none
    for row in summary[:2]:
        assert 5 < float(row["psnr_mean"]) < 60 and 0 < float(row["ssim_mean"]) <= 1 and float(row["psnr_std"]) >= 0
    groups = read_csv(out / "fusion_groups.csv")
    # (2 variants x 2 seeds + 2 baselines) x 8 mask groups x 2 metrics (LPIPS off)
    assert len(groups) == 6 * 8 * 2 and {r["metric"] for r in groups} == {"psnr", "ssim"}
    table = (out / "fusion.md").read_text()
    assert "Quick mode" in table and "**Verdict:" in table and "| **fusion=sff** (paper) |" in table
    assert "Not in this table: fusion=concat (quick mode runs the paper's choice and the first rival" in table
    assert "LPIPS: not measured (`--lpips off`" in table and "batch 2, seeds 0, 1" in table
    assert (out / "fusion.png").stat().st_size > 0
    # --docs published the data beside the page; the JSON rebuilds the same table and verdict.
    published = tmp_path / "ablations"
    assert sorted(p.name for p in published.iterdir()) == ["fusion.csv", "fusion.json", "fusion.png",
                                                           "fusion_groups.csv"]
    loaded = load_report(published / "fusion.json")
    assert loaded.markdown("fusion.png") + "\n" == table
    assert read_csv(published / "fusion.csv") == summary
    text = docs.read_text()
    assert "intro kept" in text and "tail kept" in text and "not yet run" not in text
    assert "](ablations/fusion.png)" in text
    assert text.count(section_markers("fusion")[0]) == 1 and "Claim: Selective Feature Fusion" in text
    assert "Status: quick mode only" in text and "Verdicts of the published studies: fusion: **" in text
    run = out / "runs" / "reference" / "seed0"
    assert (run / "results.json").is_file() and (run / "model.pt").is_file() and not (run / "latest.pt").exists()


def test_quick_study_resumes_an_interrupted_run(quick_fusion, capsys):
    # Interrupted mid-run: one run only part-trained (a checkpoint, no results). The next
    # invocation reuses the three finished runs untouched and resumes that one (in a worker
    # process: --jobs 2 takes the process-pool path).
    out, flags = quick_fusion.out, quick_fusion.flags
    summary = read_csv(out / "fusion.csv")
    partial = out / "runs" / "fusion=add" / "seed1"
    for path in partial.iterdir():
        path.unlink()
    Trainer(quick_fusion.settings.train_config(dataclasses.replace(reference_model(), fusion="add"), 1), partial,
            progress=False).train(until=1)
    finished = sorted(p for key in ("reference", "fusion=add") for p in (out / "runs" / key).glob("seed*/results.json"))
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    assert len(finished) == 3
    assert main(["--study", "fusion", *flags, "--jobs", "2"]) == 0
    assert "runs: 4 (3 finished earlier, 1 to do) in" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    assert (partial / "results.json").is_file() and not (partial / "latest.pt").exists()
    assert read_csv(out / "fusion.csv")[0] == summary[0]  # the reference's numbers, reused

    # Other settings over the same runs: refused, naming what differs.
    assert main(["--study", "fusion", *flags, "--steps", "3"]) == 2
    assert "train.steps" in capsys.readouterr().err

    # A part-trained run goes before a fresh one, whatever their lengths: a stop after it loses no training.
    fresh = out / "runs" / "reference" / "seed0"
    shutil.rmtree(fresh)
    shutil.rmtree(partial)
    Trainer(quick_fusion.settings.train_config(dataclasses.replace(reference_model(), fusion="add"), 1), partial,
            progress=False).train(until=1)
    assert main(["--study", "fusion", *flags, "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("[1/2] fusion=add seed 1") < printed.index("[2/2] reference seed 0")


def test_quick_streams_and_start_studies_train_their_own_rivals(quick_fusion):
    """#26: the course's two studies in quick mode, in one invocation over the fusion study's folder:
    the unchanged model's runs are reused, each study's rival is the network its config names."""
    out, lines = quick_fusion.out, []
    streams, start = run_ablations([STUDIES["streams"], STUDIES["start"]], quick_fusion.settings, out,
                                   log=lines.append)
    assert "runs: 6 (2 finished earlier, 4 to do) in" in "\n".join(lines)

    def run(key, seed=0):
        folder = out / "runs" / key / f"seed{seed}"
        model, _ = load_inference_model(folder / "model.pt", device="cpu")
        return json.loads((folder / "results.json").read_text()), json.loads((folder / "config.json").read_text()), model

    # streams: the CNN stream alone, sized to the two-stream reference's parameter count, started
    # as the reference is (Telea fill, residual head).
    reference, _, dual = run("reference")
    record, config, cnn = run("streams=cnn")
    assert type(dual) is BIDSNet and type(cnn) is SingleStream and cnn.kind == "cnn"
    assert cnn.config == dataclasses.replace(reference_model(), streams="cnn")
    assert config["model"]["streams"] == "cnn" and record["params"] != reference["params"]
    assert abs(record["params"] - reference["params"]) <= 0.1 * reference["params"]
    table = (out / "streams.md").read_text()
    assert [v.name for v in streams.variants] == ["streams=dual", "streams=cnn"]
    assert "| **streams=dual** (paper) |" in table and f"| streams=cnn | {record['params']:,} |" in table
    assert "- vs streams=cnn (must win): PSNR" in table and f"**Verdict: {streams.verdicts()[0]}**" in table
    assert "Not in this table: streams=transformer (quick mode" in table

    # start: the same network, started differently: the fill of its input and the form of its output.
    # Its winner is the reference (the default recipe's model); its quick rival, the paper's start.
    zeros_image, telea_residual = "input_fill=zeros, output=image", "input_fill=telea, output=residual"
    (_, zeros_config, zeros), (_, telea_config, telea) = run(zeros_image, 1), run("reference", 1)
    assert [(c["model"]["input_fill"], c["model"]["output"]) for c in (zeros_config, telea_config)] == [
        ("zeros", "image"), ("telea", "residual")]
    assert (zeros.config.input_fill, zeros.config.output, telea.config.input_fill, telea.config.output) == (
        "zeros", "image", "telea", "residual")  # as the written checkpoints rebuild them
    assert telea.config == reference_model() and zeros.config == BIDSNetConfig.small()
    assert start.keys == {zeros_image: zeros_image, telea_residual: "reference"}
    table = (out / "start.md").read_text()
    assert f"| **{telea_residual}** (paper) |" in table and f"| {zeros_image} |" in table
    assert f"- vs {zeros_image} (must win): PSNR" in table
    assert "Not in this table: input_fill=telea, output=image (quick mode" in table
    assert [(r["variant"], r["run"]) for r in read_csv(out / "start.csv")][:2] == [
        (zeros_image, zeros_image), (telea_residual, "reference")]  # the study's order, the paper's choice last


def test_fetch_published_downloads_checks_and_keeps(tmp_path, made_up_fusion_report):
    server = tmp_path / "server"
    server.mkdir()
    made_up_fusion_report.write_data(server)
    dest = fetch_published(tmp_path / "dest", base_url=server.as_uri(), studies=["fusion"])
    assert load_report(dest / "fusion.json").summary_rows() == made_up_fusion_report.summary_rows()
    (server / "fusion.json").write_text("<html>404</html>")
    assert fetch_published(dest, base_url=server.as_uri(), studies=["fusion"]) == dest  # kept, not fetched
    with pytest.raises(ValueError, match="not a study report"):
        fetch_published(tmp_path / "other", base_url=server.as_uri(), studies=["fusion"])
    assert list((tmp_path / "other").iterdir()) == []  # nothing half-written left behind
    with pytest.raises(ConnectionError, match="could not download .*features.json.*docs/ablations"):
        fetch_published(tmp_path / "other", base_url=server.as_uri(), studies=["features"])


def test_bad_study_name_lists_the_valid_ones(capsys):
    assert main(["--study", "fuse", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "'fuse'" in err and all(name in err for name in STUDY_NAMES)
    with pytest.raises(ValueError, match=r"expected one of \['start', 'streams', 'interaction', 'fusion', 'channel_split', "
                                         r"'nb_features', 'features', 'all'\]"):
        resolve_studies("Fusion")


def test_plan_shares_the_reference_run_and_keeps_width():
    settings = AblationSettings()
    tasks, keys = plan_tasks(resolve_studies("all"), settings, DOCS.parent / "unused")
    # 3 + 3 + 5 + 3 + 3 + 6 + 3 variants, the unchanged model and softmax once each, 2 seeds
    assert len(tasks) == 19 * 2
    # The paper's choice is the unchanged reference model in every study, the start study's too: the
    # default recipe's model (Telea fill, residual head), not the paper's zero-filled start.
    assert {keys[name][study.winner] for name, study in STUDIES.items()} == {"reference"}
    assert keys["start"]["input_fill=zeros, output=image"] == "input_fill=zeros, output=image"
    references = [t for t in tasks if t.key == "reference"]
    assert len(references) == 2 and all(t.model == reference_model() for t in references)
    assert (references[0].model.input_fill, references[0].model.output) == ("telea", "residual")
    assert [t.folder.name for t in tasks[:2]] == ["seed0", "seed1"]
    for study in STUDIES.values():
        quick = study_variants(study, quick=True)
        assert len(quick) == 2 and study.winner in [v.name for v in quick]
    totals = {tuple(c + t for c, t in zip(cfg.cnn_widths, cfg.trans_widths, strict=True))
              for cfg in (v.config(reference_model()) for v in STUDIES["channel_split"].variants)}
    assert len(totals) == 1  # equal total width at every scale
    softmax = [t for t in tasks if t.key == "attention=softmax"][0]
    assert softmax.model.attention == "softmax" and settings.train_config(softmax.model, 0).steps == settings.steps


def test_makespan_and_training_seconds():
    assert makespan([3, 2, 2], 2) == 4 and makespan([3, 2, 2], 1) == 7
    with pytest.raises(ValueError, match="jobs"):
        makespan([1], 0)
    rows = [{"step": 10, "g_total": 1, "steps_per_s": 5.0}, {"step": 20, "g_total": 1, "steps_per_s": 2.0},
            {"step": 20, "weights_sha256": ["x"]}, {"step": 25, "g_total": 1, "steps_per_s": 1.0}]
    assert training_seconds(rows) == pytest.approx(2 + 5 + 5)


def test_docs_sections(tmp_path):
    path = tmp_path / "doc.md"
    write_docs_section(path, "fusion", "first")
    write_docs_section(path, "features", "other")
    write_docs_section(path, "fusion", "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and "other" in text
    begin, _ = section_markers("interaction")
    path.write_text(f"{begin}\nno end")
    with pytest.raises(ValueError, match="no '<!-- ablate:interaction: end -->'"):
        write_docs_section(path, "interaction", "x")


def test_shipped_docs_have_a_section_per_study():
    text = DOCS.read_text()
    for name in (*STUDIES, "status"):
        begin, end = section_markers(name)
        assert text.count(begin) == 1 and text.index(begin) < text.index(end), name
    assert "bidsnet ablate --study all" in text and ablate.DEFAULT_STEPS > 0


def test_published_tables_are_a_full_run_and_match_the_page():
    text = DOCS.read_text()
    for name, study in STUDIES.items():
        begin, end = section_markers(name)
        if not (ablate.PUBLISHED / f"{name}.json").exists():  # a study not run yet says so, with its command
            section = text[text.index(begin):text.index(end)]
            assert "Not run yet" in section and f"bidsnet ablate --study {name} --docs" in section, name
            continue
        report = load_report(ablate.PUBLISHED / f"{name}.json")
        assert not report.settings.quick and report.settings.seeds >= 2, name
        names = [v.name for v in study.variants]  # a table run before the study grew names what it lacks
        assert [v.name for v in report.variants] == [n for n in names if n in {v.name for v in report.variants}]
        assert all(n in report.markdown() for n in names), name
        assert (ablate.PUBLISHED / f"{name}.png").is_file() and (ablate.PUBLISHED / f"{name}_groups.csv").is_file()
        section = text[text.index(begin) + len(begin):text.index(end)].strip()
        assert section == report.markdown(f"ablations/{name}.png"), f"docs/ablations.md's {name} section is stale"
    assert "Status: run." in text


def test_fetch_published_leaves_out_a_study_the_server_has_not_got(tmp_path, made_up_fusion_report):
    import functools
    import http.server
    import threading

    (tmp_path / "server").mkdir()
    made_up_fusion_report.write_data(tmp_path / "server")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "server"))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            dest = fetch_published(tmp_path / "dest", base_url=f"http://127.0.0.1:{server.server_port}",
                                   studies=["fusion", "start"])
        finally:
            server.shutdown()
    assert sorted(p.name for p in dest.iterdir()) == ["fusion.json"]  # start: HTTP 404, not run yet
