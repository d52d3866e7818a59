"""bidsnet_lib.reports: a writer's section of a Markdown report (its markers, replaced in place or
appended, written atomically) and the machine line under a table."""

import os

import pytest
import torch

from bidsnet_lib import reports


# ------------------------------------------------------------------------------ moved from test_bench_model.py
def test_write_section_replaces_its_own_section_only(tmp_path):
    path = tmp_path / "benchmarks.md"
    reports.write_section(path, "bench/model.py", "first")
    assert path.read_text() == ("# Benchmarks\n\n<!-- bench/model.py: begin -->\nfirst\n"
                                "<!-- bench/model.py: end -->\n")
    reports.write_section(path, "bench/attention.py", "theirs")
    reports.write_section(path, "bench/model.py", "second\n")
    text = path.read_text()
    assert "first" not in text and text.count("<!-- bench/model.py: begin -->") == 1
    assert text.index("second") < text.index("theirs")  # replaced in place, not moved
    path.write_text(text.replace("<!-- bench/model.py: end -->", ""))
    with pytest.raises(ValueError, match="no '<!-- bench/model.py: end -->' after it"):
        reports.write_section(path, "bench/model.py", "third")
    with pytest.raises(ValueError, match="owner: got '', expected a non-empty name"):
        reports.section_markers("")


# ------------------------------------------------------------------------------ sections
def test_section_markers_enclose_the_owner_in_html_comments():
    assert reports.section_markers("bench/model.py") == ("<!-- bench/model.py: begin -->",
                                                         "<!-- bench/model.py: end -->")
    assert reports.section_markers("ablate:fusion")[1] == "<!-- ablate:fusion: end -->"


@pytest.mark.parametrize("owner,shown", [("a-->b", "'a-->b'"), (None, "None"), (3, "3")])
def test_section_markers_refuse_an_owner_that_cannot_be_one(owner, shown):
    with pytest.raises(ValueError, match=f"owner: got {shown}, expected a non-empty name without '-->'"):
        reports.section_markers(owner)


def test_write_section_starts_a_new_file_with_its_title_and_appends_to_an_old_one(tmp_path):
    path = tmp_path / "ablations.md"
    assert reports.write_section(path, "status", "  run \n", title="# Ablations") == path
    assert path.read_text() == "# Ablations\n\n<!-- status: begin -->\nrun\n<!-- status: end -->\n"
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nkept as it was\n\n\n")
    reports.write_section(notes, "bench/x.py", "table")
    assert notes.read_text() == "# Notes\n\nkept as it was\n\n<!-- bench/x.py: begin -->\ntable\n<!-- bench/x.py: end -->\n"
    reports.write_section(notes, "bench/x.py", "new table")
    assert notes.read_text() == "# Notes\n\nkept as it was\n\n<!-- bench/x.py: begin -->\nnew table\n<!-- bench/x.py: end -->\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the atomic writer left nothing
    with pytest.raises(ValueError, match="owner: got ''"):
        reports.write_section(notes, "", "x")
    assert "<!--  begin -->" not in notes.read_text()


# ------------------------------------------------------------------------------ the machine line
def test_machine_line_names_cores_torch_and_its_threads():
    line = reports.machine_line()
    assert line.startswith(reports.cpu_model() + ", ")
    assert f", {os.cpu_count()} cores, torch {torch.__version__}, torch threads: {torch.get_num_threads()}" in line


class FakeCpuinfo:
    """Stands in for ``Path`` where reports reads /proc/cpuinfo."""

    text: str | None = None

    def __init__(self, path):
        assert str(path) == "/proc/cpuinfo"

    def read_text(self):
        if self.text is None:
            raise OSError("no /proc here")
        return self.text


@pytest.mark.parametrize("text,model", [
    ("processor\t: 0\nmodel name\t: Fancy CPU @ 2.0GHz  \nflags\t: sse\n", "Fancy CPU @ 2.0GHz"),
    ("processor\t: 0\nCPU implementer\t: 0x41\n", "unknown CPU"),  # an ARM board names no model
    (None, "unknown CPU"),  # no /proc: not Linux
])
def test_cpu_model_reads_proc_cpuinfo_or_says_unknown(monkeypatch, text, model):
    monkeypatch.setattr(FakeCpuinfo, "text", text)
    monkeypatch.setattr(reports, "Path", FakeCpuinfo)  # the name cpu_model looks up in its module
    assert reports.cpu_model() == model
