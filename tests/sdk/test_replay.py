"""Record / replay (``replay=`` of the clients): answers written to the ledger as they finish and
given back, offline, for identical requests. Real HTTP to the local gateway; the gateway's
request log proves what was (not) sent."""

from __future__ import annotations

import pickle
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from koine_sdk import (
    KoineClient,
    KoineError,
    KoineUsage,
    SyncKoineClient,
    create_koine,
    create_koine_sync,
)
from koine_sdk.ledger import Ledger, LedgerWarning, RequestShape, open_ledger, request_key

KINDS = ("generate_text", "stream_text", "generate_object", "stream_object")
PATHS = {
    "generate_text": "/generate-text",
    "stream_text": "/stream",
    "generate_object": "/generate-object",
    "stream_object": "/stream-object",
}
DEAD_URL = "http://127.0.0.1:9"  # nothing listens on the discard port: a request would fail


class Recipe(BaseModel):
    title: str
    servings: int
    steps: list[str]


class Strict(BaseModel):
    title: str
    servings: int
    rating: float  # a field the recordings of Recipe do not have


@dataclass
class Answer:
    value: Any  # the text, or the object
    usage: KoineUsage | None
    session_id: str | None
    source: str
    ledger_key: str | None
    extra: dict[str, Any]


async def ask_async(
    client: KoineClient, kind: str, prompt: str, schema: type[Any] = Recipe, **kw: Any
) -> Answer:
    if kind == "generate_text":
        r = await client.generate_text(prompt=prompt, **kw)
        return Answer(r.text, r.usage, r.session_id, r.source, r.ledger_key, {})
    if kind == "generate_object":
        o = await client.generate_object(prompt=prompt, schema=schema, **kw)
        extra = {"raw_text": o.raw_text, "attempts": o.attempts}
        return Answer(o.object, o.usage, o.session_id, o.source, o.ledger_key, extra)
    if kind == "stream_text":
        async with client.stream_text(prompt=prompt, **kw) as s:
            chunks = [c async for c in s.text_stream]
            text = await s.text()
            assert "".join(chunks) == text == s.received_text
            extra = {"provisional": s.provisional_session_id}
            return Answer(
                text, await s.usage(), await s.session_id(), s.source, s.ledger_key, extra
            )
    async with client.stream_object(prompt=prompt, schema=schema, **kw) as so:
        partials = [p async for p in so.partial_object_stream]
        obj = await so.object()
        assert partials and partials[-1].model_dump() == obj.model_dump()
        extra = {"raw_text": so.raw_text}
        return Answer(obj, await so.usage(), await so.session_id(), so.source, so.ledger_key, extra)


def ask_sync(
    client: SyncKoineClient, kind: str, prompt: str, schema: type[Any] = Recipe, **kw: Any
) -> Answer:
    if kind == "generate_text":
        r = client.generate_text(prompt=prompt, **kw)
        return Answer(r.text, r.usage, r.session_id, r.source, r.ledger_key, {})
    if kind == "generate_object":
        o = client.generate_object(prompt=prompt, schema=schema, **kw)
        extra = {"raw_text": o.raw_text, "attempts": o.attempts}
        return Answer(o.object, o.usage, o.session_id, o.source, o.ledger_key, extra)
    if kind == "stream_text":
        with client.stream_text(prompt=prompt, **kw) as s:
            text = "".join(s.text_stream)
            assert text == s.text() == s.received_text
            extra = {"provisional": s.provisional_session_id}
            return Answer(text, s.usage(), s.session_id(), s.source, s.ledger_key, extra)
    with client.stream_object(prompt=prompt, schema=schema, **kw) as so:
        partials = list(so.partial_object_stream)
        obj = so.object()
        assert partials and partials[-1].model_dump() == obj.model_dump()
        return Answer(obj, so.usage(), so.session_id(), so.source, so.ledger_key, {})


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT endpoint, prompt, status, error_code, input_tokens FROM requests ORDER BY id"
        ).fetchall()


