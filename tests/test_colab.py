"""The Colab set-up cell, run with a stand-in `google.colab` module."""

import importlib.machinery
import importlib.util
import subprocess
import sys
import types

import pytest
import torch

from bidsnet_lib import colab


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


def test_outside_colab_only_picks_the_device(capsys):
    assert not colab.in_colab()
    assert colab.setup_notebook() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert "Colab" not in capsys.readouterr().out


def test_in_colab_enables_the_widget_manager(fake_colab, capsys):
    assert colab.in_colab()
    colab.setup_notebook()
    assert fake_colab == ["widgets"]
    assert "in Colab" in capsys.readouterr().out


def test_setup_cell_installs_from_the_repository_once(fake_colab, monkeypatch):
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: commands.append(cmd))
    real_find_spec = importlib.util.find_spec
    # First as on a fresh Colab runtime (package missing), then with it installed.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bidsnet_lib" else real_find_spec(name))
    namespace = {}
    exec(colab.SETUP_CELL, namespace)
    assert commands == [[sys.executable, "-m", "pip", "install", "-q", f"git+{colab.REPO_URL}"]]
    assert isinstance(namespace["DEVICE"], torch.device)
    assert fake_colab == ["widgets"]

    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    exec(colab.SETUP_CELL, {})
    assert len(commands) == 1, "an installed package must not be reinstalled"


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
