"""The Colab set-up cell, run with a stand-in `google.colab` module; and once for real: pip
installing the repository from a local git clone into a fresh venv."""

import importlib.machinery
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest
import torch
from course_files import NOTEBOOKS, ROOT, read_notebook

from bidsnet_lib import colab
from bidsnet_lib.inference import SHIPPED_CHECKPOINT


@pytest.fixture
def fake_colab(monkeypatch):
    """Install a stand-in google.colab whose widget-manager switch records its calls."""
    calls = []
    google = types.ModuleType("google")
    google.__path__ = []
    google.__spec__ = importlib.machinery.ModuleSpec("google", None, is_package=True)
    module = types.ModuleType("google.colab")
    module.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
    module.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("widgets"))
    google.colab = module
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", module)
    return calls


@pytest.fixture
def fresh_runtime(monkeypatch, tmp_path):
    """A Colab runtime without bidsnet_lib: find_spec misses it, pip calls are recorded (and
    answered with ``result``), the working folder is empty."""
    commands, result = [], types.SimpleNamespace(returncode=0, stderr="")

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return result

    monkeypatch.setattr(subprocess, "run", fake_run)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bidsnet_lib" else real_find_spec(name))
    monkeypatch.chdir(tmp_path)
    return commands, result


def test_outside_colab_only_picks_the_device(capsys):
    assert not colab.in_colab()
    assert colab.setup_notebook() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert "Colab" not in capsys.readouterr().out


def test_in_colab_enables_the_widget_manager(fake_colab, capsys):
    assert colab.in_colab()
    colab.setup_notebook()
    assert fake_colab == ["widgets"]
    assert "in Colab" in capsys.readouterr().out


def test_a_training_notebook_on_a_cpu_runtime_says_how_to_switch(fake_colab, monkeypatch, capsys):
    monkeypatch.setattr(colab, "default_device", lambda: torch.device("cpu"))
    colab.setup_notebook(trains=True)
    out = capsys.readouterr().out
    assert "Colab runtime: CPU only, no GPU" in out
    assert "Runtime → Change runtime type" in out and "T4 GPU" in out
    colab.setup_notebook()  # a notebook that does not train: the runtime, no advice
    out = capsys.readouterr().out
    assert "Colab runtime: CPU only, no GPU" in out and "Change runtime type" not in out


