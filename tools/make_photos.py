"""Rebuild data/images (train/, val/, test/, manifest.csv, test_hires/, manifest_hires.csv) and
data/LICENSES.md from their sources.

The sources are fixed (issues 3 and 14): colour photographs shipped inside scikit-image,
scikit-learn and matplotlib (installed with the course), and the photographs of five Debian
packages: lomiri-wallpapers with the two packages it depends on (-16.04, -20.04), gcompris-qt-data
(photos inside its Qt .rcc resource files) and opencv-doc (examples/data). Fetch them once (the
script itself never downloads anything):

    apt-get update
    cd "$(mktemp -d)" && apt-get download lomiri-wallpapers lomiri-wallpapers-16.04 \
        lomiri-wallpapers-20.04 gcompris-qt-data opencv-doc && for f in *.deb; do dpkg -x "$f" x; done

then run, from the repository root:

    .venv/bin/python tools/make_photos.py /path/to/x          # the extracted tree
    .venv/bin/python tools/make_photos.py /path/to/*.deb      # or the .deb files (needs dpkg-deb)
    .venv/bin/python tools/make_photos.py /path/to/x --check  # rebuild elsewhere, compare bytes

Every photo is resized so its short side is 512 px (aspect kept) and stored as JPEG quality 92
(4:4:4 chroma). Photos whose short side is under 256 px are enlarged more than 2x: those of
200-255 px go to train/ only (val/ and test/ hold photos at least at half their stored size),
smaller ones are left out. Near-duplicates (the same source photo used twice, stereo pairs, crops
that a perceptual hash finds) form one group that lands in one split. The split is by group,
stratified by source package with a fixed seed, so the output is the same on every run.

The high-resolution test set (issue 28), test_hires/ with its own manifest_hires.csv: every test
photo whose original's long side is at least 1,024 px, at its own resolution, shrunk (INTER_AREA)
only where its long side exceeds 2,048 px, never enlarged, and encoded as above. Only the test
split's own photos: its rows name each photo's 512-px file in test/. It stays within the budget
of data/ (DATA_BUDGET, checked by tests/test_photos.py).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import gzip
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHORT_SIDE = 512
MIN_SHORT_SIDE = 256  # below this a photo is enlarged > 2x: train/ only
MIN_TRAIN_SHORT_SIDE = 200  # below this it is left out
JPEG_QUALITY = 92
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
SEED = 2024
SPLITS = ("train", "val", "test")
# Held out since issue 3 (never trained on): they stay in test/.
PINNED_TEST = (
    "lomiri_greentock_by_peter_nerlich",
    "lomiri_life_by_aitzol_berasategi",
    "lomiri_seeding_by_clements_engelhardt",
    "skimage_rocket",
)
MANIFEST_FIELDS = ["file", "split", "group", "source", "author", "licence", "original_size"]
# The high-resolution test set: test photos at their own size, long side HIRES_MIN_LONG_SIDE to
# HIRES_LONG_SIDE px (larger originals shrunk to HIRES_LONG_SIDE), in HIRES_DIR/ beside the splits.
HIRES_DIR = "test_hires"
HIRES_MANIFEST = "manifest_hires.csv"
HIRES_LONG_SIDE = 2048
HIRES_MIN_LONG_SIDE = 1024
HIRES_FIELDS = ["file", "test_file", "source", "author", "licence", "original_size", "size"]
DATA_BUDGET = 60 * 2**20  # bytes under data/ (the repository's size budget for photos)

# Perceptual hash (phash: 255 bits), compared against the whole image and against its crops
# at the centre and the four corners at CROP_SCALES of its size. Two photos closer than DUPLICATE_BITS are one photo;
# tests/test_photos.py calibrates the threshold (duplicates <= 6 bits, all other pairs >= 84).
HASH_SIZE = 16
HASH_BITS = HASH_SIZE**2 - 1
CROP_SCALES = (0.85, 0.7, 0.55)
DUPLICATE_BITS = 40

LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2.0-or-later": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-3.0-or-later": "https://www.gnu.org/licenses/gpl-3.0.html",
    "Apache-2.0 AND BSD-3-Clause": "https://www.apache.org/licenses/LICENSE-2.0",
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
    link: str = ""  # photos sharing a non-empty link are one source photo (same URL, stereo pair)


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
PACKAGES = (
    "lomiri-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "gcompris-qt-data",
    "opencv-doc",
)
APT_HINT = (
    f"fetch them with: apt-get download {' '.join(PACKAGES)} && "
    'for f in *.deb; do dpkg -x "$f" x; done  (then pass x)'
)

# gcompris-qt-data: which files of which activity's .rcc are photographs, chosen by looking at
# every image of the package. Left out as drawings or paintings: lang, paintings, babyshapes,
# the painting puzzles of details and the fish sprites of clickgame; as cut-outs on a
# transparent or black ground: leftright (hands), solar_system and gravity (planets); as text
# for subject: categorization's alphabets and numbers (toy blocks).
GCOMPRIS = {
    "erase": r"resource/[^/]+\.webp",
    "explore_monuments": r"resource/[^/]+/[^/]+\.webp",
    "explore_world_animals": r"resource/animals/[^/]+\.webp",
    "explore_farm_animals": r"resource/animals/[^/]+\.webp",
    "explore_world_music": r"resource/music/[^/]+\.webp",
    "clickgame": r"resource/sea\d\.webp",
    "details": r"resource/image/(Chenonceau|EgeskovSlotSpejling|EilanDonanCastle|FanoeWindmill"
    r"|GizahPyramids|Louvre_2007_02_24_c|NDP|Nagoya|Neuschwanstein|OperaSidney|TajMahal"
    r"|TourEiffel|TowerBridgeLondon)_background\.webp",
    "categorization": r"resource/images/(fishes|monuments|others|renewable|tools)/[^/]+\.webp",
}
# README entries that name a file differently from the file itself.
GCOMPRIS_README_ALIASES = {
    "explore_monuments/resource/germany/aulaPalatina.webp": "germany/audaPalatina.webp",
    "categorization/resource/images/tools/screwDriver.webp": "screDriver.webp",
}
GCOMPRIS_RCC = Path("usr/share/gcompris-qt/rcc")

# opencv-doc examples/data (samples/data upstream): the photographs, each with what is known of
# its origin; photos of one scene from two viewpoints or exposures share a link. Debian licenses
# all of samples/data under its "Files: *" stanza after removing the one image it found unfree
# (Lena); the photographers are not recorded. Left out: messi5.jpg (a press photograph of a
# footballer, a free licence is implausible), starry_night.jpg (a painting), ela_modified.jpg
# (ela_original.jpg with a logo pasted in), chicky_512.png (a cut-out on a transparent ground),
# pca_test1.jpg (cut-out shapes on a light box), HappyFish.jpg (259x194), Blender_Suzanne*.jpg
# and blox.jpg (renders), and every greyscale, synthetic, logo, text or chessboard image.
OPENCV = {
    "aero1.jpg": ("aero", "aerial photograph, a stitching sample overlapping aero3.jpg"),
    "aero3.jpg": ("aero", "aerial photograph, a stitching sample overlapping aero1.jpg"),
    "aloeL.jpg": ("aloe", "the 'Aloe' stereo pair of the Middlebury stereo datasets, left view"),
    "aloeR.jpg": ("aloe", "the 'Aloe' stereo pair of the Middlebury stereo datasets, right view"),
    "apple.jpg": ("", "an apple, the pyramid-blending sample"),
    "orange.jpg": ("", "an orange, the pyramid-blending sample"),
    "baboon.jpg": ("", "the classic 'Mandrill' test photograph (USC-SIPI image database)"),
    "board.jpg": ("", "a circuit board"),
    "building.jpg": ("", "a building"),
    "butterfly.jpg": ("", "a butterfly"),
    "ela_original.jpg": ("", "a notebook, the error-level-analysis sample"),
    "fruits.jpg": ("", "fruit"),
    "graf1.png": ("graf", "the 'graffiti' sequence of the Oxford affine-covariant features data"),
    "graf3.png": ("graf", "the 'graffiti' sequence of the Oxford affine-covariant features data"),
    "home.jpg": ("", "a building under a blue sky"),
    "left.jpg": ("books", "books on a floor, left view of a stereo pair"),
    "right.jpg": ("books", "books on a floor, right view of a stereo pair"),
    "leuvenA.jpg": ("leuven", "a street in Leuven, one of two exposures"),
    "leuvenB.jpg": ("leuven", "a street in Leuven, one of two exposures"),
    "rubberwhale1.png": ("whale", "the 'RubberWhale' scene of the Middlebury optical-flow data"),
    "rubberwhale2.png": ("whale", "the 'RubberWhale' scene of the Middlebury optical-flow data"),
    "smarties.png": ("", "sweets on a white table"),
    "squirrel_cls.jpg": ("", "a squirrel"),
    "stuff.jpg": ("", "objects on a table"),
}
OPENCV_DATA = Path("usr/share/doc/opencv-doc/examples/data")


def _read_rgb(path: Path) -> np.ndarray:
    return _decode_rgb(path.read_bytes(), str(path))


def _decode_rgb(data: bytes, what: str) -> np.ndarray:
    """Decode an image file's bytes to RGB uint8 (H, W, 3); refuse transparent images."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{what}: cannot decode the image data")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        if image[..., 3].min() < 255:
            raise ValueError(f"{what}: got a transparent image, expected an opaque photo")
        image = image[..., :3]
    if image.dtype != np.uint8:
        raise ValueError(f"{what}: got {image.dtype} pixels, expected uint8")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_short_side(image: np.ndarray, short_side: int = SHORT_SIDE) -> np.ndarray:
    """Scale an (H, W, 3) uint8 image so min(H, W) == short_side, keeping the aspect ratio."""
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))  # (W', H')
    # INTER_AREA averages pixels when shrinking (no aliasing); when enlarging it degenerates to
    # near-nearest-neighbour, so the few small photos are enlarged with bicubic instead.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def resize_long_side(image: np.ndarray, long_side: int = HIRES_LONG_SIDE) -> np.ndarray:
    """Shrink an (H, W, 3) uint8 image so max(H, W) <= long_side (aspect kept); never enlarge."""
    h, w = image.shape[:2]
    if max(h, w) <= long_side:
        return image
    scale = long_side / max(h, w)
    size = (round(w * scale), round(h * scale))  # (W', H'): the long side is exactly long_side
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, what: str) -> bytes:
    """JPEG quality JPEG_QUALITY with full-resolution chroma (4:4:4) of an (H, W, 3) uint8 image.

    The default 4:2:0 blurs colour edges, which is exactly where inpainting metrics look."""
    ok, jpeg = cv2.imencode(
        ".jpg",
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        [
            cv2.IMWRITE_JPEG_QUALITY,
            JPEG_QUALITY,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ],
    )
    if not ok:
        raise OSError(f"could not encode {what}")
    return jpeg.tobytes()


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


def debian_version(root: Path, package: str) -> str:
    """The version in the first line of a package's changelog.Debian.gz in an extracted tree."""
    changelog = root / "usr" / "share" / "doc" / package / "changelog.Debian.gz"
    if not changelog.is_file():
        raise SystemExit(f"missing {changelog}: extract {package} into the tree; " + APT_HINT)
    first = gzip.decompress(changelog.read_bytes()).decode("utf-8").splitlines()[0]
    return first.split("(", 1)[1].split(")", 1)[0]


def _package_licence(root: Path, package: str, expected: str) -> str:
    """Check that the package's debian/copyright licenses its "Files: *" stanza as `expected`."""
    path = root / "usr" / "share" / "doc" / package / "copyright"
    if not path.is_file():
        raise SystemExit(f"missing {path}: extract {package} into the tree; " + APT_HINT)
    found = ""
    for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        if re.match(r"Files:\s*\*\s*$", stanza, re.M) and (
            m := re.search(r"^License:\s*(.+)$", stanza, re.M)
        ):
            found = m[1].strip()
            break
    if found != expected:
        raise SystemExit(
            f"{package}: debian/copyright licenses Files: * as {found!r}, this script "
            f"expects {expected!r}; check the photos' licences again"
        )
    return found


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
    return files, copyright_, debian_version(root, "lomiri-wallpapers")


def lomiri_photos(root: Path) -> list[tuple[Photo, Callable[[], np.ndarray]]]:
    files, copyright_, version = find_lomiri(root)
    out = []
    for name, path in files.items():
        author, licence = LOMIRI[name]
        upstream_path, holder, _ = copyright_[name]
        # The upstream folder (16.04/ or 20.04/) names the binary package that ships the file.
        series = Path(upstream_path).parts[0]
        photo = Photo(
            "lomiri_" + _slug(Path(name).stem),
            "lomiri-wallpapers",
            f"Debian lomiri-wallpapers-{series} {version}: /usr/share/backgrounds/{name}",
            author,
            licence,
            f"debian/copyright of lomiri-wallpapers ({upstream_path}): Copyright "
            f"{' '.join(holder.split())}; License {licence}",
        )
        out.append((photo, lambda p=path: _read_rgb(p)))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def read_rcc(data: bytes) -> dict[str, bytes]:
    """The files of a Qt resource (.rcc, format version 1-3) by path, zlib entries inflated.

    Layout: "qres", version, then offsets of the node tree, the data and the names (big-endian
    uint32). A tree node is (name offset u32, flags u16, then for a directory: child count u32,
    first child u32; for a file: territory u16, language u16, data offset u32), plus a u64
    modification time from version 2 on. A name is (length u16, hash u32, UTF-16BE), a data
    entry (length u32, bytes); flag 1 marks zlib data (prefixed by its inflated length u32).
    """
    if data[:4] != b"qres":
        raise ValueError(f"not a Qt resource file: got {data[:4]!r}, expected b'qres'")
    version, tree, blobs, names = struct.unpack(">4I", data[4:20])
    if not 1 <= version <= 3:
        raise ValueError(f"rcc format version: got {version}, expected 1 to 3")
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        return data[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]
    while pending:
        index, prefix = pending.pop()
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[at : at + 6])
        path = prefix + name(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", data[at + 6 : at + 14])
            pending += [
                (child, path + "/" if path else "") for child in range(first, first + count)
            ]
            continue
        (offset,) = struct.unpack(">I", data[at + 10 : at + 14])
        (length,) = struct.unpack(">I", data[blobs + offset : blobs + offset + 4])
        blob = data[blobs + offset + 4 : blobs + offset + 4 + length]
        if flags & 4:
            raise ValueError(f"{path}: zstd-compressed rcc entries are not supported")
        files[path] = zlib.decompress(blob[4:]) if flags & 1 else blob
    return files


def parse_credits(text: str) -> dict[str, dict[str, str]]:
    """Map each file named in a GCompris resource README to its Copyright/Source/License/Comment.

    Blocks are separated by blank lines; a bare file name on its own line is a file of the block
    even without a "Files:" line before it (the details README lists them so).
    """
    out = {}
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        files: list[str] = []
        key = None
        for line in block.splitlines():
            line = line.strip()
            match = re.match(r"(Copyright|Source|License|Comments?|Files):\s*(.*)$", line)
            if match:
                key = "Comment" if match[1].startswith("Comment") else match[1]
                value = [match[2]] if match[2] else []
                (files if key == "Files" else fields.setdefault(key, [])).extend(value)
            elif key == "Files" or re.fullmatch(r"[\w.@+-]+(/[\w.@+-]+)*\.[A-Za-z0-9]{2,5}", line):
                files.extend([line] if line else [])
            elif key and line:
                fields[key].append(line)
        for file in files:
            out[file] = {k: " ".join(v) for k, v in fields.items()}
    return out


def normalise_licence(text: str, what: str) -> str:
    """'CC-BY-SA 4.0', 'Public domain', 'CC0-1.0', ... as a key of LICENCE_URLS."""
    key = re.sub(r"[\s_]+", "-", text.strip()).upper()
    aliases = {
        "PUBLIC-DOMAIN": "public domain",
        "GPLV2+": "GPL-2.0-or-later",
        "GPLV3+": "GPL-3.0-or-later",
        "GPLV3-OR-LATER": "GPL-3.0-or-later",
    }
    key = aliases.get(key, key)
    if key not in LICENCE_URLS:
        raise ValueError(f"{what}: licence {text!r} is not one of {sorted(LICENCE_URLS)}")
    return key


def gcompris_photos(root: Path) -> list[tuple[Photo, Callable[[], np.ndarray]]]:
    """The chosen photos of gcompris-qt-data's .rcc files, credited from their READMEs."""
    rcc_dir = root / GCOMPRIS_RCC
    if not rcc_dir.is_dir():
        raise SystemExit(f"missing {rcc_dir}: extract gcompris-qt-data into the tree; " + APT_HINT)
    version = debian_version(root, "gcompris-qt-data")
    _package_licence(root, "gcompris-qt-data", "GPL-3+")  # the package's own terms, as recorded
    out = []
    for activity, pattern in GCOMPRIS.items():
        rcc_path = rcc_dir / f"{activity}.rcc"
        files = read_rcc(rcc_path.read_bytes())
        base = f"gcompris/src/activities/{activity}/"
        readmes = {
            str(Path(path).parent): parse_credits(blob.decode("utf-8"))
            for path, blob in files.items()
            if path.startswith(base) and Path(path).name == "README"
        }
        chosen = sorted(
            p for p in files if p.startswith(base) and re.fullmatch(pattern, p[len(base) :])
        )
        if not chosen:
            raise SystemExit(f"{rcc_path}: no file matches {pattern!r}; has the package changed?")
        for path in chosen:
            rel = path[len(base) :]
            credit, readme = {}, ""
            for folder in (Path(path).parent, *Path(path).parent.parents):
                entries = readmes.get(str(folder), {})
                key = GCOMPRIS_README_ALIASES.get(
                    f"{activity}/{rel}", str(Path(path).relative_to(folder))
                )
                if key in entries:
                    credit, readme = entries[key], f"{folder}/README"
                    break
            stem = Path(rel).with_suffix("").as_posix()
            stem = re.sub(r"^resource/(images/|image/)?", "", stem).removesuffix("_background")
            source = (
                f"Debian gcompris-qt-data {version}: /{GCOMPRIS_RCC}/{activity}.rcc, file :/{path}"
            )
            if not credit:
                raise SystemExit(
                    f"{path} in {activity}.rcc: no README credits it; check its licence and "
                    "credit it in GCOMPRIS_README_ALIASES or leave it out of GCOMPRIS"
                )
            licence = normalise_licence(credit.get("License", ""), path)
            author = credit.get("Copyright", "").strip() or "unknown"
            # details: "based on a photo by X, license ..., source at URL" names the photographer.
            origin = re.search(
                r"based on an? (?:original )?(?:photo|image) by ([^,]+)",
                credit.get("Comment", ""),
            )
            if origin:
                author += f" (based on a photo by {origin[1].strip()})"
            note = (
                f"{readme} inside {activity}.rcc: Copyright {author}; License "
                f"{credit.get('License')}; Source {credit.get('Source', 'not given')}"
                + (f"; {credit['Comment']}" if credit.get("Comment") else "")
            )
            url = re.search(r"https?://\S+", credit.get("Source", "") or credit.get("Comment", ""))
            link = url[0].rstrip(".,").lower() if url else ""
            photo = Photo(
                _slug(f"gcompris_{activity}_{stem}"),
                "gcompris-qt-data",
                source,
                author,
                licence,
                note,
                link,
            )
            out.append((photo, lambda b=files[path], p=path: _decode_rgb(b, p)))
    return out


def opencv_photos(root: Path) -> list[tuple[Photo, Callable[[], np.ndarray]]]:
    folder = root / OPENCV_DATA
    if not folder.is_dir():
        raise SystemExit(f"missing {folder}: extract opencv-doc into the tree; " + APT_HINT)
    version = debian_version(root, "opencv-doc")
    licence = _package_licence(root, "opencv-doc", "Apache-2.0 AND BSD-3-Clause")
    out = []
    for name, (link, what) in OPENCV.items():
        path = folder / name
        if not path.is_file():
            raise SystemExit(f"missing {path}; has opencv-doc changed?")
        photo = Photo(
            "opencv_" + _slug(Path(name).stem),
            "opencv-doc",
            f"Debian opencv-doc {version}: /{OPENCV_DATA}/{name}",
            "unknown (OpenCV sample data)",
            licence,
            f"{what}; debian/copyright of opencv-doc covers samples/data under Files: * "
            f"(License: {licence}) and names no photographer",
            f"opencv:{link}" if link else "",
        )
        out.append((photo, lambda p=path: _read_rgb(p)))
    return out


def phash(rgb: np.ndarray) -> np.ndarray:
    """Perceptual hash of an (H, W, 3) uint8 image: (HASH_BITS,) bool.

    The lowest 16x16 DCT frequencies of the 64x64 grey image, DC left out, each compared with
    their median: robust to resizing and re-encoding, and unlike a difference hash it does not
    collapse to all zeros on flat backgrounds (objects on white would all look alike).
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE].ravel()[1:]
    return low > np.median(low)


def crop_boxes(
    h: int, w: int, scales: tuple[float, ...] = CROP_SCALES
) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of the centre and four corner crops at each scale."""
    boxes = []
    for scale in scales:
        ch, cw = round(h * scale), round(w * scale)
        boxes += [((h - ch) // 2, (w - cw) // 2, ch, cw)]
        boxes += [(t, s, ch, cw) for t in (0, h - ch) for s in (0, w - cw)]
    return boxes


def hash_variants(rgb: np.ndarray) -> np.ndarray:
    """pHashes of the whole image, then of its crop_boxes: (1 + 5 * len(CROP_SCALES), HASH_BITS)."""
    h, w = rgb.shape[:2]
    crops = [rgb] + [rgb[t : t + ch, s : s + cw] for t, s, ch, cw in crop_boxes(h, w)]
    return np.stack([phash(c) for c in crops])


def hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) smallest Hamming distance between photo i of `a` and photo j of `b`.

    `a` and `b` are (N, V, bits) and (M, V, bits) from hash_variants: each whole image is
    compared with the other's whole image and crops, both ways, so a crop of a photo matches it.
    """
    whole_a, whole_b = a[:, 0].astype(np.int32), b[:, 0].astype(np.int32)

    def cross(x: np.ndarray, variants: np.ndarray) -> np.ndarray:  # (N, bits) vs (M, V, bits)
        v = variants.astype(np.int32)
        ones = x @ v.reshape(-1, v.shape[-1]).T  # bits both set
        diff = x.sum(1)[:, None] + v.reshape(-1, v.shape[-1]).sum(1)[None] - 2 * ones
        return diff.reshape(len(x), v.shape[0], v.shape[1]).min(2)

    return np.minimum(cross(whole_a, b), cross(whole_b, a).T)


def assign_splits(
    photos: list[Photo],
    linked: list[tuple[str, str]] = (),
    train_only: set[str] = frozenset(),
    pinned_test: tuple[str, ...] = (),
    test_fraction: float = TEST_FRACTION,
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
) -> tuple[dict[str, str], dict[str, str]]:
    """Split by group of linked photos, stratified by source package: (split, group) by name.

    Groups holding a `train_only` photo go to train; the others are eligible for test and val,
    whose sizes are test_fraction and val_fraction of the eligible photos, shared among the
    packages by largest remainder so both span several sources. Groups holding a `pinned_test`
    photo go to test first, then each package's other eligible groups are drawn in a seeded
    random order.
    """
    parent = {p.name: p.name for p in photos}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for a, b in linked:
        ra, rb = sorted((root(a), root(b)))
        parent[rb] = ra
    members: dict[str, list[Photo]] = {}
    for p in sorted(photos, key=lambda p: p.name):
        members.setdefault(root(p.name), []).append(p)
    group_of = {p.name: g for g, ps in members.items() for p in ps}
    by_stratum: dict[str, list[str]] = {}
    split = {}
    for g, ps in sorted(members.items()):
        if any(p.name in train_only for p in ps):
            split.update({p.name: "train" for p in ps})
        else:
            by_stratum.setdefault(ps[0].group, []).append(g)
    eligible = {s: sum(len(members[g]) for g in gs) for s, gs in by_stratum.items()}

    def quotas(fraction: float) -> dict[str, int]:
        exact = {s: fraction * n for s, n in eligible.items()}
        counts = {s: int(q) for s, q in exact.items()}
        short = round(fraction * sum(eligible.values())) - sum(counts.values())
        for s in sorted(exact, key=lambda s: (counts[s] - exact[s], s))[:short]:
            counts[s] += 1
        return counts

    n_test, n_val = quotas(test_fraction), quotas(val_fraction)
    rng = np.random.default_rng(seed)
    for s in sorted(by_stratum):
        groups = by_stratum[s]
        order = [groups[i] for i in rng.permutation(len(groups))]
        order.sort(key=lambda g: not any(p.name in pinned_test for p in members[g]))  # stable
        taken = {"test": 0, "val": 0}
        for g in order:
            pinned = any(p.name in pinned_test for p in members[g])
            if pinned or taken["test"] < n_test[s]:
                target = "test"
            elif taken["val"] < n_val[s]:
                target = "val"
            else:
                target = "train"
            if target != "train":
                taken[target] += len(members[g])
            split.update({p.name: target for p in members[g]})
    return split, group_of


def licences_markdown(
    rows: list[dict[str, str]],
    photos: dict[str, Photo],
    skipped: list[tuple[Photo, int, int]],
    hires: list[dict[str, str]] = (),
) -> str:
    enlarged = [r for r in rows if min(map(int, r["original_size"].split("x"))) < MIN_SHORT_SIDE]
    lines = [
        "# Licences of the photos in data/images",
        "",
        "Written by `tools/make_photos.py`; do not edit by hand. Every photo below was resized "
        f"(short side {SHORT_SIDE} px, aspect kept) and re-encoded as JPEG quality {JPEG_QUALITY} "
        "(4:4:4 chroma) by that script; nothing else was changed. The resized versions keep the "
        "licence of the original (for CC BY-SA originals that is required: ShareAlike). "
        "`manifest.csv` lists the same facts, each photo's split and its near-duplicate group.",
        "",
        "| File | Source | Author | Licence |",
        "|---|---|---|---|",
    ]

    def table_row(r: dict[str, str]) -> str:
        url = LICENCE_URLS[r["licence"]]
        licence = f"[{r['licence']}]({url})" if url else r["licence"]
        return f"| `{r['file']}` | {r['source']} | {r['author']} | {licence} |"

    lines += [table_row(r) for r in rows]
    if hires:
        lines += [
            "",
            f"## The high-resolution test set ({HIRES_DIR}/)",
            "",
            f"The test photos above whose original's long side is at least {HIRES_MIN_LONG_SIDE} "
            f"px, at their own resolution: shrunk (long side {HIRES_LONG_SIDE} px, aspect kept) "
            "only where the original is larger, never enlarged, and re-encoded as JPEG quality "
            f"{JPEG_QUALITY} (4:4:4 chroma); nothing else was changed. They keep the licence of "
            f"the original. `{HIRES_MANIFEST}` lists each one's 512-px file in test/ and its size.",
            "",
            "| File | Source | Author | Licence |",
            "|---|---|---|---|",
        ]
        lines += [table_row(r) for r in hires]
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
        "- gcompris-qt-data: the drawings of `lang` and the other activities, the paintings of "
        "`paintings`, `details` and `babyshapes`, the fish sprites of `clickgame`, the hands of "
        "`leftright` and the planets of `solar_system` and `gravity` (cut-outs on a transparent "
        "or black ground), and the toy blocks of `categorization` (letters and digits as subject).",
        "- opencv-doc: `messi5.jpg` (a press photograph of a footballer: a free licence is "
        "implausible), `starry_night.jpg` (a painting), `ela_modified.jpg` (`ela_original.jpg` "
        "with a logo pasted in), `chicky_512.png` (a cut-out on a transparent ground), `pca_test1.jpg` (cut-out shapes on a light box), "
        "`Blender_Suzanne*.jpg` and `blox.jpg` (renders), and every greyscale, synthetic, logo, "
        "text or chessboard image; Debian had already removed Lena.",
        f"- Too small (short side under {MIN_TRAIN_SHORT_SIDE} px, it would be enlarged more "
        f"than {SHORT_SIDE / MIN_TRAIN_SHORT_SIDE:.1f}x): {len(skipped)} photos: "
        + ", ".join(f"`{p.name}` ({w}x{h})" for p, w, h in skipped)
        + ".",
        f"- Kept for training only (short side {MIN_TRAIN_SHORT_SIDE}-{MIN_SHORT_SIDE - 1} px, "
        f"enlarged {SHORT_SIDE / MIN_SHORT_SIDE:.0f}-{SHORT_SIDE / MIN_TRAIN_SHORT_SIDE:.1f}x, "
        "so never in val/ or test/, which hold photos stored at most 2x their original size): "
        f"{len(enlarged)} photos.",
        "",
    ]
    return "\n".join(lines)


def build(root: Path, out_dir: Path, licences_path: Path) -> list[dict[str, str]]:
    """Write out_dir/{train,val,test}/*.jpg, out_dir/manifest.csv and licences_path."""
    lomiri = lomiri_photos(root)  # first: its error message names the apt command
    gcompris = gcompris_photos(root)
    sources = PACKAGED + lomiri + gcompris + opencv_photos(root)
    photos = {p.name: p for p, _ in sources}
    if len(photos) != len(sources):
        raise ValueError("two source photos share a file name; rename one in the tables above")
    encoded, variants, sizes, skipped = {}, {}, {}, []
    for photo, load in sources:
        rgb = load()  # (H, W, 3) uint8
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"{photo.source}: expected an RGB uint8 image, got {rgb.shape} {rgb.dtype}"
            )
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_TRAIN_SHORT_SIDE:
            skipped.append((photo, w, h))
            continue
        small = resize_short_side(rgb)
        encoded[photo.name], sizes[photo.name] = encode_jpeg(small, photo.name), (w, h)
        variants[photo.name] = hash_variants(small)
    names = sorted(encoded)
    dist = hash_distances(*(np.stack([variants[n] for n in names]),) * 2)
    # A few bits of margin over the test's threshold: the test hashes the decoded JPEGs.
    close = np.argwhere(np.triu(dist < DUPLICATE_BITS + 8, 1))
    linked = [(names[i], names[j]) for i, j in close]
    by_link: dict[str, list[str]] = {}
    for n in names:
        if photos[n].link:
            by_link.setdefault(photos[n].link, []).append(n)
    linked += [(ns[0], n) for ns in by_link.values() for n in ns[1:]]
    train_only = {n for n in names if min(sizes[n]) < MIN_SHORT_SIDE}
    split, group_of = assign_splits([photos[n] for n in names], linked, train_only, PINNED_TEST)
    for sub in (*SPLITS, HIRES_DIR):
        folder = out_dir / sub
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    rows = []
    for name in sorted(names, key=lambda n: (split[n], n)):
        photo = photos[name]
        rel = f"{split[name]}/{name}.jpg"
        (out_dir / rel).write_bytes(encoded[name])
        rows.append(
            {
                "file": rel,
                "split": split[name],
                "group": group_of[name],
                "source": photo.source,
                "author": photo.author,
                "licence": photo.licence,
                "original_size": "{}x{}".format(*sizes[name]),
            }
        )
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    loaders = {photo.name: load for photo, load in sources}
    hires = build_hires(rows, photos, loaders, out_dir)
    licences_path.write_text(licences_markdown(rows, photos, skipped, hires), encoding="utf-8")
    return rows


def build_hires(
    rows: list[dict[str, str]],
    photos: dict[str, Photo],
    loaders: dict[str, Callable[[], np.ndarray]],
    out_dir: Path,
) -> list[dict[str, str]]:
    """Write out_dir/HIRES_DIR/*.jpg and out_dir/HIRES_MANIFEST: the test photos at their own size.

    A test photo whose original's long side is at least HIRES_MIN_LONG_SIDE, shrunk to
    HIRES_LONG_SIDE where it is longer, never enlarged; returns the manifest rows.
    """
    hires = []
    for r in rows:
        w, h = (int(v) for v in r["original_size"].split("x"))
        if r["split"] != "test" or max(w, h) < HIRES_MIN_LONG_SIDE:
            continue
        name = Path(r["file"]).stem
        rgb = resize_long_side(loaders[name]())  # (H', W', 3), max(H', W') <= HIRES_LONG_SIDE
        rel = f"{HIRES_DIR}/{name}.jpg"
        (out_dir / rel).write_bytes(encode_jpeg(rgb, rel))
        hires.append(
            {
                "file": rel,
                "test_file": r["file"],
                "source": photos[name].source,
                "author": photos[name].author,
                "licence": photos[name].licence,
                "original_size": r["original_size"],
                "size": f"{rgb.shape[1]}x{rgb.shape[0]}",
            }
        )
    with open(out_dir / HIRES_MANIFEST, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HIRES_FIELDS)
        writer.writeheader()
        writer.writerows(hires)
    return hires


def compare_trees(built: Path, built_licences: Path, out: Path, licences: Path) -> list[str]:
    """Files that differ between a fresh build and the shipped one (relative paths)."""

    def listing(folder: Path) -> set[str]:
        return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}

    a, b = listing(built), listing(out)
    differ = sorted(a ^ b)
    differ += [f for f in sorted(a & b) if not filecmp.cmp(built / f, out / f, shallow=False)]
    if not licences.is_file() or not filecmp.cmp(built_licences, licences, shallow=False):
        differ.append(str(licences))
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "packages",
        nargs="+",
        type=Path,
        help=f"one extracted tree of the five packages, or their .deb files ({', '.join(PACKAGES)})",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "images")
    parser.add_argument("--licences", type=Path, default=ROOT / "data" / "LICENSES.md")
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary folder and compare it byte for byte with --out and --licences",
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.packages if not p.exists()]
    if missing:
        parser.error(f"no such file or directory: {', '.join(map(str, missing))}; " + APT_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        if all(p.is_file() and p.suffix == ".deb" for p in args.packages):
            root = _extract_debs(args.packages, Path(tmp) / "tree")
        elif len(args.packages) == 1 and args.packages[0].is_dir():
            root = args.packages[0]
        else:
            parser.error("pass either one extracted directory or the .deb files; " + APT_HINT)
        if args.check:
            out, licences = Path(tmp) / "images", Path(tmp) / "LICENSES.md"
        else:
            out, licences = args.out, args.licences
        rows = build(root, out, licences)
        counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
        print(
            f"built {len(rows)} photos ("
            + ", ".join(f"{n} {s}" for s, n in counts.items())
            + f"; {len(list((out / HIRES_DIR).glob('*.jpg')))} of the test photos also at their "
            f"own size in {HIRES_DIR}/) in {out}"
        )
        if args.check:
            differ = compare_trees(out, licences, args.out, args.licences)
            if differ:
                print(f"{len(differ)} files differ from the shipped ones: {', '.join(differ[:20])}")
                return 1
            print(f"identical to {args.out} and {args.licences}, byte for byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
