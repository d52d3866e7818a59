"""`make rehearsal` (tools/rehearsal.py) and `make gpu-check` (tools/gpu_check.py): the switch,
the stand-in downloads read through the real download code, the memory and time records, the
verdicts; and gpu-check's CPU side (its GPU table, projection, report) with a made-up timing."""

import dataclasses
import json
import subprocess
import sys
import tarfile
import textwrap
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from course_files import ROOT
from PIL import Image
from scripts import load_script

import bidsnet_lib
from bidsnet_lib import masks
from bidsnet_lib.data import download_set, hold_out


def load_tool(name):
    sys.path.insert(0, str(ROOT / "tools"))
    return load_script(f"tools/{name}.py")


rehearsal = load_tool("rehearsal")
gpu_check = load_tool("gpu_check")


def test_the_switch_is_one_environment_variable(monkeypatch):
    monkeypatch.delenv("BIDSNET_REHEARSAL", raising=False)
    assert bidsnet_lib.rehearsal() is False
    monkeypatch.setenv("BIDSNET_REHEARSAL", "1")
    assert bidsnet_lib.rehearsal() is True
    monkeypatch.setenv("BIDSNET_REHEARSAL", "0")
    assert bidsnet_lib.rehearsal() is False


def test_notebooks_read_the_switch_from_the_library_only():
    """The notebooks with loops to cut or downloads to stand in read the one switch through
    bidsnet_lib.rehearsal(); none reads the variable itself."""
    readers = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, 4).cells)
        if "REHEARSAL" in source.replace("BIDSNET_REHEARSAL=1 (make rehearsal)", ""):
            assert "REHEARSAL = rehearsal()" in source, path.name
            readers.add(path.stem[:2])
        assert 'environ.get("BIDSNET_REHEARSAL"' not in source and "environ['BIDSNET_REHEARSAL'" not in source
    # 02, 03 and 08 have no loop worth cutting and no download; 07 reads it to let a stand-in judge
    # its blind pairs (its evaluation is cut in the library, evaluate.load_mask_groups, and its
    # backbones fail as offline, plumbing.fetch_weights).
    assert readers == {"01", "04", "05", "06", "07"}, readers


def test_the_places_stand_in_is_read_by_the_real_download_code(tmp_path):
    archive = rehearsal.places_archive(tmp_path / "drive" / "val_256.tar", count=12)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "val_256/Places365_val_00000001.jpg" and len(names) == 12
    with pytest.warns(UserWarning, match="holds 12 image files, expected 36500"):
        places = download_set("places365_val_256", tmp_path / "data", archive_dir=tmp_path / "drive")
    photos = sorted(places.iterdir())
    assert len(photos) == 12 and all(Image.open(p).size == (256, 256) for p in photos)
    assert Image.open(photos[0]).format == "JPEG"
    train, test = hold_out(places, 4)
    assert len(list(train.iterdir())) == 8 and len(list(test.iterdir())) == 4
    assert rehearsal.PLACES_PHOTOS > 500  # notebook 06 holds 500 out, as on Colab


def test_the_mask_set_stand_in_is_read_by_the_real_download_code(tmp_path):
    rehearsal.pconv_archive(tmp_path / "runs" / "mask_sets" / "test_mask.zip", count=14)
    folder = download_set("pconv_test_masks", tmp_path / "runs" / "mask_sets")  # finds the archive
    loaded = masks.MaskFolder(folder, size=256)
    ratios = [masks.hole_ratio(loaded[i]) for i in range(len(loaded))]
    assert len(loaded) == 14 and max(ratios) < 0.6 and np.median(ratios) < 0.5  # white = hole


