"""The claims of one run, on a real ledger file, without a gateway: what is claimed, what
waits, renewal while waiting, take-over when the other run is gone."""

from __future__ import annotations

import time
from pathlib import Path

from koine_jupyter.extraction._claiming import ClaimsOfRun
from koine_jupyter.extraction._state import Unit
from koine_sdk.ledger import Ledger, RequestShape

SHAPE = RequestShape.of("/generate-text", {"prompt": "x"})


def _units(*prompts: str) -> list[Unit]:
    return [Unit(p, SHAPE.key(p), [i]) for i, p in enumerate(prompts)]


def test_claims_stay_renewed_while_the_run_waits_for_others(tmp_path: Path) -> None:
    with Ledger(tmp_path / "c.sqlite3") as book:
        other = ClaimsOfRun(ttl=60)
        mine = ClaimsOfRun(ttl=1.2)  # renewed every 0.4 s, looked at every 0.2 s
        held = _units("theirs")
        assert other.take(book, held).send == held
        own = _units("a", "b")
        taken = mine.take(book, [*own, *_units("theirs")])
        assert taken.send == own and list(mine.waiting) == [held[0].key]
        deadline = time.monotonic() + 2.2  # nearly 2 lifetimes of a claim
        while time.monotonic() < deadline:
            if mine.due(time.monotonic()):
                assert mine.look(book).send == []  # still waiting: the other run lives
            time.sleep(0.05)
        owners = book.held([u.key for u in own])
        assert owners == {u.key: mine.owner for u in own}  # renewed, never expired


def test_a_key_whose_owner_is_gone_is_taken_over(tmp_path: Path) -> None:
    with Ledger(tmp_path / "c.sqlite3") as book:
        dead = ClaimsOfRun(ttl=0.2)
        dead.take(book, _units("orphan"))
        mine = ClaimsOfRun(ttl=30)
        assert mine.take(book, _units("orphan")).send == []
        time.sleep(0.3)  # the dead run's claim expires (it never renews)
        taken = mine.look(book)
        assert [u.prompt for u in taken.send] == ["orphan"] and not mine.waiting
        assert book.held([SHAPE.key("orphan")]) == {SHAPE.key("orphan"): mine.owner}


def test_an_answer_recorded_meanwhile_is_taken_not_asked(tmp_path: Path) -> None:
    with Ledger(tmp_path / "c.sqlite3") as book:
        other = ClaimsOfRun(ttl=30)
        other.take(book, _units("q"))
        mine = ClaimsOfRun(ttl=30)
        mine.take(book, _units("q"))
        book.record(SHAPE, "q", status="ok", answer="42")
        taken = mine.look(book)
        assert taken.send == [] and [r.answer for _, r in taken.answered] == ["42"]
        other.finished(SHAPE.key("q"))
        other.release(book)
        assert book.held([SHAPE.key("q")]) == {}
