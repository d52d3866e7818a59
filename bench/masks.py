"""Masks per second for each Mask Set I bin and each Mask Set II preset, on one core.

    python bench/masks.py            # 256x256, 500 masks per row
    python bench/masks.py --quick    # smoke test: a few masks per row

Prints a Markdown table. The generators use no torch and run in this one Python thread; OpenCV
is held to one thread too, as in a single data-loader worker.
"""

import argparse
import platform
import time

import cv2
import numpy as np

from bidsnet_lib.masks import LARGE_MASK_PRESETS, RATIO_BINS, bin_name, irregular_mask, large_mask


def masks_per_second(make, count: int) -> float:
    make()  # warm-up: first calls pay for imports and allocations
    start = time.perf_counter()
    for _ in range(count):
        make()
    return count / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few masks per row (smoke test)")
    parser.add_argument("--size", type=int, default=256, help="mask side in pixels (default: 256)")
    parser.add_argument("--count", type=int, default=500, help="masks timed per row (default: 500)")
    args = parser.parse_args(argv)
    count = 5 if args.quick else args.count
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    rows = [(f"Set I {bin_name(b)} %", lambda b=b: irregular_mask(args.size, args.size, b, rng)) for b in RATIO_BINS]
    rows += [(f"Set II {name}", lambda name=name: large_mask(args.size, args.size, name, rng))
             for name in LARGE_MASK_PRESETS]
    rows += [(f"Set II {name}, max hole 50 %", lambda name=name: large_mask(args.size, args.size, name, rng, 0.5))
             for name in ("thin", "medium", "thick")]
    print(f"Masks per second at {args.size}x{args.size}, one thread, {count} masks a row "
          f"({platform.processor() or platform.machine()}, Python {platform.python_version()})\n")
    print("| masks | masks/s |")
    print("| --- | ---: |")
    for label, make in rows:
        print(f"| {label} | {masks_per_second(make, count):,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
