"""pytest --nbval-lax notebooks: a cell that hits pytest-timeout kills its notebook's kernel.

nbval runs every cell of a notebook in one kernel; after a hang the kernel may never answer
again, and each later cell would wait out its own timeout. Stopped, later cells fail at once
("Kernel dead on test start").
"""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    kernel = getattr(item.parent, "kernel", None)
    if report.failed and kernel is not None and "Timeout" in str(report.longrepr) \
            and "pytest-timeout" in str(report.longrepr):
        kernel.stop()
