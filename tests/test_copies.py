"""Notebook cells marked `# Copied from bidsnet_lib.X.Y` must equal the library source."""

import importlib
import inspect
import re
import textwrap

import pytest
from course_files import NOTEBOOKS, read_notebook

MARKER = re.compile(r"^# Copied from (bidsnet_lib(?:\.\w+)+)\s*\n")


def copied_cells():
    for path in NOTEBOOKS:
        for index, cell in enumerate(read_notebook(path).cells):
            match = MARKER.match(cell.source) if cell.cell_type == "code" else None
            if match:
                yield pytest.param(match.group(1), cell.source[match.end() :], id=f"{path.stem}[{index}]")


def resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then walk attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("dotted,body", list(copied_cells()))
def test_copied_cell_matches_library(dotted, body):
    source = textwrap.dedent(inspect.getsource(resolve(dotted)))
    assert body.strip() == source.strip(), f"cell drifted from {dotted}"


def test_resolve_names_a_missing_object():
    with pytest.raises(AttributeError):
        resolve("bidsnet_lib.colab.no_such_thing")
