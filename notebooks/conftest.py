"""pytest --nbval-lax notebooks: the course's checks on top of nbval's top-to-bottom run.

- Exercises: at each "# Check exercise N" cell (tagged raises-exception) the check must fail
  unanswered; then the solution from tests/exercise_solutions/NN_name.py and the check again run
  in the same kernel and must pass. The notebook thus runs once for both purposes.
- A cell that hits pytest-timeout kills its notebook's kernel: after a hang the kernel may never
  answer again, and each later cell would wait out its own timeout. Stopped, later cells fail at
  once ("Kernel dead on test start").
- Each cell's outputs are kept; a notebook whose cells all passed is written, with them, where
  the site build (tools/build_site.py) reuses executed copies: the site of a test run shows that
  run, and no notebook runs twice. A notebook with a failed cell leaves a copy marked failed,
  which the site build executes again itself.
"""

import importlib.util
import re
import time
from pathlib import Path

import nbformat
import pytest

from bidsnet_lib.plumbing import atomic_write

SOLUTIONS_DIR = Path(__file__).resolve().parents[1] / "tests" / "exercise_solutions"
_spec = importlib.util.spec_from_file_location("exercise_solutions", SOLUTIONS_DIR / "__init__.py")
exercise_solutions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exercise_solutions)
CHECK = re.compile(r"# Check exercise (\d+)")
EXERCISE_TIMEOUT = 300  # s for a solution or a check (pyproject's per-test limit)
_spec = importlib.util.spec_from_file_location("build_site", Path(__file__).resolve().parents[1] / "tools" / "build_site.py")
build_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_site)


def run_in_kernel(kernel, source: str) -> str | None:
    """Execute ``source`` in nbval's kernel; None when it ran cleanly, else the error's last line.

    Through nbval's blocking channels, whose waits are zmq_poll calls: jupyter_client's
    ``execute_interactive`` waits on an asyncio poller instead, whose wake-up can be missed, and
    then both sides idle until its timeout (tools/execute_notebooks.py says more)."""
    msg_id = kernel.execute_cell_input(source, allow_stdin=False)
    deadline = time.monotonic() + EXERCISE_TIMEOUT
    while True:
        reply = kernel.get_message("shell", timeout=max(0.0, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    kernel.await_idle(msg_id, max(0.0, deadline - time.monotonic()))
    content = reply["content"]
    return None if content["status"] == "ok" else f"{content.get('ename')}: {content.get('evalue')}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    cell = getattr(item, "cell", None)
    match = CHECK.match(cell.source) if cell is not None and cell.cell_type == "code" else None
    if match is None or "raises-exception" not in cell.metadata.get("tags", []):
        return result
    number, notebook = int(match.group(1)), Path(str(item.fspath)).stem
    if not any(out.output_type == "error" for out in item.test_outputs):
        pytest.fail(f"{notebook}: check {number} passes with no answer")
    solution = exercise_solutions.load_solutions(notebook).get(number)
    if solution is None:
        pytest.fail(f"{notebook}: no solution {number} in {SOLUTIONS_DIR / notebook}.py")
    kernel = item.parent.kernel
    if error := run_in_kernel(kernel, solution):
        pytest.fail(f"{notebook}: solution {number} raised {error}")
    if error := run_in_kernel(kernel, cell.source):
        pytest.fail(f"{notebook}: check {number} fails with the solution: {error}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    kernel = getattr(item.parent, "kernel", None)
    if report.failed and kernel is not None and "Timeout" in str(report.longrepr) \
            and "pytest-timeout" in str(report.longrepr):
        kernel.stop()
    if hasattr(item, "test_outputs"):  # an nbval cell
        keep_outputs(item, call.when, report.failed)
    return report


def keep_outputs(item, when: str, failed: bool) -> None:
    """Store the cell's outputs in nbval's copy of the notebook; after its last code cell (run or
    skipped), write that copy for the site build."""
    notebook = item.parent
    notebook.site_failed = getattr(notebook, "site_failed", False) or failed
    if when == "call" and item.test_outputs is not None:
        item.cell.outputs = item.test_outputs
    if when != "teardown":
        return
    notebook.site_done = getattr(notebook, "site_done", 0) + 1
    if notebook.site_done < sum(c.cell_type == "code" for c in notebook.nb.cells):
        return  # not the last cell yet, or only some cells were selected
    path = Path(str(notebook.fspath))
    notebook.nb.metadata.pop(build_site.KEY, None)
    if notebook.site_failed:
        notebook.nb.metadata[build_site.FAILED] = True
    else:
        notebook.nb.metadata[build_site.KEY] = build_site.source_key(path)
        notebook.nb.metadata[build_site.RAN_IN] = "this repository's checkout, under pytest --nbval-lax"
    build_site.EXECUTED.mkdir(parents=True, exist_ok=True)
    atomic_write(build_site.EXECUTED / path.name, nbformat.writes(notebook.nb))
