"""The `bidsnet` console command: one sub-command per module of ``bidsnet_lib.commands``, each with a `main(argv)`."""

import importlib
import sys

# Sub-command -> (module, one-line help). Modules are imported only when their command runs,
# so `bidsnet masks` does not pay for torch start-up of unrelated parts.
COMMANDS = {
    "demo": ("bidsnet_lib.commands.demo", "the demo on shipped photos, pictures in outputs/"),
    "masks": ("bidsnet_lib.commands.masks", "write the fixed evaluation mask set"),
    "model": ("bidsnet_lib.commands.model", "parameter summary of the presets"),
    "train": ("bidsnet_lib.commands.train", "train BIDS-Net (torchrun -m bidsnet_lib.commands.train for several processes)"),
    "export": ("bidsnet_lib.commands.export", "write a small inference checkpoint from a training run"),
    "evaluate": ("bidsnet_lib.commands.evaluate", "PSNR/SSIM/LPIPS/FID per mask group against Telea and NS"),
    "ablate": ("bidsnet_lib.commands.ablate", "the paper's ablations at small scale: tables and verdicts"),
    "inpaint": ("bidsnet_lib.commands.inpaint", "inpaint a photo, or a folder of photos with masks"),
}


def usage() -> str:
    lines = ["usage: bidsnet COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines.append("\n`bidsnet COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"bidsnet: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:  # Ctrl-C while torch loads or a command sets up: one line, not a traceback
        print(f"bidsnet {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
