"""``replay=`` on one call overrides the client's mode for that call alone."""

from __future__ import annotations

from pathlib import Path

from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway


def test_a_call_can_turn_replay_off_or_on(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    with LocalGateway() as gw:
        posts = lambda: sum(r.method == "POST" for r in gw.requests)  # noqa: E731
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="replay", ledger=ledger
        ) as koine:
            first = koine.generate_text(prompt="hello")
            assert posts() == 1 and first.source == "live"
            again = koine.generate_text(prompt="hello")
            assert posts() == 1 and again.source == "replay"
            fresh = koine.generate_text(prompt="hello", replay="off")
            assert posts() == 2 and fresh.source == "live"
            with koine.stream_text(prompt="hello", replay="off") as s:
                s.text()
            assert posts() == 3
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key, ledger=ledger) as plain:
            replayed = plain.generate_text(prompt="hello", replay="strict")
            assert replayed.source == "replay" and posts() == 3
