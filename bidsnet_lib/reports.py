"""Measured results written into Markdown reports (docs/benchmarks.md, docs/ablations.md).

Each writer (a bench script, an ablation study) owns the text between
``<!-- OWNER: begin -->`` and ``<!-- OWNER: end -->``; a re-run replaces that text and leaves every
other section of the file as it was. Also the machine line printed under every table.
"""

import os
import re
from pathlib import Path

import torch

from bidsnet_lib.plumbing import atomic_write, got_expected


def section_markers(owner: str) -> tuple[str, str]:
    """The begin and end comments that enclose ``owner``'s section, e.g. for "bench/model.py"."""
    if not isinstance(owner, str) or not owner or "-->" in owner:
        raise ValueError(got_expected("owner", owner, "a non-empty name without '-->'"))
    return f"<!-- {owner}: begin -->", f"<!-- {owner}: end -->"


def write_section(path: Path, owner: str, text: str, title: str = "# Benchmarks") -> Path:
    """Put ``text`` between ``owner``'s markers in ``path``: replaced if present, else appended
    (to a new file that starts with ``title``)."""
    begin, end = section_markers(owner)
    section = f"{begin}\n{text.strip()}\n{end}"
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else f"{title}\n"
    start = old.find(begin)
    if start < 0:
        new = f"{old.rstrip()}\n\n{section}\n"
    else:
        stop = old.find(end, start)
        if stop < 0:
            # Appending would leave two begin markers; better to stop than to guess the section's end.
            raise ValueError(f"{path} has {begin!r} but no {end!r} after it; fix the file by hand")
        new = old[:start] + section + old[stop + len(end):]
    return atomic_write(path, new)  # readers never see a half-written file


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" elsewhere)."""
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        found = None
    return found.group(1).strip() if found else "unknown CPU"


def machine_line() -> str:
    """CPU, cores, torch version and torch's thread count, for the line under a table."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"torch threads: {torch.get_num_threads()}")
