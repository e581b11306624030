"""``koine health``: the gateway's ``/health``."""

from __future__ import annotations

import argparse

from ._common import EXIT_ERROR, EXIT_OK, config_from


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    from koine_sdk import create_koine_sync

    with create_koine_sync(config) as koine:
        status = koine.health()
    if args.json:
        print(status.model_dump_json())
    else:
        print(f"{config.base_url}: {status.status} (claude cli: {status.claude_cli})")
    return EXIT_OK if status.status == "healthy" else EXIT_ERROR
