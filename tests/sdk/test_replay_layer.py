"""Replay is a layer over the transport: a replayed call sends nothing through the HTTP transport,
a call that is not replayed sends exactly one request, and the ledger keeps what the gateway
returned (re-validated on replay by the same parser as a live answer).

The async tests watch the wire through the public seam ``http_client=`` (an httpx transport that
passes every request on to the real one and notes it); the sync ones through the local
gateway's own request log. Real HTTP to the local gateway throughout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, field_validator

from koine_sdk import KoineClient, KoineError, SyncKoineClient, create_koine, create_koine_sync
from koine_sdk.ledger import Ledger

KINDS = ("generate_text", "stream_text", "generate_object", "stream_object")
PATHS = {
    "generate_text": "/generate-text",
    "stream_text": "/stream",
    "generate_object": "/generate-object",
    "stream_object": "/stream-object",
}


class Recipe(BaseModel):
    title: str
    servings: int


class Shouted(BaseModel):
    """A validator that is not idempotent: validating its own output again would add a
    second ``!``. A replay that re-validated a stored *validated* object would show it."""

    title: str

    @field_validator("title")
    @classmethod
    def _shout(cls, value: str) -> str:
        return value + "!"


class Watch(httpx.AsyncBaseTransport):
    """Passes each request to the real transport and notes its path (and, for the JSON
    endpoints, the body the gateway answered with)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []
        self.bodies: list[Any] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self._inner.handle_async_request(request)
        if request.url.path.startswith("/generate-"):
            content = await response.aread()
            self.bodies.append(json.loads(content))
            return httpx.Response(response.status_code, headers=response.headers, content=content)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def ask(client: KoineClient, kind: str, prompt: str, **kw: Any) -> tuple[Any, str, Any]:
    """(answer, source, ledger_key) of one call of ``kind``, the stream read to its end."""
    if kind == "generate_text":
        r = await client.generate_text(prompt=prompt, **kw)
        return r.text, r.source, r.ledger_key
    if kind == "generate_object":
        o = await client.generate_object(prompt=prompt, schema=kw.pop("schema", Recipe), **kw)
        return o.object, o.source, o.ledger_key
    if kind == "stream_text":
        async with client.stream_text(prompt=prompt, **kw) as s:
            return await s.text(), s.source, s.ledger_key
    async with client.stream_object(prompt=prompt, schema=kw.pop("schema", Recipe), **kw) as so:
        return await so.object(), so.source, so.ledger_key


def ask_sync(client: SyncKoineClient, kind: str, prompt: str, **kw: Any) -> tuple[Any, str, Any]:
    if kind == "generate_text":
        r = client.generate_text(prompt=prompt, **kw)
        return r.text, r.source, r.ledger_key
    if kind == "generate_object":
        o = client.generate_object(prompt=prompt, schema=Recipe, **kw)
        return o.object, o.source, o.ledger_key
    if kind == "stream_text":
        with client.stream_text(prompt=prompt, **kw) as s:
            return s.text(), s.source, s.ledger_key
    with client.stream_object(prompt=prompt, schema=Recipe, **kw) as so:
        return so.object(), so.source, so.ledger_key


def rows(ledger: Path) -> int:
    with Ledger(ledger) as book:
        return len(book.rows(limit=1000))


@pytest.mark.parametrize("kind", KINDS)
async def test_only_calls_not_replayed_reach_the_http_transport(
    kind: str, koine_gateway: Any, tmp_path: Path
) -> None:
    ledger, path = tmp_path / "l.sqlite3", PATHS[kind]
    watch = Watch()
    async with httpx.AsyncClient(transport=watch) as http:
        client = create_koine(
            base_url=koine_gateway.base_url,
            auth_key=koine_gateway.auth_key,
            http_client=http,
            replay="replay",
            ledger=ledger,
        )
        async with client:
            live, source, key = await ask(client, kind, "A dish")
            assert (watch.paths, source) == ([path], "live") and key is not None
            again, source, same = await ask(client, kind, "A dish")
            assert (watch.paths, source, same, again) == ([path], "replay", key, live)
            # replay="off" for one call: sent although recorded, and nothing written
            _, source, none = await ask(client, kind, "A dish", replay="off")
            assert (watch.paths, source, none) == ([path] * 2, "live", None)
            assert rows(ledger) == 1
            # record=False: sent, not written (the caller writes it), so sent again next time
            for n in (3, 4):
                _, source, _ = await ask(client, kind, "Another", record=False)
                assert (watch.paths, source) == ([path] * n, "live")
            assert rows(ledger) == 1
    # strict replay through the same seam: the ledger answers, a miss sends nothing
    async with httpx.AsyncClient(transport=watch) as http:
        async with create_koine(http_client=http, replay="strict", ledger=ledger) as strict:
            answer, source, _ = await ask(strict, kind, "A dish")
            assert (answer, source) == (live, "replay")
            with pytest.raises(KoineError) as miss:
                await ask(strict, kind, "A dish", model="another-model")
            assert miss.value.code == "REPLAY_MISS"
            assert "recorded with another model" in miss.value.message
    assert watch.paths == [path] * 4


