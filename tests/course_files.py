"""Where the course's files are, for tests: the repository root and the notebooks as documents.
(Its own module, not conftest.py: `pytest tests notebooks` loads two conftest modules.)"""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
