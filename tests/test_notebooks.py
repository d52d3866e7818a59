"""Course conventions every notebook keeps (execution itself is `pytest --nbval-lax notebooks`)."""

import re

import pytest
from course_files import NOTEBOOKS, cell_tags, read_notebook

from bidsnet_lib.colab import SETUP_CELL, colab_url, setup_cell

EXPECTED = [
    "00_quickstart",
    "01_masks",
    "02_cnn_stream",
    "03_fast_attention",
    "04_bfi_sff",
    "05_losses",
    "06_training",
    "07_evaluation",
    "08_demo",
    "09_ablations",
]
ids = [p.stem for p in NOTEBOOKS]


def test_course_is_complete_and_ordered():
    assert ids == EXPECTED, f"notebooks present: {ids}"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+", stem) for stem in ids), ids


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_first_markdown_cell_has_badge_and_module(path):
    first = read_notebook(path).cells[0]
    assert first.cell_type == "markdown"
    badge = colab_url(path.name)
    assert badge in first.source, f"{path.name}: Colab badge must link to {badge}"
    assert "bidsnet_lib" in first.source, f"{path.name}: first cell must name the module it builds"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_first_code_cell_is_the_colab_setup(path):
    code = [c for c in read_notebook(path).cells if c.cell_type == "code"]
    # (tests/test_colab.py checks which notebooks take the variant for those that train)
    assert code[0].source in (SETUP_CELL, setup_cell(trains=True)), \
        f"{path.name}: first code cell must be colab.SETUP_CELL or colab.setup_cell(trains=True)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_parameters_cell_reads_small_mode(path):
    params = [c for c in read_notebook(path).cells if "parameters" in cell_tags(c)]
    assert len(params) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    assert 'SMALL = os.environ.get("BIDSNET_SMALL", "0") == "1"' in params[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_checks_itself_and_ends_with_exercises(path):
    cells = read_notebook(path).cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert re.search(r"^\s*assert ", code, re.M), f"{path.name}: no assert cell"
    exercises = [c for c in cells if "exercise" in cell_tags(c)]
    assert 2 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises, expected 2-4"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_without_outputs(path):
    for cell in read_notebook(path).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_ends_with_summary_references_and_an_open_question(path):
    cells = read_notebook(path).cells
    last = cells[-1]
    assert last.cell_type == "markdown" and "## Summary" in last.source and "## References" in last.source, path.name
    summary = last.source[last.source.index("## Summary"):last.source.index("## References")]
    position = EXPECTED.index(path.stem)
    if position + 1 < len(EXPECTED):  # "what comes next" links the next notebook
        assert f"({EXPECTED[position + 1]}.ipynb)" in summary, f"{path.name}: the summary does not link the next notebook"
    references = last.source[last.source.index("## References"):]
    assert "BIDS-Net" in references and re.search(r"\b(19|20)\d\d\b", references), path.name
    hidden = [c for c in cells if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    assert any(c.source.startswith("**Answer.**") for c in hidden), f"{path.name}: no collapsed worked answer"
    assert any(c.cell_type == "markdown" and "## A question to think about" in c.source for c in cells), path.name