@pytest.mark.parametrize("kind", KINDS)
def test_sync_calls_send_once_unless_replayed(kind: str, gw: Any, tmp_path: Path) -> None:
    ledger, path = tmp_path / "l.sqlite3", PATHS[kind]
    sent = lambda: [r.path for r in gw.requests if r.method == "POST"]  # noqa: E731
    settings = dict(base_url=gw.base_url, auth_key=gw.auth_key, ledger=ledger)
    with create_koine_sync(**settings, replay="replay") as koine:
        live, source, key = ask_sync(koine, kind, "A dish")
        assert (sent(), source) == ([path], "live") and key is not None
        again, source, same = ask_sync(koine, kind, "A dish")
        assert (sent(), source, same, again) == ([path], "replay", key, live)
        assert ask_sync(koine, kind, "A dish", replay="off")[1] == "live"
        assert ask_sync(koine, kind, "Another", record=False)[1] == "live"
        assert sent() == [path] * 3 and rows(ledger) == 1
    with create_koine_sync(**settings) as plain:  # replay off; one call asks for it
        assert ask_sync(plain, kind, "A dish", replay="strict")[1:] == ("replay", key)
        assert ask_sync(plain, kind, "A dish")[1:] == ("live", None)
        assert sent() == [path] * 4 and rows(ledger) == 1


async def test_the_ledger_keeps_the_object_the_gateway_returned(
    koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    watch = Watch()
    settings = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    async with httpx.AsyncClient(transport=watch) as http:
        async with create_koine(**settings, http_client=http, replay="record", ledger=ledger) as k:
            live = await k.generate_object(prompt="Name it", schema=Shouted)
    (wire,) = watch.bodies
    assert live.object.title == wire["object"]["title"] + "!"
    with Ledger(ledger) as book:
        record = book.get(live.ledger_key or "")
    assert record is not None and rows(ledger) == 1
    assert json.loads(record.answer or "") == wire["object"]  # not the validated object
    assert record.raw_text == wire["rawText"]
    async with create_koine(replay="strict", ledger=ledger) as strict:
        replayed = await strict.generate_object(prompt="Name it", schema=Shouted)
        assert (replayed.object, replayed.source) == (live.object, "replay")
        # the twin stream re-validates the same recording the same way
        async with strict.stream_object(prompt="Name it", schema=Shouted) as s:
            assert (await s.object(), s.source) == (live.object, "replay")


async def test_repairs_go_through_the_transport_and_replay_as_one_answer(
    koine_gateway: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.sqlite3"
    watch = Watch()
    settings = dict(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    prompt = "[[invalid-object=1]]"
    async with httpx.AsyncClient(transport=watch) as http:
        async with create_koine(**settings, http_client=http, replay="replay", ledger=ledger) as k:
            live = await k.generate_object(prompt=prompt, schema=Recipe, repairs=2)
            assert live.attempts == 2 and watch.paths == ["/generate-object"] * 2
            again = await k.generate_object(prompt=prompt, schema=Recipe, repairs=2)
    assert watch.paths == ["/generate-object"] * 2  # the replay sent nothing
    assert (again.source, again.attempts, again.usage) == ("replay", 2, live.usage)
    assert again.ledger_key == live.ledger_key is not None
    assert rows(ledger) == 1  # one answer, one record: the repair is not a request of its own
