"""The exercises' solutions, one module per notebook (``SOLUTIONS``: exercise number -> source).
notebooks/conftest.py runs them in the notebook's kernel under `pytest --nbval-lax notebooks`."""

import importlib.util
from pathlib import Path

SOLUTIONS_DIR = Path(__file__).resolve().parent


def load_solutions(stem: str) -> dict[int, str]:
    """Exercise number -> solution source, from ``<stem>.py`` here ({} if there is none)."""
    path = SOLUTIONS_DIR / f"{stem}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"solutions_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOLUTIONS
