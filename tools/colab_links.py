"""Make every notebook follow ``bidsnet_lib.colab.REPO_URL`` (README, "Publishing the course"):
each Colab link becomes ``colab.colab_url(its name)`` and the first code cell
``colab.setup_cell(trains)`` (``trains``: the notebook is in ``colab.TRAINING_NOTEBOOKS``).

    python tools/colab_links.py [notebooks/NN_name.ipynb ...]    # default: every notebook

Run it after changing ``REPO_URL``; ``make test`` fails until it has run (tests/test_colab.py).
A notebook already in line is left untouched; the others are rewritten atomically, in the form
the notebooks are kept in (nbformat's JSON, one-space indent, no outputs touched).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"']+")


def follow_repo_url(path) -> bool:
    """Rewrite ``path``'s Colab links and first code cell from REPO_URL; True when it changed."""
    from bidsnet_lib.colab import TRAINING_NOTEBOOKS, colab_url, setup_cell
    from bidsnet_lib.plumbing import atomic_write

    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code:
        raise ValueError(f"{path}: no code cell, expected the Colab set-up cell first")
    link = colab_url(path.name)
    for cell in nb["cells"]:
        source = COLAB_LINK.sub(link, "".join(cell["source"]))
        cell["source"] = source.splitlines(keepends=True)
    code[0]["source"] = setup_cell(path.stem in TRAINING_NOTEBOOKS).splitlines(keepends=True)
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if text == path.read_text(encoding="utf-8"):
        return False
    atomic_write(path, text)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        if not path.is_file():
            raise SystemExit(f"notebooks: no such file {str(path)!r}")
        print(f"{path.name}: {'rewritten' if follow_repo_url(path) else 'already follows REPO_URL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