def test_a_gpu_runtime_is_named(fake_colab, monkeypatch, capsys):
    monkeypatch.setattr(colab, "default_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: types.SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30))
    assert colab.setup_notebook(trains=True) == torch.device("cuda")
    out = capsys.readouterr().out
    assert "Colab runtime: GPU, Tesla T4 (15 GiB)" in out and "Change runtime type" not in out


def test_setup_cell_variants():
    assert colab.SETUP_CELL == colab.setup_cell()
    assert colab.SETUP_CELL.endswith("DEVICE = setup_notebook()")
    assert colab.setup_cell(trains=True).endswith("DEVICE = setup_notebook(trains=True)")
    with pytest.raises(TypeError, match=r"^trains: got 'yes', expected True or False$"):
        colab.setup_cell("yes")


def test_setup_cell_installs_from_the_repository_once(fake_colab, fresh_runtime, monkeypatch):
    commands, _ = fresh_runtime
    namespace = {}
    exec(colab.SETUP_CELL, namespace)
    assert commands == [[sys.executable, "-m", "pip", "install", "-q", f"git+{colab.REPO_URL}"]]
    assert isinstance(namespace["DEVICE"], torch.device)
    assert fake_colab == ["widgets"]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # now installed
    exec(colab.SETUP_CELL, {})
    assert len(commands) == 1, "an installed package must not be reinstalled"


def test_setup_cell_installs_an_uploaded_wheel_first(fake_colab, fresh_runtime, tmp_path):
    commands, _ = fresh_runtime
    for version in ("0.1.0", "0.2.0"):
        (tmp_path / f"bidsnet_course-{version}-py3-none-any.whl").write_bytes(b"")
    exec(colab.setup_cell(trains=True), {})
    assert commands == [[sys.executable, "-m", "pip", "install", "-q", "bidsnet_course-0.2.0-py3-none-any.whl"]]


def test_a_failed_install_ends_with_one_message_saying_what_to_do(fake_colab, fresh_runtime):
    _, result = fresh_runtime
    result.returncode, result.stderr = 1, "  ...\nERROR: No matching distribution (offline)\n"
    with pytest.raises(SystemExit) as stop:
        exec(colab.SETUP_CELL, {})
    message = str(stop.value)
    assert message == colab.INSTALL_HELP.format(source=f"git+{colab.REPO_URL}", repo=colab.REPO_URL,
                                                said="ERROR: No matching distribution (offline)")
    assert "`make wheel`" in message and "pip install -e" in message and "\n" not in message


def test_setup_cell_installs_nothing_outside_colab(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran outside Colab"))
    exec(colab.SETUP_CELL, {})


def test_package_requirement_keeps_colabs_torch(root):
    # A loose lower bound: pip leaves Colab's newer torch in place instead of downloading one.
    text = (root / "pyproject.toml").read_text()
    assert '"torch>=2.2"' in text and "torch==" not in text


def test_colab_url_opens_the_repository_notebook(monkeypatch):
    monkeypatch.setattr(colab, "REPO_URL", "https://github.com/someone/course")
    assert colab.colab_url("01_masks.ipynb") == (
        "https://colab.research.google.com/github/someone/course/blob/main/notebooks/01_masks.ipynb")
    cell = re.sub(r'"\n +f?"', "", colab.setup_cell())  # the message's pieces joined
    assert '"git+https://github.com/someone/course"' in cell and "git clone https://github.com/someone/course course" in cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_badges_and_the_install_line_follow_repo_url(path):
    """Every Colab link of a notebook is colab_url(its name), derived from REPO_URL, and its first
    code cell installs from REPO_URL (and says how to switch to a GPU where the notebook trains)."""
    cells = read_notebook(path).cells
    links = re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"']+", "\n".join(c.source for c in cells))
    assert links and set(links) == {colab.colab_url(path.name)}, links
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab.colab_url(path.name)})"
    assert badge in cells[0].source
    first = next(c for c in cells if c.cell_type == "code")
    assert first.source == colab.setup_cell(trains=path.stem in colab.TRAINING_NOTEBOOKS)
    assert f'"git+{colab.REPO_URL}"' in first.source


def test_colab_links_rewrites_a_notebook_for_another_address_and_leaves_one_in_line(tmp_path, monkeypatch):
    """tools/colab_links.py, the publishing step: after REPO_URL changes, a notebook's badge, its
    other Colab links and its first cell follow; run again, it changes nothing; the repository's
    notebooks already follow today's REPO_URL (rewriting them is a no-op, byte for byte)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import colab_links

    for path in NOTEBOOKS:
        assert colab_links.follow_repo_url(Path(shutil.copy(path, tmp_path))) is False, path.name
    monkeypatch.setattr(colab, "REPO_URL", "https://github.com/someone/course")
    copy = tmp_path / "06_training.ipynb"
    assert colab_links.follow_repo_url(copy) is True and colab_links.follow_repo_url(copy) is False
    cells = read_notebook(copy).cells
    assert f"({colab.colab_url(copy.name)})" in cells[0].source and "bidsnet-course/bidsnet-course" not in cells[0].source
    assert next(c for c in cells if c.cell_type == "code").source == colab.setup_cell(trains=True)
    assert [c.source for c in cells[2:]] == [c.source for c in read_notebook(ROOT / "notebooks" / copy.name).cells[2:]]


# --- The real install: pip, git and a fresh venv (marked slow: about 35 s on 2 busy cores) ---------

STAND_IN_COLAB = """import types

