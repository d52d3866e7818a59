"""Rebuild data/images (train/, test/, manifest.csv) and data/LICENSES.md from their sources.

The sources are fixed (issue 3): colour photographs shipped inside scikit-image, scikit-learn and
matplotlib (already installed with the course), and the photographs of the Debian package
lomiri-wallpapers. The Debian photos live in the two packages that lomiri-wallpapers depends on;
fetch all three once (the script itself never downloads anything):

    apt-get update
    cd "$(mktemp -d)" && apt-get download lomiri-wallpapers lomiri-wallpapers-16.04 \
        lomiri-wallpapers-20.04 && for f in *.deb; do dpkg -x "$f" x; done

then run, from the repository root:

    .venv/bin/python tools/make_photos.py /path/to/x          # the extracted tree
    .venv/bin/python tools/make_photos.py /path/to/*.deb      # or the .deb files (needs dpkg-deb)

Every photo is resized so its short side is 512 px (aspect kept) and stored as JPEG quality 92
(4:4:4 chroma).
The split is by source photo, stratified by source package with a fixed seed, so the output is
the same on every run.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHORT_SIDE = 512
JPEG_QUALITY = 92
TEST_FRACTION = 0.2
SEED = 2024
MANIFEST_FIELDS = ["file", "split", "source", "author", "licence", "original_size"]

LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "public domain": "",
}


@dataclass(frozen=True)
class Photo:
    """One source photograph and the facts LICENSES.md must state about it."""

    name: str  # stored file stem, e.g. "skimage_astronaut"
    group: str  # source package, the stratum of the split
    source: str
    author: str
    licence: str
    note: str  # where the author/licence facts come from


def _skimage(fn_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, fn_name)()

    return load


def _sklearn(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(file_name)

    return load


def _matplotlib(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib

        return _read_rgb(Path(matplotlib.get_data_path()) / "sample_data" / file_name)

    return load


# Photos shipped in Python packages: (photo, loader returning an RGB uint8 array (H, W, 3)).
PACKAGED: list[tuple[Photo, Callable[[], np.ndarray]]] = [
    (
        Photo(
            "skimage_astronaut",
            "scikit-image",
            "skimage.data.astronaut()",
            "NASA (photograph of Eileen Collins)",
            "public domain",
            "skimage.data.astronaut docstring: NASA Great Images database, no known copyright "
            "restrictions, released into the public domain",
        ),
        _skimage("astronaut"),
    ),
    (
        Photo(
            "skimage_chelsea",
            "scikit-image",
            "skimage.data.chelsea()",
            "Stefan van der Walt",
            "CC0-1.0",
            "skimage.data.chelsea docstring: CC0 by the photographer (Stefan van der Walt)",
        ),
        _skimage("chelsea"),
    ),
    (
        Photo(
            "skimage_coffee",
            "scikit-image",
            "skimage.data.coffee()",
            "Rachel Michetti (courtesy of Pikolo Espresso Bar)",
            "CC0-1.0",
            "skimage.data.coffee docstring: CC0 by the photographer (Rachel Michetti)",
        ),
        _skimage("coffee"),
    ),
    (
        Photo(
            "skimage_rocket",
            "scikit-image",
            "skimage.data.rocket()",
            "SpaceX (launch of DSCOVR on Falcon 9)",
            "public domain",
            "skimage.data.rocket docstring: captured by SpaceX and released in the public domain",
        ),
        _skimage("rocket"),
    ),
    (
        Photo(
            "sklearn_china",
            "scikit-learn",
            "sklearn.datasets.load_sample_image('china.jpg')",
            "danielbuechele (Flickr)",
            "CC-BY-2.0",
            "sklearn/datasets/images/README.txt: creative commons licence "
            "https://creativecommons.org/licenses/by/2.0/, "
            "https://www.flickr.com/photos/danielbuechele/6061409035/",
        ),
        _sklearn("china.jpg"),
    ),
    (
        Photo(
            "sklearn_flower",
            "scikit-learn",
            "sklearn.datasets.load_sample_image('flower.jpg')",
            "vultilion (Flickr)",
            "CC-BY-2.0",
            "sklearn/datasets/images/README.txt: creative commons licence "
            "https://creativecommons.org/licenses/by/2.0/, "
            "https://www.flickr.com/photos/vultilion/6056698931/ (the README's attribution "
            "line repeats 'danielbuechele', but its source link is vultilion's photostream)",
        ),
        _sklearn("flower.jpg"),
    ),
    (
        Photo(
            "matplotlib_grace_hopper",
            "matplotlib",
            "matplotlib mpl-data/sample_data/grace_hopper.jpg",
            "U.S. Navy (photograph of Commodore Grace M. Hopper)",
            "public domain",
            "matplotlib ships no licence text for sample_data; the image was added as a public "
            "domain replacement (matplotlib pull request #1599); it is a U.S. Navy photograph "
            "(Naval History and Heritage Command), a work of the U.S. federal government",
        ),
        _matplotlib("grace_hopper.jpg"),
    ),
]

# Photographs of lomiri-wallpapers-{16.04,20.04} (20.04.0-2), chosen by looking at each
# wallpaper; the Debian copyright file is checked against these authors and licences at build
# time. Skipped as renders or graphics, not photographs: Fossa_by_Jasper_Roks,
# Infinite-Sea_by_Aury88 (photo composited into a drawn gradient),
# Painting-Colors_by__herobrine7gamer,
# analogpattern_by_Peter_Nerlich, umang_by_Abhishek_Mudgal, warty-final-ubuntu.
LOMIRI: dict[str, tuple[str, str]] = {
    "Bridge_by_Sander_Klootwijk.jpg": ("Sander Klootwijk", "CC-BY-SA-4.0"),
    "Dragonfly_by_Bolly.jpg": ("Bolly", "CC-BY-SA-4.0"),
    "Kleiber_by_Lukas_Baubkus.jpg": ("Lukas Baubkus", "CC-BY-SA-3.0"),
    "Picture_0B_by_freespace.jpg": ('Trevor "Freespace"', "CC-BY-4.0"),
    "Picture_1A_by_freespace.jpg": ('Trevor "Freespace"', "CC-BY-4.0"),
    "Wine_by_Jakkub_Mede.jpg": ("Jakub Mede", "CC-BY-4.0"),
    "aitzgorri_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi", "CC-BY-4.0"),
    "free_by_Peter_Nerlich.jpg": ("Peter Nerlich", "CC-BY-SA-4.0"),
    "friends_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi", "CC-BY-4.0"),
    "greentock_by_Peter_Nerlich.jpg": ("Peter Nerlich", "CC-BY-SA-4.0"),
    "life_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi", "CC-BY-4.0"),
    "picosdeeuropa_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi", "CC-BY-4.0"),
    "seeding_by_Clements_Engelhardt.jpg": ("Clemens Engelhardt", "CC0-1.0"),
    "sunset_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi", "CC-BY-4.0"),
}
APT_HINT = (
    "fetch it with: apt-get download lomiri-wallpapers lomiri-wallpapers-16.04 "
    'lomiri-wallpapers-20.04 && for f in *.deb; do dpkg -x "$f" x; done  (then pass x)'
)


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image file {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_short_side(image: np.ndarray, short_side: int = SHORT_SIDE) -> np.ndarray:
    """Scale an (H, W, 3) uint8 image so min(H, W) == short_side, keeping the aspect ratio."""
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))  # (W', H')
    # INTER_AREA averages pixels when shrinking (no aliasing); when enlarging it degenerates to
    # near-nearest-neighbour, so the few small packaged photos are enlarged with bicubic instead.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def parse_debian_copyright(text: str) -> dict[str, tuple[str, str, str]]:
    """Map each file's base name to its (path, Copyright, License) in a DEP-5 copyright file."""
    out = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Files" in fields and "License" in fields:
            for pattern in fields["Files"].split():
                out[Path(pattern).name] = (pattern, fields.get("Copyright", ""), fields["License"])
    return out


def _extract_debs(debs: list[Path], into: Path) -> Path:
    if shutil.which("dpkg-deb") is None:
        raise SystemExit(
            "dpkg-deb is needed to unpack .deb files; extract them yourself and "
            "pass the directory instead. " + APT_HINT
        )
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


def find_lomiri(root: Path) -> tuple[dict[str, Path], dict[str, tuple[str, str, str]], str]:
    """Locate the chosen wallpapers, their copyright entries and the package version in a tree."""
    backgrounds = root / "usr" / "share" / "backgrounds"
    docs = sorted((root / "usr" / "share" / "doc").glob("lomiri-wallpapers*/copyright"))
    if not backgrounds.is_dir() or not docs:
        raise SystemExit(
            f"{root} holds no extracted lomiri-wallpapers tree (expected "
            f"usr/share/backgrounds/ and usr/share/doc/lomiri-wallpapers*/copyright); " + APT_HINT
        )
    copyright_ = parse_debian_copyright(docs[0].read_text(encoding="utf-8"))
    files = {}
    for name, (author, licence) in LOMIRI.items():
        path = backgrounds / name
        if not path.is_file():
            raise SystemExit(
                f"missing {path}: the photos come from lomiri-wallpapers-16.04 and "
                f"-20.04, extract all three packages into one tree; " + APT_HINT
            )
        _, holder, deb_licence = copyright_.get(name, ("", "", ""))
        if deb_licence != licence or author.replace('"', "") not in holder.replace('"', ""):
            raise SystemExit(
                f"{name}: Debian copyright says {holder!r} / {deb_licence!r}, this "
                f"script records {author!r} / {licence!r}; update LOMIRI first"
            )
        files[name] = path
    changelog = root / "usr" / "share" / "doc" / "lomiri-wallpapers" / "changelog.Debian.gz"
    version = "unknown version"
    if changelog.is_file():
        first = gzip.decompress(changelog.read_bytes()).decode("utf-8").splitlines()[0]
        version = first.split("(", 1)[1].split(")", 1)[0]
    return files, copyright_, version


def lomiri_photos(root: Path) -> list[tuple[Photo, Callable[[], np.ndarray]]]:
    files, copyright_, version = find_lomiri(root)
    out = []
    for name, path in files.items():
        author, licence = LOMIRI[name]
        upstream_path, holder, _ = copyright_[name]
        # The upstream folder (16.04/ or 20.04/) names the binary package that ships the file.
        series = Path(upstream_path).parts[0]
        stem = "lomiri_" + re.sub(r"[^a-z0-9]+", "_", Path(name).stem.lower()).strip("_")
        photo = Photo(
            stem,
            "lomiri-wallpapers",
            f"Debian lomiri-wallpapers-{series} {version}: /usr/share/backgrounds/{name}",
            author,
            licence,
            f"debian/copyright of lomiri-wallpapers ({upstream_path}): Copyright "
            f"{' '.join(holder.split())}; License {licence}",
        )
        out.append((photo, lambda p=path: _read_rgb(p)))
    return out


def assign_splits(
    photos: list[Photo], test_fraction: float = TEST_FRACTION, seed: int = SEED
) -> dict[str, str]:
    """Split by photo, stratified by source package: largest-remainder test counts per group."""
    groups: dict[str, list[str]] = {}
    for p in photos:
        groups.setdefault(p.group, []).append(p.name)
    n_test = round(test_fraction * len(photos))
    quotas = {g: test_fraction * len(names) for g, names in groups.items()}
    counts = {g: int(q) for g, q in quotas.items()}
    # Hand the remaining test slots to the groups with the largest fractional parts, so the test
    # split spans several sources instead of whichever one a global shuffle favoured.
    for g in sorted(quotas, key=lambda g: (counts[g] - quotas[g], g))[
        : n_test - sum(counts.values())
    ]:
        counts[g] += 1
    rng = np.random.default_rng(seed)
    split = {}
    for g in sorted(groups):
        names = sorted(groups[g])
        order = rng.permutation(len(names))
        for rank, i in enumerate(order):
            split[names[i]] = "test" if rank < counts[g] else "train"
    return split


