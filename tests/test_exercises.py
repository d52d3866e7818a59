"""Every exercise has a check cell and a solution in tests/exercise_solutions.

That each check fails unanswered and passes with its solution is checked where the notebook runs
anyway: `pytest --nbval-lax notebooks` (notebooks/conftest.py), so no notebook runs twice.
"""

import re

import pytest
from course_files import NOTEBOOKS, cell_tags, read_notebook
from exercise_solutions import load_solutions


def exercise_number(source: str) -> int:
    match = re.match(r"# (?:Exercise|Check exercise) (\d+)", source)
    if not match:
        raise ValueError(f"exercise cell must start '# Exercise N' or '# Check exercise N': {source[:60]!r}")
    return int(match.group(1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_has_a_check_cell_and_a_solution(path):
    cells = read_notebook(path).cells
    answers = {exercise_number(c.source) for c in cells if "exercise" in cell_tags(c)}
    checks = [exercise_number(c.source) for c in cells
              if c.cell_type == "code" and c.source.startswith("# Check exercise")]
    assert answers, f"{path.name} has no exercises"
    assert sorted(checks) == sorted(answers), f"{path.name}: exercises {sorted(answers)}, checks {checks}"
    assert all("raises-exception" in cell_tags(c) for c in cells if c.source.startswith("# Check exercise")), \
        f"{path.name}: a check cell lacks the raises-exception tag (nbval would stop at it)"
    assert set(load_solutions(path.stem)) == answers, f"{path.name}: solutions for {sorted(load_solutions(path.stem))}"
    for number, source in load_solutions(path.stem).items():
        compile(source, f"{path.stem} solution {number}", "exec")
