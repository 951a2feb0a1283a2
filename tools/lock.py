"""Write the environment lock: every distribution installed in the running interpreter, pinned exactly.

``make lock`` runs this inside a scratch virtual environment where pip has just resolved ``pyproject.toml``'s
ranges afresh, so the file records what a new install gets today. ``make setup``, ``environment.yml``, the
student release and (for the packages that decide the kit's behaviour) the Colab setup cell install through
it, and ``tests/test_environment.py`` fails when the installed versions differ from it.

Usage: ``python tools/lock.py constraints.txt``
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

from peftlab.env import normalise_name

#: installer tooling and the kit itself: never pinned
SKIP = {"pip", "setuptools", "wheel", "peftlab"}

HEADER = """\
# The tested environment: the exact versions the solution notebooks were executed and `make test` passed with.
# `make setup` installs through it (pip -c), so every machine tests the same libraries; pyproject.toml keeps
# the ranges for installs elsewhere. Refresh: `make lock` (resolves the ranges afresh; PINS="pkg==x.y" holds
# one back), then `make setup && make execute && make test` and commit the notebooks with this file.
# Written by tools/lock.py on Python {python} ({machine}).
"""


def public_version(version: str) -> str:
    """The version without its local label (``2.13.0+cpu`` → ``2.13.0``): a CPU wheel and a CUDA wheel of
    the same release both satisfy the pin."""
    return version.split("+", 1)[0]


def installed() -> dict[str, str]:
    """``{normalised name: public version}`` of every distribution the interpreter sees."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalise_name(name) not in SKIP:
            found[normalise_name(name)] = public_version(dist.version)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    pins = installed()
    text = HEADER.format(python=platform.python_version(), machine=platform.machine())
    text += "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    Path(argv[0]).write_text(text, encoding="utf-8")
    print(f"{argv[0]}: {len(pins)} pins (transformers {pins.get('transformers')}, peft {pins.get('peft')}, "
          f"torch {pins.get('torch')})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
