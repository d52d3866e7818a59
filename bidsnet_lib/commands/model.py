"""`bidsnet model`: parameter counts of the presets and their ablation variants (bidsnet_lib.model)."""

import sys

from bidsnet_lib.ablate import ablation_variants, reference_model
from bidsnet_lib.commands import Parser, run
from bidsnet_lib.model import BIDSNetConfig, summary_table


def build_parser(prog: str = "bidsnet model") -> Parser:
    parser = Parser(prog=prog, description="BIDS-Net parameter counts.")
    parser.add_argument("--summary", action="store_true",
                        help="parameter counts of the presets and the ablation variants (the default)")
    return parser


def _summary(args) -> int:
    configs = {}
    # small: as the default recipe trains it and the ablation studies vary it (Telea fill, residual
    # head); the starts change no parameter count, they name the variants the studies train.
    for preset, config in (("paper", BIDSNetConfig.paper()), ("small", reference_model())):
        configs[preset] = config
        configs.update({f"{preset} {n}": v for n, v in ablation_variants(config).items()})
    print(summary_table(configs))
    return 0


def main(argv: list[str] | None = None, prog: str = "bidsnet model") -> int:
    return run(build_parser(prog), argv, _summary)


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.model"))
