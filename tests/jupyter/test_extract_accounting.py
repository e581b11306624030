"""Answers that a replaying client takes from its ledger are not booked as paid: the rows say
``answer_from="ledger"`` with 0 tokens, ``df.attrs`` counts no tokens, and the answer is not
recorded a second time (issue 22: 4 calls paid, history showed 12 requests and 144 tokens)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from koine_jupyter import extract
from koine_sdk import create_koine_sync
from koine_sdk.ledger import Ledger
from koine_sdk.testing import LocalGateway

PROMPT = "Extract the company from: {text}"
TEXTS = ["ACME, 1950", "Globex, 1989", "Initech, 1990", "Umbrella, 1968"]


class Company(BaseModel):
    name: str
    founded: int | None = None


def _posts(gw: LocalGateway) -> int:
    return sum(r.method == "POST" for r in gw.requests)


@pytest.mark.parametrize("extract_ledger", ["false", "other-file"])
def test_replayed_answers_are_not_booked_as_paid(tmp_path: Path, extract_ledger: str) -> None:
    recorded = tmp_path / "recorded.sqlite3"
    with LocalGateway() as gw:
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="record", ledger=recorded
        ) as koine:
            for text in TEXTS:
                koine.generate_object(prompt=PROMPT.format(text=text), schema=Company)
        paid = _posts(gw)
        assert paid == len(TEXTS)
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="replay", ledger=recorded
        ) as koine:
            options: dict[str, object] = {"ledger": False}
            if extract_ledger == "cache-off":
                options = {"ledger": False, "cache": False}
            elif extract_ledger == "other-file":
                options = {"ledger": tmp_path / "extract.sqlite3"}
            df = extract(TEXTS, Company, PROMPT, client=koine, progress=False, **options)  # type: ignore[arg-type]
        assert _posts(gw) == paid  # nothing sent: the client answered from its ledger
    assert list(df["answer_from"]) == ["ledger"] * len(TEXTS)
    assert int(df["input_tokens"].sum()) == 0 and int(df["output_tokens"].sum()) == 0
    stats = df.attrs["koine"]
    assert stats["input_tokens"] == 0 and stats["output_tokens"] == 0
    assert stats["ledger_hits"] == len(TEXTS)
    with Ledger(recorded) as book:
        history = book.rows()
    assert len(history) == len(TEXTS)  # one record per request, not one more per replay
    if extract_ledger == "other-file":
        with Ledger(tmp_path / "extract.sqlite3") as book:
            assert len(book.rows()) == 0  # nothing paid, nothing booked there


def test_cache_false_really_asks_the_gateway(tmp_path: Path) -> None:
    """``cache=False`` is honoured even with a replaying client: every row is sent and paid."""
    recorded = tmp_path / "recorded.sqlite3"
    with LocalGateway() as gw:
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="record", ledger=recorded
        ) as koine:
            for text in TEXTS:
                koine.generate_object(prompt=PROMPT.format(text=text), schema=Company)
        paid = _posts(gw)
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="replay", ledger=recorded
        ) as koine:
            df = extract(TEXTS, Company, PROMPT, client=koine, progress=False, cache=False)
        assert _posts(gw) == paid + len(TEXTS)
    assert list(df["answer_from"]) == ["request"] * len(TEXTS)
    assert int(df["input_tokens"].sum()) > 0


def test_a_proxy_403_on_one_row_is_that_rows_error(tmp_path: Path) -> None:
    """An HTML 403 (a proxy or firewall, not the gateway's own JSON answer) is not about the
    key: the row fails, the run goes on, every other row is answered."""
    from koine_sdk.testing import Fault

    texts = [f"Company {i}, {1950 + i}" for i in range(12)]
    with LocalGateway() as gw:
        gw.enqueue(Fault.http_error(403, "html"))
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
            df = extract(texts, Company, PROMPT, client=koine, ledger=False, progress=False)
    errors = df["error"].dropna().tolist()
    assert len(errors) == 1 and errors[0].startswith("HTTP_ERROR"), errors
    assert df["name"].notna().sum() == len(texts) - 1


def test_a_recording_client_and_extracts_ledger_give_one_record_per_request(
    tmp_path: Path,
) -> None:
    """The client is told explicitly (``record=False``) that extract records the answer: its
    own ledger gets nothing, extract's gets one record per request."""
    client_ledger, extract_ledger = tmp_path / "client.sqlite3", tmp_path / "extract.sqlite3"
    with LocalGateway() as gw:
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="replay", ledger=client_ledger
        ) as koine:
            df = extract(
                TEXTS, Company, PROMPT, client=koine, progress=False, ledger=extract_ledger
            )
        assert _posts(gw) == len(TEXTS)
    assert list(df["answer_from"]) == ["request"] * len(TEXTS)
    with Ledger(extract_ledger) as book:
        assert len(book.rows()) == len(TEXTS)
    with Ledger(client_ledger) as book:
        assert len(book.rows()) == 0
