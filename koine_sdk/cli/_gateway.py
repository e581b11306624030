"""``koine gateway`` and ``koine-gateway``: the local gateway, or one line saying what to
install when the ``testing`` extra is missing."""

from __future__ import annotations

import sys
from collections.abc import Sequence

_MISSING = (
    "{prog}: the local gateway needs the 'testing' extra: "
    "pip install 'koine-sdk[testing]' (missing: {name})"
)


def main(argv: Sequence[str] | None = None, *, prog: str = "koine-gateway") -> int:
    """Run the local gateway until Ctrl-C; returns the exit status."""
    try:
        from koine_sdk.testing._cli import main as gateway_main
    except ModuleNotFoundError as exc:
        print(_MISSING.format(prog=prog, name=exc.name), file=sys.stderr)
        return 1
    return gateway_main(argv, prog=prog)


def console() -> int:
    """The ``koine-gateway`` script."""
    return main()