def test_downloads_are_laid_where_the_notebooks_look(tmp_path, monkeypatch):
    monkeypatch.setattr(rehearsal, "places_archive", lambda path: path.parent.mkdir(parents=True) or path.touch())
    monkeypatch.setattr(rehearsal, "pconv_archive", lambda path: path.parent.mkdir(parents=True) or path.touch())
    folder = rehearsal.lay_downloads(tmp_path / "downloads")
    assert (folder / "datasets" / "val_256.tar").is_file()
    assert (folder / "runs" / "mask_sets" / "test_mask.zip").is_file()
    tables = {p.name for p in (folder / "runs" / "09_published").iterdir()}
    assert {"fusion.json", "interaction.json", "channel_split.json", "nb_features.json"} <= tables


def test_the_memory_record_sees_a_child_process(tmp_path):
    grow = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(0.5)"
    with rehearsal.TreePeak(interval=0.02) as peak:
        subprocess.run([sys.executable, "-c", grow], check=True)
    assert 300e6 < peak.peak < 2e9, peak.peak  # the child's 300 MiB and its interpreter, never the parent's
    assert 0 < peak.cpu_seconds < 30


def test_verdicts_and_the_table():
    results = [rehearsal.Result("01_masks", 30.4, int(0.7e9), None, "cell 32 9 s", 28.0),
               rehearsal.Result("05_losses", 50.0, int(13e9), None, "", 60.0),
               rehearsal.Result("06_training", 20.0, int(2e9), "AssertionError: x", "", 19.0)]
    assert [r.failed(12) for r in results] == [None, "peak 13.0 GB > 12 GB", "error"]
    text = rehearsal.table(results, 12, "the CPU")
    assert "| 01_masks | 30 | 28 | 0.70 | ok | cell 32 9 s |" in text
    assert "| **sum** | **100** | **107** | **13.00** (max) | 2 failed | |" in text


def test_workers_share_one_queue_and_one_table(tmp_path, monkeypatch):
    """Each notebook is claimed by one worker only; the table merges every worker's rows in
    notebook order."""
    claims = tmp_path / "claims"
    claims.mkdir()
    notebook = tmp_path / "01_masks.ipynb"
    assert rehearsal.claim(claims, notebook) is True and rehearsal.claim(claims, notebook) is False
    assert rehearsal.claim(None, notebook) is True  # one worker: no queue
    monkeypatch.setattr(rehearsal, "device_name", lambda: "the CPU")
    for worker, names in (("worker0", ["03_fast_attention"]), ("worker1", ["02_cnn_stream", "01_masks"])):
        (tmp_path / worker).mkdir()
        (tmp_path / worker / "results.json").write_text(json.dumps(
            [rehearsal.Result(name, 10.0, int(1e9), None).__dict__ for name in names]))
    results = rehearsal.write_report(tmp_path, 12, " 2 notebooks at a time.")
    assert [r.notebook for r in results] == ["01_masks", "02_cnn_stream", "03_fast_attention"]
    text = (tmp_path / "rehearsal.md").read_text()
    assert "2 notebooks at a time." in text and "| **sum** | **30** |" in text


