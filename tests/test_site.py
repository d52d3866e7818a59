"""The rendered course (`make site`, tools/build_site.py) in headless Chromium: every page opens,
every image on it loads, no page shows a Python traceback, and the landing page leads to each
notebook and its Colab copy.

Building the site executes every notebook on a bare install of the wheel, each from an empty
temporary folder, so this is also the test of the Colab path (a notebook that fails there fails
the build). Slow (minutes: it runs the whole course once more), so those tests are marked
`site`: `make site-test` runs them, `make test` runs that too; the unmarked ones check how
tools/build_site.py lays out the pages, in a moment. Executed notebooks are reused from
build/site while nothing they depend on changed. Chromium missing: skipped, failed under CI.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from course_files import NOTEBOOKS, ROOT
from test_widget_browser import CHROMIUM, CHROMIUM_FLAGS, require_browser

from bidsnet_lib.colab import colab_url

spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)

OUT = ROOT / "build" / "site"
TRACEBACK = "Traceback (most recent call last)"
REFERENCE_PAGES = ("model_card.html", "docs/benchmarks.html", "docs/ablations.html")


@pytest.fixture(scope="module")
def html() -> Path:
    require_browser()
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


# The first test pays for building the site (every notebook run on a bare install: ~3 CPU-minutes,
# more beside the notebook run of `make test`), inside pytest-timeout's limit.
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
    assert {"channel_split", "interaction", "fusion", "features"} <= set(published)
    assert sorted(p.stem for p in (folder / "runs" / "09_published").glob("*.json")) == published
