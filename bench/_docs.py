"""Helpers the bench scripts share: their marked sections of docs/benchmarks.md, the machine line.

Each script owns the text between ``<!-- bench/<script>: begin -->`` and ``<!-- ...: end -->``;
a re-run replaces that text and leaves every other section of the file as it was.
"""

import os
import re
from pathlib import Path

import torch


def section_markers(script: str) -> tuple[str, str]:
    """The begin and end comments that enclose ``script``'s section, e.g. for "bench/model.py"."""
    if not isinstance(script, str) or not script or "-->" in script:
        raise ValueError(f"script must be a non-empty name without '-->', got {script!r}")
    return f"<!-- {script}: begin -->", f"<!-- {script}: end -->"


def write_section(path: Path, script: str, text: str) -> None:
    """Put ``text`` between ``script``'s markers in ``path``: replaced if present, else appended."""
    begin, end = section_markers(script)
    section = f"{begin}\n{text.strip()}\n{end}"
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(begin)
    if start < 0:
        new = f"{old.rstrip()}\n\n{section}\n"
    else:
        stop = old.find(end, start)
        if stop < 0:
            # Appending would leave two begin markers; better to stop than to guess the section's end.
            raise ValueError(f"{path} has {begin!r} but no {end!r} after it; fix the file by hand")
        new = old[:start] + section + old[stop + len(end):]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)  # readers never see a half-written file


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
