"""What every subcommand shares: the client configuration, errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from koine_sdk import KoineConfig, KoineError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage or input, found before anything is sent: one line on stderr, exit 2."""


def describe(exc: KoineError) -> str:
    """``CODE: message``, and the hint on a second line unless the message already says it."""
    text = f"{exc.code}: {exc.message}"
    hint = exc.hint
    if hint and hint.rsplit(": ", 1)[-1].lower() not in exc.message.lower():
        text += f"\nhint: {hint}"
    return text


def run_guarded(call: Callable[[], int], prog: str) -> int:
    """Run a subcommand, mapping errors and Ctrl-C to exit codes with one clear message."""
    from koine_sdk.errors import KoineError

    try:
        return call()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KoineError as exc:
        print(f"{prog}: {describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def config_from(args: argparse.Namespace) -> KoineConfig:
    """The client configuration: ``--base-url``/``--auth-key-file`` over ``KOINE_BASE_URL``/
    ``KOINE_AUTH_KEY``. The key is never taken from the command line itself."""
    from koine_sdk import KoineConfig

    base_url: str | None = args.base_url or os.environ.get("KOINE_BASE_URL")
    key: str | None = os.environ.get("KOINE_AUTH_KEY")
    key_file: str | None = args.auth_key_file
    if key_file:
        try:
            key = Path(key_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the key file {key_file}: {exc.strerror}") from None
    if not base_url:
        raise UsageError("no gateway: set KOINE_BASE_URL or pass --base-url")
    if not key:
        raise UsageError("no key: set KOINE_AUTH_KEY or pass --auth-key-file")
    timeout = getattr(args, "timeout", None)
    return KoineConfig.from_env(base_url=base_url, auth_key=key, timeout=timeout)
