"""The local gateway in its own process, for the benchmarks.

Started by ``run.py`` as ``python benchmarks/_gateway.py [options]``. It prints one JSON line
``{"base_url": ..., "auth_key": ...}`` once it accepts requests, then reads commands from stdin,
one JSON object a line, and answers each with one JSON line:

* ``{"op": "script_text", "chunks": [...], "times": N}`` queues N copies of a scripted reply;
* ``{"op": "configure", "changes": {...}}`` changes settings (``LocalGateway.configure``);
* ``{"op": "reset"}`` clears queued replies, recorded requests and counters;
* ``{"op": "stats"}`` answers ``{"peak": ..., "rejected": ..., "requests": ...}``.

It stops when stdin closes (so it never outlives the benchmark run).

Why not the ``koine-gateway`` console script: it exposes neither ``events_per_chunk`` nor
scripted replies, and the magic benchmark needs a scripted Markdown answer.
"""

from __future__ import annotations

import argparse
import json
import sys

from koine_sdk.testing import LocalGateway


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-streaming", type=int, default=3)
    parser.add_argument("--max-nonstreaming", type=int, default=5)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    parser.add_argument("--events-per-chunk", type=int, default=1)
    args = parser.parse_args()
    gw = LocalGateway(
        max_streaming=args.max_streaming,
        max_nonstreaming=args.max_nonstreaming,
        chunk_delay=args.chunk_delay,
        first_byte_delay=args.first_byte_delay,
        events_per_chunk=args.events_per_chunk,
        strict_sessions=False,
    )
    gw.start()
    print(json.dumps({"base_url": gw.base_url, "auth_key": gw.auth_key}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            op = cmd.get("op")
            answer: dict[str, object] = {"ok": True}
            if op == "script_text":
                for _ in range(int(cmd.get("times", 1))):
                    gw.script_text(cmd["chunks"])
            elif op == "configure":
                gw.configure(**cmd["changes"])
            elif op == "reset":
                gw.reset()
            elif op == "stats":
                answer.update(peak=gw.peak, rejected=gw.rejected, requests=len(gw.requests))
            else:
                answer = {"ok": False, "error": f"unknown op {op!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
