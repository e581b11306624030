"""``koine``: the Koine SDK from the shell.

``koine ask``, ``koine extract|classify|generate``, ``koine ledger``, ``koine health`` and
``koine gateway``. Only the standard library is imported to parse the command line (argparse:
no dependency, and ``koine --help`` starts as fast as Python does); each subcommand's module
imports what it needs when it runs. Layout: ``_parser`` (the options), ``_common`` (config,
errors, exit codes), ``_ask``, ``_schema`` (``--schema``), ``_tables`` (CSV/JSONL/Parquet),
``_verbs`` (extract/classify/generate), ``_ledger``, ``_health``, ``_gateway``.

Exit codes: 0 ok, 1 a ``KoineError`` (message and hint on stderr), 2 bad usage or input,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ._common import EXIT_INTERRUPTED, run_guarded
from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``koine``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gateway"]:  # every option after it is koine-gateway's
        from ._gateway import main as gateway_main

        return gateway_main(argv[1:], prog="koine gateway")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: str | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    module_name, _, function = handler.partition(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return run_guarded(lambda: getattr(module, function)(args), parser.prog)