output = types.SimpleNamespace(enable_custom_widget_manager=lambda: print("stand-in: widget manager on"))
"""

# Runs the cell in the fresh venv's python. torch, numpy & co come from this test's environment,
# appended to the driver's sys.path *after* the venv's own site-packages: pip, a process of its
# own, never sees them, and the editable install's .pth finder there stays inert (a path appended
# at run time has its .pth files ignored), so `import bidsnet_lib` finds what pip installed.
def driver(stand_in: Path, cell: Path) -> str:
    return f"""import sys
sys.path.insert(0, {str(stand_in)!r})
from pathlib import Path
cell = Path({str(cell)!r}).read_text()
namespace = {{}}
sys.path.append({DEV!r})  # after the venv's site-packages; its .pth files (the editable finder) stay inert
try:
    exec(compile(cell, "setup-cell", "exec"), namespace)
except SystemExit as stop:
    print("STOPPED:", stop)
    sys.exit(3)
import bidsnet_lib
print("IMPORTED:", bidsnet_lib.__file__)
print("DEVICE:", namespace["DEVICE"])
"""


DEV = sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def colab_venv(tmp_path_factory):
    """A fresh venv (pip and setuptools from ensurepip, offline), a stand-in google.colab, a local
    git clone of the repository to install from, and ``build_tools``: this environment's setuptools
    (pyproject.toml asks for >= 68; ensurepip's is older and cannot build a wheel), linked for the
    build alone."""
    import setuptools

    folder = tmp_path_factory.mktemp("colab_install")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    fake = folder / "stand_in"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text(STAND_IN_COLAB)
    tools, site = folder / "build_tools", Path(setuptools.__file__).parents[1]
    tools.mkdir()
    for source in [site / "setuptools", site / "_distutils_hack", *site.glob("setuptools-*.dist-info")]:
        (tools / source.name).symlink_to(source)
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(folder / "clone")], check=True)
    return folder


def run_cell(folder: Path, cell: str, name: str) -> subprocess.CompletedProcess:
    (folder / f"{name}.py").write_text(cell)
    # pip's options from the environment, the cell's command unchanged: --no-deps (torch & co are
    # this environment's, see driver), no index, and no isolated build (PIP_NO_BUILD_ISOLATION=0
    # means --no-build-isolation: an isolated build would fetch setuptools), which takes
    # build_tools' setuptools from PYTHONPATH.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "PIP_NO_DEPS": "1", "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONPATH": str(folder / "build_tools")}
    return subprocess.run([str(folder / "venv" / "bin" / "python"), "-c", driver(folder / "stand_in", folder / f"{name}.py")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=280)


@pytest.mark.slow
def test_the_real_install_from_a_wrong_address_says_what_to_do(colab_venv, monkeypatch):
    monkeypatch.setattr(colab, "REPO_URL", f"file://{colab_venv}/no_such_repository")
    done = run_cell(colab_venv, colab.setup_cell(trains=True), "wrong_address")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    expected = colab.INSTALL_HELP.format(source=f"git+file://{colab_venv}/no_such_repository",
                                         repo=f"file://{colab_venv}/no_such_repository", said="@@")
    before, after = expected.split("@@")
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("STOPPED: " + before) and line.endswith(after), line


@pytest.mark.slow
def test_the_real_install_from_a_git_clone_imports_bidsnet_lib(colab_venv, monkeypatch):
    monkeypatch.setattr(colab, "REPO_URL", f"file://{colab_venv}/clone")
    done = run_cell(colab_venv, colab.setup_cell(trains=True), "install")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "stand-in: widget manager on" in out and "Colab runtime:" in out
    imported = next(line for line in done.stdout.splitlines() if line.startswith("IMPORTED:"))
    assert str(colab_venv / "venv") in imported, imported  # the installed copy, not a checkout
    version = subprocess.run([str(colab_venv / "venv" / "bin" / "python"), "-m", "pip", "show", "bidsnet-course"],
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert "Name: bidsnet-course" in version
    package = Path(imported.split(":", 1)[1].strip()).parent  # the package data travelled too
    assert (package / "checkpoints" / SHIPPED_CHECKPOINT.name).is_file() and (package / "eval_masks").is_dir()
