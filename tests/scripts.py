"""The course's scripts (bench/, tools/, notebooks/conftest.py) as modules for the tests: they are
files, not packages, so they are loaded by path."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str | None = None):
    """Execute ``ROOT/relative`` as a new module (``name``: default the file's stem) and return it;
    it is registered in ``sys.modules`` first, where dataclasses look their module up."""
    path = ROOT / relative
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
