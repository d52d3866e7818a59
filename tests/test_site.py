"""The rendered course (`make site`, tools/build_site.py) in headless Chromium: every page opens,
every image on it loads, no page shows a Python traceback, and the landing page leads to each
notebook and its Colab copy.

Alone (`make site-test`), building the site executes every notebook on a bare install of the
wheel, each from an empty temporary folder: the Colab path (a notebook that fails there fails
the build), minutes. Within `make test` it renders the copies the same run's nbval pass
executed (notebooks/conftest.py; it waits for them, and executes any that are missing), so no
notebook runs twice. Those tests are marked `site`; the unmarked ones check how
tools/build_site.py lays out the pages, in a moment. Executed notebooks are reused from
build/site while nothing they depend on changed. Chromium missing: skipped, failed under CI.
"""

import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from course_files import NOTEBOOKS, ROOT
from scripts import load_script
from test_widget_browser import CHROMIUM, CHROMIUM_FLAGS, require_browser

from bidsnet_lib.colab import colab_url

build_site = load_script("tools/build_site.py")

OUT = ROOT / "build" / "site"
TRACEBACK = "Traceback (most recent call last)"
REFERENCE_PAGES = ("model_card.html", "docs/benchmarks.html", "docs/ablations.html", "teaching.html")


def wait_for_nbval_copies(timeout: float) -> None:
    """Until every notebook has an executed copy of this run in build/site/executed (current, or
    marked failed, which the build then runs again), for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    keys = {nb: build_site.source_key(nb) for nb in NOTEBOOKS}
    while time.monotonic() < deadline:
        copies = {nb: OUT / "executed" / nb.name for nb in NOTEBOOKS}
        if all(build_site.is_current(copies[nb], keys[nb])
               or (copies[nb].is_file() and nbformat.read(copies[nb], 4).metadata.get(build_site.FAILED))
               for nb in NOTEBOOKS):
            return
        time.sleep(2)


@pytest.fixture(scope="module")
def html(request) -> Path:
    require_browser()
    if any(item.path.suffix == ".ipynb" for item in request.session.items):
        wait_for_nbval_copies(timeout=900)  # the other xdist worker may still be running one
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--out", str(OUT)], check=True)
    return OUT / "html"


@pytest.fixture(scope="module")
def pages(html):
    """{page path relative to html/: what the browser saw} for every page of the course."""
    from playwright.sync_api import sync_playwright

    paths = ["index.html", *REFERENCE_PAGES, *(f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS)]
    seen = {}
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # Offline: only the site's own files load (the Colab badges and MathJax are remote).
            page.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).scheme in ("file", "data")
                       else route.abort())
            for rel in paths:
                assert (html / rel).is_file(), f"{rel}: not built"
                page.goto((html / rel).as_uri(), wait_until="load")
                seen[rel] = page.evaluate("""() => ({
                    text: document.body.innerText,
                    images: [...document.images].map(i => ({src: i.currentSrc || i.src, complete: i.complete,
                                                           width: i.naturalWidth})),
                    links: [...document.links].map(a => a.href)})""")
        finally:
            browser.close()
    return seen


def local_images(seen) -> list[dict]:
    return [i for i in seen["images"] if i["src"].startswith(("file:", "data:"))]


# The first test pays for building the site (alone: every notebook run on a bare install, ~4
# CPU-minutes), inside pytest-timeout's limit.
@pytest.mark.site
@pytest.mark.timeout(1200)
def test_every_image_of_the_site_renders(pages):
    for rel, seen in pages.items():
        broken = [i["src"] for i in local_images(seen) if not (i["complete"] and i["width"] > 0)]
        assert not broken, f"{rel}: images that do not render: {broken}"


@pytest.mark.site
def test_no_page_shows_a_traceback(pages):
    shown = [rel for rel, seen in pages.items() if TRACEBACK in seen["text"]]
    assert not shown, f"pages showing a Python traceback: {shown}"


@pytest.mark.site
def test_notebook_pages_have_their_outputs_and_say_how_they_were_run(pages):
    for nb in NOTEBOOKS:
        seen = pages[f"notebooks/{nb.stem}.html"]
        assert local_images(seen), f"{nb.name}: no figure on its page (were the outputs rendered?)"
        assert "small mode" in seen["text"] and "CPU" in seen["text"], nb.name
        assert colab_url(nb.name) in seen["links"], nb.name


@pytest.mark.site
def test_landing_page_leads_to_every_notebook_in_order_and_to_colab(pages):
    seen = pages["index.html"]
    pages_linked = [link for link in seen["links"] if "/notebooks/" in link and link.endswith(".html")]
    order = list(dict.fromkeys(Path(urlparse(link).path).stem for link in pages_linked))
    assert order[:len(NOTEBOOKS)] == [nb.stem for nb in NOTEBOOKS]
    for nb in NOTEBOOKS:
        assert colab_url(nb.name) in seen["links"], nb.name
    for rel in REFERENCE_PAGES:
        assert any(link.endswith(rel) for link in seen["links"]), rel
    assert "small mode" in seen["text"]


@pytest.mark.site
def test_teaching_page_renders_its_plans_and_leads_to_the_notebooks(pages):
    seen = pages["teaching.html"]
    assert "A 90-minute lesson" in seen["text"] and "Session 3" in seen["text"], seen["text"][:300]
    linked = {Path(urlparse(link).path).stem for link in seen["links"] if "/notebooks/" in link}
    assert linked == {nb.stem for nb in NOTEBOOKS}, linked  # every notebook, each as a page of the site


@pytest.mark.site
def test_reference_pages_show_their_plots(pages):
    for rel in ("docs/benchmarks.html", "docs/ablations.html"):
        assert local_images(pages[rel]), f"{rel}: its plots are missing"


# ----------------------------------------------------------------------------- page layout (fast)
def test_pages_say_how_they_were_run_and_cut_tracebacks_to_their_last_line():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Title"),
                                         nbformat.v4.new_code_cell("raise ValueError('bad')")])
    nb.cells[1].outputs = [nbformat.v4.new_output(
        "error", ename="ValueError", evalue="bad",
        traceback=["-----", "ValueError   Traceback (most recent call last)", "----> 1 raise ValueError('bad')"])]
    page = build_site.page(nb, "01_title.ipynb")
    assert [c.cell_type for c in page.cells] == ["markdown", "markdown", "code"]
    assert "small mode" in page.cells[1].source and colab_url("01_title.ipynb") in page.cells[1].source
    assert page.cells[2].outputs[0].traceback == ["ValueError: bad"]


def test_an_executed_copy_is_reused_only_while_its_sources_are_unchanged(tmp_path):
    notebook = NOTEBOOKS[0]
    key = build_site.source_key(notebook)
    copy = nbformat.read(notebook, 4)
    copy.metadata[build_site.KEY] = key
    nbformat.write(copy, tmp_path / notebook.name)
    assert build_site.is_current(tmp_path / notebook.name, key)
    assert not build_site.is_current(tmp_path / notebook.name, build_site.source_key(NOTEBOOKS[1]))
    assert not build_site.is_current(tmp_path / "absent.ipynb", key)


def test_what_notebook_09_downloads_on_colab_is_laid_out_beforehand(tmp_path):
    folder = build_site.lay_downloads(tmp_path)
    from bidsnet_lib.ablate import PUBLISHED, STUDIES

    published = sorted(name for name in STUDIES if (PUBLISHED / f"{name}.json").is_file())  # studies run so far
    assert {"channel_split", "interaction", "fusion", "nb_features"} <= set(published)
    assert sorted(p.stem for p in (folder / "runs" / "09_published").glob("*.json")) == published


def test_the_nbval_run_leaves_a_copy_for_the_site_once_every_cell_ran(tmp_path, monkeypatch):
    """notebooks/conftest.py: outputs kept cell by cell; the copy is written after the last code
    cell, current (the site build reuses it) when all passed, marked failed when one did not."""
    hooks = load_script("notebooks/conftest.py", "notebooks_conftest")
    monkeypatch.setattr(hooks.build_site, "EXECUTED", tmp_path)
    notebook = NOTEBOOKS[0]

    class Notebook:
        fspath, nb = notebook, nbformat.read(notebook, 4)

    class Cell:
        def __init__(self, parent, cell):
            self.parent, self.cell = parent, cell
            self.test_outputs = [nbformat.v4.new_output("stream", name="stdout", text=cell.source[:10])]

    def run(fail_at=None):
        (tmp_path / notebook.name).unlink(missing_ok=True)
        parent = Notebook()
        cells = [Cell(parent, c) for c in parent.nb.cells if c.cell_type == "code"]
        for i, item in enumerate(cells):
            hooks.keep_outputs(item, "call", i == fail_at)
            hooks.keep_outputs(item, "teardown", False)
            if i == len(cells) - 2:
                assert not (tmp_path / notebook.name).exists()  # not before the last cell
        return nbformat.read(tmp_path / notebook.name, 4)

    copy = run()
    assert build_site.is_current(tmp_path / notebook.name, build_site.source_key(notebook))
    assert "checkout" in copy.metadata[build_site.RAN_IN] and build_site.FAILED not in copy.metadata
    code = [c for c in copy.cells if c.cell_type == "code"]
    assert all(c.outputs[0].text == c.source[:10] for c in code)
    failed = run(fail_at=1)
    assert failed.metadata[build_site.FAILED] and build_site.KEY not in failed.metadata


# ----------------------------------------------------------------------------- the teaching page (fast)
TEACHING = ROOT / "site" / "teaching.md"
PLAN_ROW = re.compile(r"^\| (\d+):(\d\d) \| (\d+) \| (live|ahead|students) \| [^|]+ \| (.+) \|$")


def plan_tables(text: str) -> dict[str, list[re.Match]]:
    """{heading: its plan's rows}: the 90-minute lesson and each session."""
    tables, heading = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("# ")
        elif match := PLAN_ROW.match(line):
            tables.setdefault(heading, []).append(match)
    return tables


def test_teaching_plans_add_up_to_their_time_and_name_sections_and_exercises_that_exist():
    from test_exercises import exercise_number

    text = TEACHING.read_text(encoding="utf-8")
    tables = plan_tables(text)
    assert list(tables) == ["A 90-minute lesson", "Session 1: holes and the CNN stream",
                            "Session 2: attention, fusion and losses", "Session 3: train, measure, use, question"]
    for heading, rows in tables.items():
        clock = 0
        for row in rows:  # each row starts where the one before it ended
            assert int(row[1]) * 60 + int(row[2]) == clock, f"{heading}: {row[0]}"
            clock += int(row[3])
        assert clock == 90, f"{heading}: {clock} min"
    covered = set()
    for name, refs in re.findall(r"\]\(notebooks/(\d\d_[a-z0-9_]+)\.ipynb\)((?: (?:§|ex\. )\d+,?)*)", text):
        path = ROOT / "notebooks" / f"{name}.ipynb"
        assert path.is_file(), name
        cells = nbformat.read(path, 4).cells
        sections = {int(m) for c in cells if c.cell_type == "markdown"
                    for m in re.findall(r"^## (\d+)\b", c.source, re.M)}
        exercises = {exercise_number(c.source) for c in cells if "exercise" in c.get("metadata", {}).get("tags", [])}
        for kind, number in re.findall(r"(§|ex\. )(\d+)", refs):
            assert int(number) in (sections if kind == "§" else exercises), f"{name} {kind}{number}"
        covered.add(name)
    assert covered == {nb.stem for nb in NOTEBOOKS}  # the plans cover every notebook
    index = (ROOT / "site" / "index.md").read_text(encoding="utf-8")
    assert "(teaching.md)" in index and re.search(r"^teaching$", index, re.M)  # linked, and in a toctree
