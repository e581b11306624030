"""``koine-gateway``: run the local (test/offline) Koine gateway until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._server import LocalGateway

__all__ = ["main"]


def _parser(prog: str = "koine-gateway") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "A local Koine gateway for tests and offline work (not a production gateway): the "
            "real wire protocol with a deterministic echo model. Also configured by the real "
            "gateway's variables: CLAUDE_CODE_GATEWAY_API_KEY, GATEWAY_PORT (or PORT), "
            "KOINE_MAX_STREAMING_CONCURRENT, KOINE_MAX_NONSTREAMING_CONCURRENT, "
            "KOINE_ALLOWED_TOOLS, KOINE_DISALLOWED_TOOLS (JSON arrays). Options win."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (GATEWAY_PORT, PORT, else 3100)")
    parser.add_argument(
        "--auth-key-file",
        metavar="PATH",
        help="read the bearer key from this file (else CLAUDE_CODE_GATEWAY_API_KEY, else random)",
    )
    parser.add_argument(
        "--auth-key",
        help="bearer key on the command line: avoid it, other users of the machine can read it "
        "in the process list; use CLAUDE_CODE_GATEWAY_API_KEY or --auth-key-file",
    )
    parser.add_argument("--chunk-delay", type=float, help="seconds before every streamed piece")
    parser.add_argument("--first-byte-delay", type=float, help="seconds before response headers")
    parser.add_argument("--max-streaming", type=int, help="concurrent streams (3)")
    parser.add_argument("--max-nonstreaming", type=int, help="concurrent non-streaming (5)")
    return parser


def _server_class() -> type[LocalGateway] | None:
    """The server, or ``None`` (after one line on stderr) without the ``testing`` extra."""
    try:
        from ._server import LocalGateway
    except ModuleNotFoundError as exc:
        print(
            f"koine-gateway: the local gateway needs the 'testing' extra ({exc.name} is missing): "
            "pip install 'koine-sdk[testing]'",
            file=sys.stderr,
        )
        return None
    return LocalGateway


def main(argv: Sequence[str] | None = None, *, prog: str = "koine-gateway") -> int:
    """Entry point of ``koine-gateway``; returns the exit status."""
    args = _parser(prog).parse_args(argv)
    server = _server_class()
    if server is None:
        return 2
    auth_key: str | None = args.auth_key
    if auth_key:
        print(
            "koine-gateway: warning: --auth-key is visible to other users in the process list; "
            "prefer CLAUDE_CODE_GATEWAY_API_KEY or --auth-key-file",
            file=sys.stderr,
        )
    if args.auth_key_file:
        try:
            with open(args.auth_key_file, encoding="utf-8") as f:
                auth_key = f.read().strip()
        except OSError as exc:
            print(f"koine-gateway: cannot read --auth-key-file: {exc}", file=sys.stderr)
            return 2
        if not auth_key:
            print(f"koine-gateway: {args.auth_key_file} holds no key", file=sys.stderr)
            return 2
    key_given = bool(auth_key or os.environ.get("CLAUDE_CODE_GATEWAY_API_KEY"))
    try:
        gateway = server.from_env(
            host=args.host,
            port=args.port,
            auth_key=auth_key,
            chunk_delay=args.chunk_delay,
            first_byte_delay=args.first_byte_delay,
            max_streaming=args.max_streaming,
            max_nonstreaming=args.max_nonstreaming,
        )
    except ValueError as exc:
        print(f"koine-gateway: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            gateway.start()
        except OSError as exc:
            port = gateway._requested_port  # pyright: ignore[reportPrivateUsage]
            where = f"{args.host}:{port}"
            busy = (
                f"port {port} is in use (stop what holds it, or pass --port)"
                if exc.errno == errno.EADDRINUSE
                else str(exc)
            )
            print(f"koine-gateway: cannot listen on {where}: {busy}", file=sys.stderr)
            return 1
        print(
            f"Koine local gateway (test/offline, echo model) listening on {gateway.base_url}",
            flush=True,
        )
        if not key_given:
            print(f"Generated auth key: {gateway.auth_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            if not gateway.running:
                print("koine-gateway: the server stopped unexpectedly", file=sys.stderr)
                return 1
        gateway.stop()
        print("Stopped.", flush=True)
        return 0
    finally:
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