def test_slowest_cells_come_from_the_executed_copy(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b")])
    for cell, (start, end) in zip(nb.cells, [("00:00:01", "00:00:03"), ("00:00:03", "00:00:13")], strict=True):
        cell.metadata["execution"] = {"iopub.execute_input": f"2026-01-01T{start}.000000Z",
                                      "shell.execute_reply": f"2026-01-01T{end}.000000Z"}
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert rehearsal.slowest_cells(tmp_path / "x.ipynb") == "cell 1 10 s, cell 0 2 s"


@pytest.mark.slow
def test_a_rehearsal_run_records_each_notebook_and_fails_on_an_error_or_the_memory_limit(tmp_path, monkeypatch):
    """Two tiny notebooks through the real runner (kernels of this interpreter): one reads the
    switch in full mode, one raises; a tiny limit fails the first one on memory."""
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent("""\
        import os
        from pathlib import Path
        import bidsnet_lib
        assert bidsnet_lib.rehearsal() and not bidsnet_lib.small_mode()
        assert Path("datasets/val_256.tar").is_file()   # the downloads are laid in the working folder
        import urllib.error, urllib.request
        try:  # nothing is downloaded: every connection fails at once
            urllib.request.urlopen("https://download.pytorch.org/models/", timeout=20)
            raise AssertionError("the network answered")
        except urllib.error.URLError as error:
            assert "refused" in str(error.reason).lower(), error
        """))])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('broken')")])
    paths = [tmp_path / "01_good.ipynb", tmp_path / "02_bad.ipynb"]
    for nb, path in zip((good, bad), paths, strict=True):
        nbformat.write(nb, path)
    files = tmp_path / "downloads" / "datasets"
    files.mkdir(parents=True)
    (files / "val_256.tar").write_bytes(b"")
    import execute_notebooks  # tools/, on the path since load_tool; a dev kernelspec names "python"

    monkeypatch.setattr(execute_notebooks, "check_kernel", lambda: None)
    monkeypatch.setenv("BIDSNET_SMALL", "1")  # the runner unsets it: full mode (monkeypatch restores
    monkeypatch.setenv("BIDSNET_REHEARSAL", "0")  # both after the test, and the proxy variables)
    for name in (*rehearsal.PROXY_VARIABLES, "no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "")
    status = rehearsal.run_notebooks(paths, tmp_path / "out", tmp_path / "downloads", timeout=120, limit_gb=12)
    assert status == 1
    record = {r["notebook"]: r for r in json.loads((tmp_path / "out" / "rehearsal.json").read_text())}
    assert record["01_good"]["error"] is None and "broken" in record["02_bad"]["error"]
    assert 20e6 < record["01_good"]["peak_bytes"] < 4e9 and record["01_good"]["cpu_seconds"] > 0
    report = (tmp_path / "out" / "rehearsal.md").read_text()
    assert "| 01_good |" in report and "| error |" in report
    assert rehearsal.run_notebooks(paths[:1], tmp_path / "out2", tmp_path / "downloads", 120, limit_gb=0.001) == 1


# --- make gpu-check, its CPU side ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "key"), [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"),
                                           ("NVIDIA H200", "H200"), ("Tesla T4", "T4"),
                                           ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA L4", "L4")])
def test_gpu_names_find_their_published_figures(name, key):
    assert gpu_check.gpu_spec(name) == (key, gpu_check.GPU_SPECS[key])


def test_an_unknown_gpu_gets_no_t4_projection_and_says_so():
    assert gpu_check.gpu_spec("Some Future GPU") is None
    p = gpu_check.project(gpu_check.StepTiming("x", 0.2, 10, 1.0), "Some Future GPU")
    assert p["here_s"] == pytest.approx(4000) and p["t4_s"] is None and "not in" in p["conversion"]
    with pytest.raises(TypeError, match="^name: got 3, expected a device name string$"):
        gpu_check.gpu_spec(3)


def test_the_projection_arithmetic_with_a_made_up_timing():
    timing = gpu_check.StepTiming("paper, 256 px, batch 8, float16 autocast", 0.25, 10, 9.5)
    p = gpu_check.project(timing, "NVIDIA H100 80GB HBM3")
    assert p["here_s"] == pytest.approx(0.25 * 20_000)
    assert p["t4_s"] == pytest.approx(0.25 * 20_000 * 989 / 65)
    assert p["t4_bandwidth_s"] == pytest.approx(0.25 * 20_000 * 3350 / 320)
    assert "989 / T4 65 TFLOP/s" in p["conversion"]
    text = gpu_check.projection_text(timing, "NVIDIA H100 80GB HBM3")
    assert "on this GPU (NVIDIA H100 80GB HBM3): 1.4 h" in text and "on a T4: 21.1 h" in text
    with pytest.raises(ValueError, match="^timing.seconds: got 0, expected a number > 0$"):
        gpu_check.project(gpu_check.StepTiming("x", 0, 1, 0.0), "Tesla T4")


def test_the_report_is_one_file_rewritten_after_each_stage(tmp_path):
    report = gpu_check.Report(tmp_path / "gpu" / "report.md")
    report.add("Machine", "- GPU: made up")
    first = report.path.read_text()
    report.add("Training step", gpu_check.timing_table([gpu_check.StepTiming("paper", 0.25, 10, 9.5)]))
    text = report.path.read_text()
    assert text.startswith(first) and "## Training step" in text and "| paper | 0.250 | 10 | 9.5 |" in text
    assert [p.name for p in report.path.parent.iterdir()] == ["report.md"]  # no temporary file left


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the check itself")
def test_gpu_check_fails_at_once_and_clearly_without_cuda(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("make gpu-check: no CUDA device here")
    assert not any(tmp_path.iterdir())


def test_gpu_check_stops_before_anything_when_cuda_is_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "course_folders", lambda: pytest.fail("went on without CUDA"))
    with pytest.raises(SystemExit, match="no CUDA device here"):
        gpu_check.main([])


def test_make_targets_exist(root):
    makefile = (root / "Makefile").read_text()
    for target, command in (("rehearsal", "tools/rehearsal.py"), ("gpu-check", "tools/gpu_check.py"),
                            ("wheel", "tools/bare_install.py --wheel-only dist")):
        assert f"\n{target}: " in makefile and command in makefile
    assert "make rehearsal" in (root / ".ci" / "run").read_text()


@pytest.mark.slow
def test_gpu_checks_measurements_run_on_the_cpu_too(tmp_path):
    """time_steps and resume_drift are device-agnostic: on the CPU, a few small-preset steps; the
    deterministic CPU resume drifts by exactly nothing."""
    from bidsnet_lib.train import TrainConfig

    train, val = gpu_check.course_folders()
    config = dataclasses.replace(TrainConfig.small(), data=(str(train),), val_data=(str(val),), deterministic=True)
    timing = gpu_check.time_steps(config, "small", warmup=1, timed=2, device="cpu")
    assert timing.label == "small" and timing.steps == 2 and timing.seconds > 0 and timing.peak_gib == 0
    assert gpu_check.resume_drift(config, 1, device="cpu") == 0.0


@pytest.fixture
def made_up_gpu(tmp_path, monkeypatch):
    """gpu_check.main with every GPU measurement faked and a made-up clock that each subprocess
    stage moves on by the seconds it took (``took``: a fraction of its limit); returns the stages'
    (command, limit) list and the fraction to set."""
    monkeypatch.setattr(gpu_check, "require_cuda", lambda: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(total_memory=80 * 2**30))
    monkeypatch.setattr(gpu_check, "course_folders", lambda: (tmp_path, tmp_path))
    monkeypatch.setattr(gpu_check, "vgg_choice", lambda: "random")
    pace = {"float32": 0.5, "autocast": 0.25, "small": 0.05}
    monkeypatch.setattr(gpu_check, "time_steps", lambda config, label, **kw: gpu_check.StepTiming(
        label, next(v for k, v in pace.items() if k in label), 10, 9.0))
    monkeypatch.setattr(gpu_check, "resume_drift", lambda config, k: 0.012)
    now, took, commands = [1000.0], {"fraction": 0.1}, []
    monkeypatch.setattr(gpu_check, "clock", lambda: now[0])

    def fake_run(command, seconds, log):
        commands.append((command, seconds))
        whole = took["fraction"] >= 1 and "bidsnet_lib.commands.export" not in command  # an export finishes
        if "rehearsal.py" in command[1]:
            (tmp_path / "out" / "rehearsal").mkdir(parents=True)
            (tmp_path / "out" / "rehearsal" / "rehearsal.md").write_text("| 06_training | 30 | ... |\n")
        elif "bidsnet_lib.commands.train" in command:
            run_dir = Path(command[command.index("--out") + 1])
            run_dir.mkdir(parents=True)
            (run_dir / "latest.pt").write_bytes(b"")
            (run_dir / "metrics.jsonl").write_text('{"step": 0, "val_psnr": 14.0}\n{"step": 100, "val_psnr": 17.5}\n')
        else:
            Path(command[-1]).write_bytes(b"x" * 2**20)
        now[0] += seconds * took["fraction"]
        return (None if whole else 0), seconds * took["fraction"]

    monkeypatch.setattr(gpu_check, "run", fake_run)
    return commands, took


def test_gpu_check_end_to_end_with_made_up_measurements(tmp_path, made_up_gpu):
    """main()'s stages and report, in order: timings, projection, training + export, resume, rehearsal."""
    commands, _ = made_up_gpu
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    headings = ["Machine", "Training step", "Notebook 06 on a GPU, projected", "The default recipe, a few minutes",
                "Notebook 06's resume on the GPU", "Rehearsal on CUDA", "Result"]
    assert [line[3:] for line in report.splitlines() if line.startswith("## ")] == headings
    assert "on a T4: 21.1 h" in report and "| 06_training | 30 |" in report
    assert "(0, 14.00), (100, 17.50)" in report and "drift 1.20%" in report and "passed in" in report
    train = commands[0][0]
    assert train[train.index("--preset") + 1] == "paper" and train[train.index("--vgg-weights") + 1] == "random"
    # the steps fill the training time at the measured autocast pace (0.25 s), start-up apart
    assert int(train[train.index("--steps") + 1]) == int((gpu_check.TRAIN_SECONDS - gpu_check.TRAIN_START) / 0.25)
    assert "bidsnet_lib.commands.export" in commands[1][0] and "rehearsal.py" in commands[2][0][1]


def test_gpu_check_keeps_its_budget_when_every_stage_runs_to_its_limit(tmp_path, made_up_gpu):
    """The worst case: training and the rehearsal stopped at their limits. The whole stays within
    the 9 minutes, the stopped training is exported all the same, and the report says what stopped."""
    commands, took = made_up_gpu
    took["fraction"] = 1.0
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 1
    assert sum(seconds for _, seconds in commands) <= gpu_check.BUDGET - gpu_check.MARGIN
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"stopped at its {gpu_check.TRAIN_SECONDS:.0f} s" in report and "exported to" in report
    assert "stopped after" in report and "| 06_training | 30 |" in report  # the rows it had
    result = report.split("## Result\n\n")[1]
    assert result.startswith("FAILED: rehearsal in ") and int(result.split(" in ")[1].split()[0]) <= 540


def test_a_stage_stopped_at_its_limit_leaves_no_process_behind(tmp_path):
    """gpu_check.run kills what the command started too, even in a session of its own (as
    jupyter starts kernels)."""
    import psutil

    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    status, took = gpu_check.run([sys.executable, "-c", script], 3, tmp_path / "log")
    assert status is None and took < 30
    grandchild = int(pid_file.read_text())
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_gpu_checks_resume_is_notebook_06s():
    """gpu_check repeats notebook 06's GPU resume check at its full K (a tool cannot import a
    notebook): the same K, tolerance and drift formula."""
    source = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / "06_training.ipynb", 4).cells)
    assert f"K_GPU = 3 if SMALL else {gpu_check.RESUME_K} " in source
    assert f"DRIFT_TOLERANCE = {gpu_check.DRIFT_TOLERANCE:.2f}\n" in source
    for line in ("apart = sum((r[k].float() - s[k].float()).pow(2).sum() for k in s).sqrt()",
                 "moved = sum((s[k].float() - at_k[k].float()).pow(2).sum() for k in s).sqrt()"):
        assert line in source and line.replace("[k]", "[n]").replace("for k in", "for n in") in \
            Path(gpu_check.__file__).read_text()
