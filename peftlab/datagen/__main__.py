"""``python -m peftlab.datagen --out data [--quick]``: build the embedded tiny profile."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m peftlab.datagen", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (the kit ships it as data/)")
    p.add_argument("--quick", action="store_true", help="miniature build for tests (seconds, not minutes)")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from .build import build

    build(args.out, quick=args.quick, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
