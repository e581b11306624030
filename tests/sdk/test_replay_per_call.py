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


def test_record_false_replays_but_writes_nothing(tmp_path: Path) -> None:
    """``record=False`` is the explicit "the caller records this answer" (what ``extract``
    passes): no ambient flag, the client's mode still decides whether to replay."""
    from koine_sdk.ledger import Ledger

    ledger = tmp_path / "l.sqlite3"
    with LocalGateway() as gw:
        posts = lambda: sum(r.method == "POST" for r in gw.requests)  # noqa: E731
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="replay", ledger=ledger
        ) as koine:
            live = koine.generate_text(prompt="unrecorded", record=False)
            assert posts() == 1 and live.source == "live"
            again = koine.generate_text(prompt="unrecorded", record=False)
            assert posts() == 2 and again.source == "live"  # nothing was written to replay
            koine.generate_text(prompt="kept")
            assert posts() == 3
            replayed = koine.generate_text(prompt="kept", record=False)
            assert posts() == 3 and replayed.source == "replay"
            with koine.stream_text(prompt="streamed", record=False) as s:
                s.text()
        with Ledger(ledger) as book:
            assert list(book.rows()["prompt"]) == ["kept"]


def test_record_must_be_a_bool(tmp_path: Path) -> None:
    import pytest

    from koine_sdk import KoineError

    with LocalGateway() as gw:
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
            with pytest.raises(KoineError) as caught:
                koine.generate_text(prompt="x", record="no")  # type: ignore[arg-type]
            assert caught.value.code == "INVALID_ARGUMENT"
            assert not any(r.method == "POST" for r in gw.requests)
