"""Every exercise's check fails unanswered and passes with the solution in tests/exercise_solutions.

Each notebook runs once in a kernel (small mode): every cell in order, and at each exercise the
check is run unanswered (must fail), then the solution and the check again (must pass).
"""

import importlib.util
import re

import pytest
from conftest import NOTEBOOKS, ROOT, cell_tags, read_notebook
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

SOLUTIONS_DIR = ROOT / "tests" / "exercise_solutions"


def load_solutions(stem: str) -> dict[int, str]:
    path = SOLUTIONS_DIR / f"{stem}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"solutions_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOLUTIONS


def exercise_number(source: str) -> int:
    match = re.match(r"# (?:Exercise|Check exercise) (\d+)", source)
    if not match:
        raise ValueError(f"exercise cell must start '# Exercise N' or '# Check exercise N': {source[:60]!r}")
    return int(match.group(1))


def run(client: NotebookClient, cell, index: int) -> bool:
    """Execute one cell (ignoring its tags) in the client's kernel; True when it did not raise."""
    cell = cell.copy()
    cell.metadata = {k: v for k, v in cell.metadata.items() if k != "tags"}
    try:
        client.execute_cell(cell, index)
    except CellExecutionError:
        return False
    return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exercises_fail_unanswered_and_pass_with_solution(path):
    notebook = read_notebook(path)
    solutions = load_solutions(path.stem)
    answers = {exercise_number(c.source): c for c in notebook.cells if "exercise" in cell_tags(c)}
    assert answers, f"{path.name} has no exercises"
    assert set(solutions) == set(answers), f"{path.name}: solutions for {sorted(solutions)}, exercises {sorted(answers)}"

    checked = set()
    client = NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            if "raises-exception" in cell_tags(cell) and cell.source.startswith("# Check exercise"):
                number = exercise_number(cell.source)
                assert not run(client, cell, index), f"{path.name}: check {number} passes with no answer"
                solved = cell.copy()
                solved.source = solutions[number]
                assert run(client, solved, index), f"{path.name}: solution {number} raised"
                assert run(client, cell, index), f"{path.name}: check {number} fails with the solution"
                checked.add(number)
            else:
                assert run(client, cell, index), f"{path.name}: cell {index} raised:\n{cell.source[:300]}"
    assert checked == set(answers), f"{path.name}: exercises without a check cell: {set(answers) - checked}"
