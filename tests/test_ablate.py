"""bidsnet_lib.ablate (runner): the quick study end to end, resume, plans, docs sections, the published
tables (the studies and the verdict rule: test_ablate_studies.py, test_ablate_tables.py)."""

import csv
import dataclasses
import shutil

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
    resolve_studies,
    section_markers,
    study_variants,
    training_seconds,
    write_docs_section,
)
from bidsnet_lib.commands.ablate import main
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.plumbing import SHIPPED_IMAGES, image_files
from bidsnet_lib.train import Trainer


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_study_end_to_end_then_resume(tmp_path, capsys):
    out, docs = tmp_path / "out", tmp_path / "ablations.md"
    # 4 of the test photos: the runner's plumbing is the same for 37, at a fraction of the time.
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_files(SHIPPED_IMAGES)[:4]:
        shutil.copy2(path, photos / path.name)
    images = ["--images", str(photos)]
    begin, end = section_markers("fusion")
    docs.write_text(f"# Ablations\n\n{section_markers('status')[0]}\nnot yet run\n{section_markers('status')[1]}\n"
                    f"intro kept\n\n{begin}\nStatus: not yet run.\n{end}\n\ntail kept\n")
    assert main(["--study", "fusion", "--quick", *images, "--out", str(out), "--docs", str(docs)]) == 0
    printed = capsys.readouterr().out
    assert "runs: 4 (0 finished earlier, 4 to do)" in printed and "estimated time" in printed

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
    assert "LPIPS: not measured (`--lpips off`" in table
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
    assert text.count(begin) == 1 and "Claim: Selective Feature Fusion" in text
    assert "Status: quick mode only" in text and "Verdicts of the published studies: fusion: **" in text
    run = out / "runs" / "reference" / "seed0"
    assert (run / "results.json").is_file() and (run / "model.pt").is_file() and not (run / "latest.pt").exists()

    # Interrupted mid-run: one run only part-trained (a checkpoint, no results). The next
    # invocation reuses the three finished runs untouched and resumes that one (in a worker
    # process: --jobs 2 takes the process-pool path).
    settings = AblationSettings.quick_preset()
    partial = out / "runs" / "fusion=add" / "seed1"
    for path in partial.iterdir():
        path.unlink()
    Trainer(settings.train_config(dataclasses.replace(BIDSNetConfig.small(), fusion="add"), 1), partial,
            progress=False).train(until=1)
    finished = sorted(p for p in out.glob("runs/*/seed*/results.json"))
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    assert len(finished) == 3
    assert main(["--study", "fusion", "--quick", *images, "--jobs", "2", "--out", str(out)]) == 0
    assert "runs: 4 (3 finished earlier, 1 to do) in" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    assert (partial / "results.json").is_file() and not (partial / "latest.pt").exists()
    assert read_csv(out / "fusion.csv")[0] == summary[0]  # the reference's numbers, reused

    # Other settings over the same runs: refused, naming what differs.
    assert main(["--study", "fusion", "--quick", *images, "--steps", "3", "--out", str(out)]) == 2
    assert "train.steps" in capsys.readouterr().err


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
    # The paper's choice is the unchanged small model; the course's own start study claims a change.
    assert {keys[name][study.winner] for name, study in STUDIES.items() if name != "start"} == {"reference"}
    assert keys["start"]["input_fill=zeros, output=image"] == "reference"
    assert [t.folder.name for t in tasks[:2]] == ["seed0", "seed1"]
    for study in STUDIES.values():
        quick = study_variants(study, quick=True)
        assert len(quick) == 2 and study.winner in [v.name for v in quick]
    totals = {tuple(c + t for c, t in zip(cfg.cnn_widths, cfg.trans_widths, strict=True))
              for cfg in (v.config(BIDSNetConfig.small()) for v in STUDIES["channel_split"].variants)}
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