# -- the four calls: record, then replay and strict replay ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_async_calls_record_then_replay_offline(
    kind: str, koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "rec.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    async with create_koine(**gw, replay="record", ledger=ledger) as koine:
        live = await ask_async(koine, kind, "A pancake recipe [[chunks=5]]")
    assert live.source == "live" and live.ledger_key is not None
    assert len(koine_gateway.requests) == 1
    for mode in ("replay", "strict"):
        # the gateway is out of reach: an answer can only come from the ledger
        async with create_koine(base_url=DEAD_URL, auth_key="k", replay=mode, ledger=ledger) as k:
            again = await ask_async(k, kind, "A pancake recipe [[chunks=5]]")
        assert again.source == "replay", mode
        assert (again.value, again.usage, again.session_id) == (
            live.value,
            live.usage,
            live.session_id,
        )
        assert again.ledger_key == live.ledger_key
        assert again.extra == live.extra or kind == "stream_text"
    assert len(koine_gateway.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_sync_calls_record_then_replay_offline(
    kind: str, koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "rec.sqlite3"
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, replay="record",
        ledger=ledger,
    ) as koine:  # fmt: skip
        live = ask_sync(koine, kind, "Soup for two")
    with create_koine_sync(base_url=DEAD_URL, auth_key="k", replay="strict", ledger=ledger) as k:
        again = ask_sync(k, kind, "Soup for two")
    assert again.source == "replay" and again.ledger_key == live.ledger_key
    assert (again.value, again.usage, again.session_id) == (
        live.value,
        live.usage,
        live.session_id,
    )
    assert len(koine_gateway.requests) == 1


def test_a_replayed_stream_behaves_like_a_live_one(koine_gateway: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        with koine.stream_text(prompt="Tell me [[chunks=8]]") as live:
            live_text, usage, session = live.text(), live.usage(), live.session_id()
    with create_koine_sync(replay="strict", ledger=ledger) as koine:  # no gateway configured
        with koine.stream_text(prompt="Tell me [[chunks=8]]") as s:
            assert s.source == "replay"
            chunks = list(s.text_stream)
            assert s.provisional_session_id == session
            assert chunks == [live_text]  # one chunk
            assert s.finished and s.received_text == live_text
            assert s.usage() == usage and s.session_id() == session and s.warnings == []
        with koine.stream_text(prompt="Tell me [[chunks=8]]") as s2:
            assert s2.text() == live_text  # without iterating first
        with pytest.raises(KoineError) as info:
            koine.health()  # nothing to ask: the client has no gateway
        assert info.value.code == "INVALID_CONFIG"
    assert len(koine_gateway.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_strict_miss_names_the_prompt_and_sends_nothing(
    kind: str, koine_gateway: Any, tmp_path: Path
) -> None:
    long_prompt = "Summarise the quarterly report\nfor the board " + "in detail " * 30
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, replay="strict",
        ledger=tmp_path / "empty.sqlite3",
    ) as koine:  # fmt: skip
        with pytest.raises(KoineError) as info:
            await ask_async(koine, kind, long_prompt)
    err = info.value
    assert err.code == "REPLAY_MISS"
    # repr()-quoted: the line break shows as \n, so prompts differing by whitespace look different
    assert "'Summarise the quarterly report\\nfor the board in detail" in err.message
    assert len(err.message) < 300 and "…" in err.message  # the prompt is cut, on one line
    assert PATHS[kind] in err.message and "nothing was sent" in err.message
    assert err.hint is not None and "record" in err.hint
    assert koine_gateway.requests == []


def test_strict_miss_says_what_differs_from_a_recording_of_the_same_prompt(
    koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        koine.generate_text(prompt="Hello", model="haiku")
    with create_koine_sync(**gw, replay="strict", ledger=ledger) as koine:
        with pytest.raises(KoineError) as info:
            koine.generate_text(prompt="Hello", model="sonnet")
    assert info.value.code == "REPLAY_MISS"
    assert "recorded with another model" in info.value.message


async def test_replay_sends_what_is_missing_and_records_it(
    koine_gateway: Any, tmp_path: Path
) -> None:
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    async with create_koine(**gw, replay="replay", ledger=tmp_path / "l.sqlite3") as koine:
        first = await koine.generate_text(prompt="Once")
        second = await koine.generate_text(prompt="Once")
        other = await koine.generate_text(prompt="Twice")
    assert (first.source, second.source, other.source) == ("live", "replay", "live")
    assert second.text == first.text and second.ledger_key == first.ledger_key
    assert len(koine_gateway.requests) == 2


async def test_streaming_and_non_streaming_twins_answer_each_other(
    koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    async with create_koine(**gw, replay="record", ledger=ledger) as koine:
        streamed = await ask_async(koine, "stream_text", "Twin text")
        generated = await ask_async(koine, "generate_object", "Twin object")
    async with create_koine(replay="strict", ledger=ledger) as koine:
        text = await ask_async(koine, "generate_text", "Twin text")
        obj = await ask_async(koine, "stream_object", "Twin object")
    assert text.value == streamed.value and text.ledger_key == streamed.ledger_key
    assert obj.value == generated.value and obj.source == "replay"
    # the recording used is the twin's (its own endpoint's key would be another)
    own = request_key("/generate-text", {"prompt": "Twin text"})
    assert text.ledger_key != own


# -- sessions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["async", "sync"])
async def test_a_recorded_conversation_replays_turn_by_turn(
    flavor: str, koine_gateway: Any, tmp_path: Path
) -> None:
    """Turn 2's key holds turn 1's session id; replay returns that id, so the chain replays."""
    ledger = tmp_path / "chat.sqlite3"

    async def converse(mode: str, url: str, key: str) -> list[Answer]:
        turns: list[Answer] = []
        session: str | None = None
        prompts = ["My name is Ada", "What is my name? [[history]]", "And again [[history]]"]
        kinds = ["stream_text", "generate_text", "stream_text"]
        if flavor == "async":
            async with create_koine(base_url=url, auth_key=key, replay=mode, ledger=ledger) as k:
                for prompt, kind in zip(prompts, kinds, strict=True):
                    turns.append(await ask_async(k, kind, prompt, session_id=session))
                    session = turns[-1].session_id
        else:
            with create_koine_sync(base_url=url, auth_key=key, replay=mode, ledger=ledger) as k:
                for prompt, kind in zip(prompts, kinds, strict=True):
                    turns.append(ask_sync(k, kind, prompt, session_id=session))
                    session = turns[-1].session_id
        return turns

    live = await converse("record", koine_gateway.base_url, koine_gateway.auth_key)
    assert "Ada" in str(live[1].value)  # the gateway knew the conversation
    replayed = await converse("strict", DEAD_URL, "k")
    assert [t.value for t in replayed] == [t.value for t in live]
    assert [t.session_id for t in replayed] == [t.session_id for t in live]
    assert {t.source for t in replayed} == {"replay"}
    assert len(koine_gateway.requests) == 3


# -- failures are never replayed as answers -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "prompt"),
    [
        ("stream_text", "cut [[chunks=4]] [[drop-after=2]]"),  # no done
        ("stream_text", "cut [[cut-end]]"),  # stops inside its result event
        ("stream_text", "fails [[chunks=4]] [[fail-after=2]]"),  # error event, then done
        ("stream_text", "is an error [[is-error]]"),  # result, then error: paid for
        ("generate_text", "fails [[fail]]"),  # 500
        ("generate_object", "[[invalid-object]]"),  # VALIDATION_ERROR: paid for
        ("stream_object", "[[invalid-object]]"),
        ("stream_object", "[[no-object]]"),
        ("stream_object", "cut [[drop-after=3]]"),
    ],
)
def test_failures_are_never_recorded_as_answers(
    kind: str, prompt: str, koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        with pytest.raises(KoineError) as live:
            ask_sync(koine, kind, prompt)
    rows = _rows(ledger)
    assert all(status == "failed" for _, _, status, _, _ in rows), rows
    # a failure is written only when tokens were paid for it, with those tokens
    assert all(tokens > 0 for *_, tokens in rows)
    if live.value.usage is not None:
        assert [code for _, _, _, code, _ in rows] == [live.value.code]
    with create_koine_sync(**gw, replay="strict", ledger=ledger) as koine:
        with pytest.raises(KoineError) as info:
            ask_sync(koine, kind, prompt)
    assert info.value.code == "REPLAY_MISS"
    # replay mode: the failure is not given back, the request goes out again
    n = len(koine_gateway.requests)
    with create_koine_sync(**gw, replay="replay", ledger=ledger) as koine:
        with pytest.raises(KoineError):
            ask_sync(koine, kind, prompt)
    assert len(koine_gateway.requests) == n + 1


def test_a_stream_left_early_is_not_recorded(koine_gateway: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        with koine.stream_text(prompt="long [[chunks=20]] [[slow=0.01]]") as s:
            next(iter(s.text_stream))
        with koine.stream_text(prompt="flat [[chunks=3]]", keep_text=False) as s:
            assert len("".join(s.text_stream)) > 0  # complete, but nothing was kept to record
    assert _rows(ledger) == []


def test_a_repaired_object_replays_with_its_attempts_and_usage(
    koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        live = koine.generate_object(prompt="[[invalid-object=1]]", schema=Recipe, repairs=2)
    assert live.attempts == 2
    with create_koine_sync(replay="strict", ledger=ledger) as koine:
        again = koine.generate_object(prompt="[[invalid-object=1]]", schema=Recipe, repairs=2)
    assert (again.object, again.usage, again.attempts) == (live.object, live.usage, 2)


@pytest.mark.parametrize("kind", ["generate_object", "stream_object"])
def test_a_recording_that_no_longer_fits_the_schema_is_not_used(
    kind: str, koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        ask_sync(koine, kind, "A dish", schema=Recipe)
    # the same request (same wire schema) after the model's validators changed: simulated by
    # recording under Strict's key an object that only fits Recipe
    book = Ledger(ledger)
    recorded = book._query("SELECT answer, raw_text, session_id FROM requests")[0]
    body = {"prompt": "A dish", "schema": _wire_schema(Strict)}
    book.record(
        RequestShape.of(PATHS[kind], body), "A dish", status="ok", answer=recorded[0],
        raw_text=recorded[1], session_id=recorded[2], input_tokens=1, output_tokens=1,
    )  # fmt: skip
    book.close()
    with create_koine_sync(**gw, replay="strict", ledger=ledger) as koine:
        with pytest.raises(KoineError) as info:
            ask_sync(koine, kind, "A dish", schema=Strict)
    assert info.value.code == "REPLAY_MISS" and "no longer fits the schema" in info.value.message
    n = len(koine_gateway.requests)
    with create_koine_sync(**gw, replay="replay", ledger=ledger) as koine:
        fresh = ask_sync(koine, kind, "A dish", schema=Strict)
    assert fresh.source == "live" and len(koine_gateway.requests) == n + 1


def _wire_schema(schema: type[Any]) -> dict[str, Any]:
    from koine_sdk import json_schema

    return json_schema(schema)


# -- configuration --------------------------------------------------------------------------------


def test_the_mode_comes_from_koine_replay(
    koine_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    monkeypatch.setenv("KOINE_REPLAY", "on")
    with create_koine_sync(**gw) as koine:
        assert koine.replay == "replay" and "replay='replay'" in repr(koine)
        assert koine.ledger is not None and koine.ledger.path == tmp_path / "ledger.sqlite3"
        koine.generate_text(prompt="From the environment")
        assert koine.generate_text(prompt="From the environment").source == "replay"
    with create_koine_sync(**gw, replay="off") as koine:  # the argument wins
        assert koine.replay == "off" and koine.ledger is None
        assert koine.generate_text(prompt="From the environment").source == "live"
    monkeypatch.setenv("KOINE_REPLAY", "sometimes")
    with pytest.raises(KoineError) as info:
        create_koine_sync(**gw)
    assert info.value.code == "INVALID_CONFIG" and "KOINE_REPLAY='sometimes'" in info.value.message
    monkeypatch.delenv("KOINE_REPLAY")
    with create_koine_sync(**gw) as koine:
        assert koine.replay == "off"


@pytest.mark.parametrize("bad", ["play", 1, True, "strict!"])
def test_a_bad_mode_is_invalid_config(bad: Any) -> None:
    with pytest.raises(KoineError) as info:
        create_koine_sync(base_url="http://localhost:1", auth_key="k", replay=bad)
    assert info.value.code == "INVALID_CONFIG" and "replay" in info.value.message


@pytest.mark.parametrize("mode", ["record", "replay", "strict"])
def test_replay_with_the_ledger_turned_off_is_invalid_config(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOINE_LEDGER", "off")
    with pytest.raises(KoineError) as info:
        create_koine(base_url="http://localhost:1", auth_key="k", replay=mode)
    assert info.value.code == "INVALID_CONFIG"
    assert "KOINE_LEDGER" in info.value.message and mode in info.value.message
    # an explicit in-process ledger is a choice, not an accident
    koine = create_koine(base_url="http://localhost:1", auth_key="k", replay=mode, ledger=False)
    assert koine.ledger is not None and koine.ledger.in_memory


def test_a_ledger_that_cannot_be_opened_fails_at_creation(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ledger.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KoineError) as info:
        create_koine_sync(base_url="http://localhost:1", auth_key="k", replay="replay", ledger=bad)
    assert info.value.code == "LEDGER_ERROR"


def test_only_strict_replay_goes_without_a_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KOINE_BASE_URL", "KOINE_AUTH_KEY"):
        monkeypatch.delenv(name, raising=False)
    with create_koine_sync(replay="strict") as koine:
        assert koine.config.base_url == ""
    for mode in ("off", "record", "replay"):
        with pytest.raises(KoineError) as info:
            create_koine_sync(replay=mode)
        assert info.value.code == "INVALID_CONFIG" and "base_url" in info.value.message
    with pytest.raises(KoineError) as info:
        create_koine_sync(base_url="ftp://h", replay="strict")  # given settings are checked
    assert info.value.code == "INVALID_CONFIG"


def test_an_answer_is_kept_when_the_ledger_cannot_be_written(
    koine_gateway: Any, tmp_path: Path
) -> None:
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=tmp_path / "l.sqlite3") as koine:
        assert koine.ledger is not None
        koine.ledger.close()
        with pytest.warns(LedgerWarning, match="not recorded"):
            result = koine.generate_text(prompt="Still mine")
    assert result.text == "Echo: Still mine" and result.ledger_key is None


def test_a_pickled_client_keeps_its_mode_and_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    with create_koine_sync(
        base_url="http://localhost:1", auth_key="k", replay="strict", ledger=ledger
    ) as koine:
        with pickle.loads(pickle.dumps(koine)) as copy:
            assert copy.replay == "strict"
            assert copy.ledger is not None and copy.ledger.path == ledger


# -- extract and the SDK share keys ---------------------------------------------------------------


def test_extract_answers_replay_for_generate_object_and_back(
    koine_gateway: Any, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    from koine_jupyter import extract

    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw) as koine:
        df = extract(["a", "b"], Recipe, "Extract: {text}", client=koine, ledger=ledger)
    assert list(df["answer_from"]) == ["request", "request"]
    with create_koine_sync(replay="strict", ledger=ledger) as koine:
        replayed = koine.generate_object(prompt="Extract: a", schema=Recipe)
    assert replayed.source == "replay" and replayed.object.title == df["title"].iloc[0]
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        koine.generate_object(prompt="Extract: c", schema=Recipe)
    n = len(koine_gateway.requests)
    with create_koine_sync(**gw) as koine:
        df = extract(["a", "b", "c"], Recipe, "Extract: {text}", client=koine, ledger=ledger)
    assert list(df["answer_from"]) == ["ledger", "ledger", "ledger"]
    assert len(koine_gateway.requests) == n


def test_extract_with_a_recording_client_writes_each_answer_once(
    koine_gateway: Any, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    from koine_jupyter import extract

    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw, replay="record", ledger=ledger) as koine:
        extract(["a", "b"], Recipe, "Extract: {text}", client=koine, ledger=ledger)
        koine.generate_object(prompt="Extract: outside", schema=Recipe)  # the client's own
    rows = open_ledger(ledger).rows(limit=100)
    assert sorted(rows["prompt"]) == ["Extract: a", "Extract: b", "Extract: outside"]
    assert rows.set_index("prompt")["run_id"].notna().to_dict() == {
        "Extract: a": True,  # written by extract, with its run
        "Extract: b": True,
        "Extract: outside": False,  # written by the client
    }


def test_extract_in_strict_replay_fails_missing_rows_without_writing_them(
    koine_gateway: Any, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    from koine_jupyter import extract

    ledger = tmp_path / "l.sqlite3"
    gw = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with create_koine_sync(**gw) as koine:
        extract(["a"], Recipe, "Extract: {text}", client=koine, ledger=ledger)
    before = len(open_ledger(ledger).rows(limit=100))
    with create_koine_sync(**gw, replay="strict", ledger=ledger) as koine:
        df = extract(["a", "new"], Recipe, "Extract: {text}", client=koine, ledger=ledger)
    assert df["answer_from"].iloc[0] == "ledger"
    assert str(df["error"].iloc[1]).startswith("REPLAY_MISS")
    assert len(open_ledger(ledger).rows(limit=100)) == before  # a miss is not a request
