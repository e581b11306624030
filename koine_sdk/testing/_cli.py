"""``koine-gateway``: run the local (test/offline) Koine gateway until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

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
    parser.add_argument("--auth-key", help="bearer key (CLAUDE_CODE_GATEWAY_API_KEY, else random)")
    parser.add_argument("--chunk-delay", type=float, help="seconds before every streamed piece")
    parser.add_argument("--first-byte-delay", type=float, help="seconds before response headers")
    parser.add_argument("--max-streaming", type=int, help="concurrent streams (3)")
    parser.add_argument("--max-nonstreaming", type=int, help="concurrent non-streaming (5)")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "koine-gateway") -> int:
    """Entry point of ``koine-gateway``; returns the exit status."""
    args = _parser(prog).parse_args(argv)
    key_given = bool(args.auth_key or os.environ.get("CLAUDE_CODE_GATEWAY_API_KEY"))
    try:
        gateway = LocalGateway.from_env(
            host=args.host,
            port=args.port,
            auth_key=args.auth_key,
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
            print(f"koine-gateway: cannot listen on {args.host}: {exc}", file=sys.stderr)
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
