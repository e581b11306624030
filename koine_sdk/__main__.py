"""``python -m koine_sdk``: a tour of the SDK against a gateway.

Uses ``KOINE_BASE_URL`` / ``KOINE_AUTH_KEY`` when set; otherwise starts the embedded local
gateway (needs the ``testing`` extra) so the tour runs offline. ``--help`` says so and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Generator, Sequence

from pydantic import BaseModel

from . import KoineConfig, KoineError, create_koine_sync


class Ingredient(BaseModel):
    name: str
    grams: float


class Recipe(BaseModel):
    title: str
    servings: int
    ingredients: list[Ingredient]


@contextlib.contextmanager
def _gateway() -> Generator[KoineConfig]:
    if os.environ.get("KOINE_BASE_URL"):
        config = KoineConfig.from_env()
        print(f"Gateway: {config.base_url} (from KOINE_BASE_URL)")
        yield config
        return
    try:
        from .testing import LocalGateway
    except ImportError:
        sys.exit(
            "No KOINE_BASE_URL is set and the local gateway is not installed:\n"
            '  pip install "koine-sdk[testing]"   (or set KOINE_BASE_URL and KOINE_AUTH_KEY)'
        )
    with LocalGateway(chunk_delay=0.02) as gateway:
        print(f"Gateway: local gateway at {gateway.base_url} (set KOINE_BASE_URL for a real one)")
        yield KoineConfig(base_url=gateway.base_url, auth_key=gateway.auth_key)


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m koine_sdk",
        description=(
            "A tour of koine-sdk: generate_text, a streamed answer continuing the session, and "
            "a Pydantic object filling in as its JSON streams. It runs on the gateway named by "
            "KOINE_BASE_URL and KOINE_AUTH_KEY (and KOINE_TIMEOUT, KOINE_MODEL) when set, else "
            "on the embedded local gateway (an offline echo model; the 'testing' extra)."
        ),
        epilog="The local gateway on its own: koine-gateway --help.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour (``argv`` defaults to ``sys.argv[1:]``; it takes no options besides
    ``--help``); returns the exit status."""
    _parser().parse_args(argv)
    with _gateway() as config, create_koine_sync(config) as koine:
        try:
            health = koine.health()
            print(f"Health: {health.status}\n")

            print("1. generate_text")
            first = koine.generate_text(prompt="My name is Ada.")
            print(f"   {first.text}  [{first.usage.total_tokens} tokens]\n")

            print("2. stream_text, continuing the conversation")
            print("   ", end="")
            with koine.stream_text(
                prompt="What is my name?", session_id=first.session_id
            ) as stream:
                for chunk in stream.text_stream:
                    print(chunk, end="", flush=True)
                print(f"  [{stream.usage().total_tokens} tokens]\n")

            print("3. stream_object: a Recipe filling in")
            with koine.stream_object(prompt="A pancake recipe", schema=Recipe) as stream:
                for partial in stream.partial_object_stream:
                    print(f"   {partial!r}")
                recipe = stream.object()
            print(f"   final: {recipe!r}\n")
        except KoineError as exc:
            from .cli._common import describe  # the hint only when the message lacks it

            print(f"\nKoineError {describe(exc)}", file=sys.stderr)
            return 1
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