def licences_markdown(rows: list[dict[str, str]], photos: dict[str, Photo]) -> str:
    lines = [
        "# Licences of the photos in data/images",
        "",
        "Written by `tools/make_photos.py`; do not edit by hand. Every photo below was resized "
        f"(short side {SHORT_SIDE} px, aspect kept) and re-encoded as JPEG quality {JPEG_QUALITY} "
        "(4:4:4 chroma) by that script; nothing else was changed. The resized versions keep the licence of the "
        "original (for CC BY-SA originals that is required: ShareAlike).",
        "",
        "| File | Source | Author | Licence |",
        "|---|---|---|---|",
    ]
    for r in rows:
        url = LICENCE_URLS[r["licence"]]
        licence = f"[{r['licence']}]({url})" if url else r["licence"]
        lines.append(f"| `{r['file']}` | {r['source']} | {r['author']} | {licence} |")
    lines += ["", "## Where the author and licence facts come from", ""]
    for r in rows:
        lines.append(f"- `{r['file']}`: {photos[Path(r['file']).stem].note}.")
    lines += [
        "",
        "## Sources considered and left out",
        "",
        "- scikit-image: `motorcycle_left`/`motorcycle_right` (Middlebury 2014 stereo pair; its "
        "docstring names the authors but states no licence), `immunohistochemistry`, `retina`, "
        "`hubble_deep_field` (microscopy, fundus and telescope images, not scene photographs), "
        "`colorwheel`, `logo` (graphics); the rest are greyscale, synthetic or need a download.",
        "- lomiri-wallpapers: Fossa_by_Jasper_Roks, Infinite-Sea_by_Aury88, "
        "Painting-Colors_by__herobrine7gamer, analogpattern_by_Peter_Nerlich, "
        "umang_by_Abhishek_Mudgal, warty-final-ubuntu (renders and abstract graphics).",
        "",
    ]
    return "\n".join(lines)


def build(lomiri_root: Path, out_dir: Path, licences_path: Path) -> list[dict[str, str]]:
    """Write out_dir/{train,test}/*.jpg, out_dir/manifest.csv and licences_path."""
    sources = PACKAGED + lomiri_photos(lomiri_root)
    photos = {p.name: p for p, _ in sources}
    split = assign_splits(list(photos.values()))
    for sub in ("train", "test"):
        folder = out_dir / sub
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    rows = []
    for photo, load in sorted(sources, key=lambda s: (split[s[0].name], s[0].name)):
        rgb = load()  # (H, W, 3) uint8
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"{photo.source}: expected an RGB uint8 image, got {rgb.shape} {rgb.dtype}"
            )
        small = resize_short_side(rgb)
        rel = f"{split[photo.name]}/{photo.name}.jpg"
        # Full-resolution chroma (4:4:4): the default 4:2:0 blurs colour edges, which is exactly
        # where inpainting metrics look.
        ok = cv2.imwrite(
            str(out_dir / rel),
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            [
                cv2.IMWRITE_JPEG_QUALITY,
                JPEG_QUALITY,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            ],
        )
        if not ok:
            raise OSError(f"could not write {out_dir / rel}")
        rows.append(
            {
                "file": rel,
                "split": split[photo.name],
                "source": photo.source,
                "author": photo.author,
                "licence": photo.licence,
                "original_size": f"{rgb.shape[1]}x{rgb.shape[0]}",
            }
        )
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    licences_path.write_text(licences_markdown(rows, photos), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "lomiri",
        nargs="+",
        type=Path,
        help="extracted lomiri-wallpapers tree, or the three .deb files",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "images")
    parser.add_argument("--licences", type=Path, default=ROOT / "data" / "LICENSES.md")
    args = parser.parse_args(argv)
    missing = [p for p in args.lomiri if not p.exists()]
    if missing:
        parser.error(f"no such file or directory: {', '.join(map(str, missing))}; " + APT_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        if all(p.is_file() and p.suffix == ".deb" for p in args.lomiri):
            root = _extract_debs(args.lomiri, Path(tmp))
        elif len(args.lomiri) == 1 and args.lomiri[0].is_dir():
            root = args.lomiri[0]
        else:
            parser.error("pass either one extracted directory or the .deb files; " + APT_HINT)
        rows = build(root, args.out, args.licences)
    n_test = sum(r["split"] == "test" for r in rows)
    print(f"wrote {len(rows)} photos ({len(rows) - n_test} train, {n_test} test) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
