"""Build the course as a static website with outputs (`make site`): build/site/html/index.html.

1. A bare install (``tools/bare_install.py``): the wheel in a fresh venv, no checkout.
2. Every notebook executed there in small mode on the CPU, each from an empty temporary folder
   (``tools/execute_notebooks.py``): what a learner on Colab runs. An executed copy is reused
   while its notebook, the package and the downloads it reads are unchanged (``--fresh`` runs
   them all again); ``pytest --nbval-lax notebooks`` (``make test``) leaves such copies too
   (notebooks/conftest.py), so the site of a test run shows that run's outputs and each
   notebook runs once.
3. Sphinx with myst-nb renders the executed copies, a landing page (``site/index.md``) and the
   pages beside it (``site/teaching.md``), the model card and the benchmark and ablation pages
   (``site/conf.py`` says why this builder).

Error outputs keep their last line (``ValueError: ...``), not the traceback: the cells that
raise are the ones tagged ``raises-exception`` (the exercise checks, which fail until solved,
and demonstrations of the library's error messages); any other error fails the build.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_install import PACKAGE, ROOT, bare_install  # noqa: E402

from bidsnet_lib.colab import colab_url  # noqa: E402

SITE = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
MODEL_CARD = ROOT / PACKAGE / "checkpoints" / "MODEL_CARD.md"
# What notebooks download on Colab, laid into each working folder as the download leaves it
# (this machine is offline): notebook 09 reads the published ablation tables from runs/09_published.
DOWNLOADS = {"runs/09_published": sorted((ROOT / "docs" / "ablations").glob("*.json")),
             "runs/published": [ROOT / "docs" / "realism" / "tradeoff.json"]}  # notebook 07's trade-off
KEY = "course_site_key"  # metadata of an executed copy: what it was executed from
RAN_IN = "course_site_ran_in"  # ... and where: BARE_INSTALL, or the checkout under nbval
BARE_INSTALL = "a bare pip install of the wheel"
EXECUTED = ROOT / "build" / "site" / "executed"  # the default --out's copies
FAILED = "course_site_failed"  # metadata of a copy whose run had a failing cell: executed again


def source_key(notebook: Path) -> str:
    """A hash of what an executed copy depends on: the notebook, the package, the downloads."""
    digest = hashlib.sha256(notebook.read_bytes())
    files = [p for p in sorted((ROOT / PACKAGE).rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    for path in [ROOT / "pyproject.toml", *files, *(f for fs in DOWNLOADS.values() for f in fs)]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_current(executed: Path, key: str) -> bool:
    return executed.is_file() and nbformat.read(executed, 4).metadata.get(KEY) == key


def lay_downloads(folder: Path) -> Path:
    for dest, files in DOWNLOADS.items():
        (folder / dest).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, folder / dest / f.name)
    return folder


def execute(out: Path, fresh: bool) -> list[Path]:
    """Executed copies of every notebook in ``out/executed``; raises when any notebook fails."""
    executed = out / "executed"
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    keys = {nb: source_key(nb) for nb in notebooks}
    stale = [nb for nb in notebooks if fresh or not is_current(executed / nb.name, keys[nb])]
    if stale:
        python = bare_install(out / "bare")
        downloads = lay_downloads(out / "downloads")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout on the path
        status = subprocess.run([str(python), str(ROOT / "tools" / "execute_notebooks.py"), "--out", str(executed),
                                 "--files", str(downloads), *map(str, stale)], cwd=out, env=env)
        for nb in stale:  # only a copy that ran through keeps its key, so a failure runs again
            copy = nbformat.read(executed / nb.name, 4)
            if status.returncode == 0:
                copy.metadata[KEY], copy.metadata[RAN_IN] = keys[nb], BARE_INSTALL
                nbformat.write(copy, executed / nb.name)
        if status.returncode != 0:
            raise SystemExit("notebooks failed on the bare install (above); the site was not built")
    print(f"notebooks: {len(stale)} executed, {len(notebooks) - len(stale)} reused from {executed}")
    return [executed / nb.name for nb in notebooks]


def title(nb) -> str:
    return nb.cells[0].source.splitlines()[0].lstrip("# ").strip()


def page(nb, name: str) -> nbformat.NotebookNode:
    """The site's copy: a note on how it was run after the title cell, tracebacks cut."""
    where = nb.metadata.get(RAN_IN, BARE_INSTALL)
    note = nbformat.v4.new_markdown_cell(
        "```{note}\nThis page shows the notebook run in **small mode** (`BIDSNET_SMALL=1`) on a "
        f"**CPU**, in {where}: small images, few steps, every cell run. For full "
        f"size, [open it in Colab]({colab_url(name)}) on a GPU runtime.\n```")
    nb.cells.insert(1, note)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                output.traceback = [f"{output.ename}: {output.evalue}"]
    return nb


def stage(out: Path, executed: list[Path]) -> Path:
    """The Sphinx source folder: conf, landing page, reference pages and notebook pages."""
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "notebooks").mkdir(parents=True)
    shutil.copy2(SITE / "conf.py", src / "conf.py")
    for extra in sorted(SITE.glob("*.md")):  # pages beside the landing page (teaching.md), as written
        if extra.name != "index.md":
            shutil.copy2(extra, src / extra.name)
    shutil.copytree(ROOT / "docs", src / "docs")
    shutil.copy2(MODEL_CARD, src / "model_card.md")
    rows, toc = ["| # | notebook | open |", "| --- | --- | --- |"], []
    for path in executed:
        nb = nbformat.read(path, 4)
        nbformat.write(page(nb, path.name), src / "notebooks" / path.name)
        number, _, rest = title(nb).partition(" · ")
        rows.append(f"| {number} | [{rest or number}](notebooks/{path.name}) | "
                    f"[Open in Colab]({colab_url(path.name)}) |")
        toc.append(f"notebooks/{path.stem}")
    index = (SITE / "index.md").read_text(encoding="utf-8")
    index = index.replace("<!-- notebooks -->", "\n".join(rows)).replace("<!-- toctree -->", "\n".join(toc))
    (src / "index.md").write_text(index, encoding="utf-8")
    return src


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="default build/site")
    parser.add_argument("--fresh", action="store_true", help="execute every notebook again")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    src = stage(args.out, execute(args.out, args.fresh))
    html = args.out / "html"
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", "-d", str(args.out / "doctrees"),
                    str(src), str(html)], check=True)
    print(f"site: {html / 'index.html'} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
