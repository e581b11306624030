"""The handlers need only the narrow context (koine_jupyter.magics.context): a small double with
exactly its members — no shell, no magics object — runs them against the local gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from IPython.core.error import UsageError

from koine_jupyter._sessions import SessionStore
from koine_jupyter.magics.args import AskOptions, parse
from koine_jupyter.magics.ask import ask
from koine_jupyter.magics.commands import COMMANDS, HealthReport
from koine_jupyter.magics.connection import Connection
from koine_jupyter.magics.context import MagicsContext
from koine_jupyter.magics.failures import FailedCells
from koine_jupyter.magics.settings import DisplaySettings, KoineSettings
from koine_jupyter.views import KoineAnswer
from koine_sdk import KoineError

MEMBERS = {
    "connection",
    "sessions",
    "failures",
    "user_ns",
    "settings",
    "fail",
    "interrupted",
    "cell_value",
}


@dataclass(slots=True)
class Context:
    """The context's members and nothing else (slots: a handler cannot add one either)."""

    connection: Connection
    sessions: SessionStore = field(default_factory=SessionStore)
    failures: FailedCells = field(default_factory=FailedCells)
    user_ns: dict[str, Any] = field(default_factory=dict)
    settings: DisplaySettings = field(default_factory=lambda: DisplaySettings(display="text"))

    def fail(
        self, exc: KoineError, *, resumed: str | None = None, schema: str | None = None
    ) -> NoReturn:
        exc.add_note(f"through fail (resumed={resumed})")
        raise exc

    def interrupted(self, exc: KeyboardInterrupt, what: str) -> NoReturn:
        raise exc

    def cell_value(
        self, value: Any, metadata: dict[str, Any] | None = None, *, printed: bool = False
    ) -> Any:
        return ("cell", value, printed)


def _members(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_the_context_has_eight_members() -> None:
    assert _members(MagicsContext) == _members(Context) == MEMBERS


@pytest.fixture
def ctx(koine_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DOUBLE_KEY", koine_gateway.auth_key)
    settings = KoineSettings(base_url=koine_gateway.base_url, auth_key_env="DOUBLE_KEY")
    context = Context(Connection(settings))
    checked: MagicsContext = context  # pyright checks the double against the protocol
    yield checked
    context.connection.close()


def _run(ctx: Any, name: str, *argv: str) -> Any:
    cmd = COMMANDS[name]
    return cmd.run(ctx, parse(cmd.args, list(argv), name))


def test_status_and_health(
    ctx: Any, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(ctx, "status")
    out = capsys.readouterr().out
    assert f"gateway: {koine_gateway.base_url}" in out
    assert "key: $DOUBLE_KEY (set)" in out and "display: text (now: text)" in out
    assert koine_gateway.auth_key not in out
    report = _run(ctx, "health")
    assert isinstance(report, HealthReport) and report.health.status == "healthy"
    assert [r.path for r in koine_gateway.requests] == ["/health"]


def test_a_prompt_a_session_and_a_failure(ctx: Any, koine_gateway: Any) -> None:
    opts = parse(AskOptions, ["--session", "chat", "--out", "answer"], "%koine")
    tag, answer, printed = ask(ctx, opts, "I am Ada")
    assert (tag, printed) == ("cell", True)  # text display printed it while it streamed
    assert isinstance(answer, KoineAnswer) and answer.text == "Echo: I am Ada"
    assert ctx.user_ns["answer"] is answer
    assert [s.name for s in _run(ctx, "sessions")] == ["chat"]
    opts = parse(AskOptions, ["--session", "chat", "--quiet"], "%koine")
    with pytest.raises(KoineError) as caught:
        ask(ctx, opts, "[[status=502]] hello")
    assert caught.value.status == 502
    assert caught.value.__notes__ == ["through fail (resumed=chat)"]


def test_replay_connect_and_disconnect(
    ctx: Any, koine_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KOINE_REPLAY", "KOINE_BASE_URL", "KOINE_AUTH_KEY"):
        monkeypatch.setenv(name, "")  # set-then-delete: restored after the test
        monkeypatch.delenv(name)
    ledger = str(tmp_path / "answers.sqlite3")
    _run(ctx, "replay", "record", "--ledger", ledger)
    assert (os.environ["KOINE_REPLAY"], os.environ["KOINE_LEDGER"]) == ("record", ledger)
    assert ctx.connection.replay_mode() == "record"
    with pytest.raises(UsageError, match="takes off, record, on or strict"):
        _run(ctx, "replay", "sometimes")
    assert ctx.connection.replay_mode() == "record"
    _run(ctx, "replay", "off")
    _run(ctx, "connect", "--local")
    try:
        assert ctx.connection.uses_local()
        assert os.environ["KOINE_BASE_URL"] == ctx.connection.base_url()
    finally:
        _run(ctx, "disconnect")
    assert ctx.connection.base_url() == "" and "KOINE_BASE_URL" not in os.environ
    _run(ctx, "connect", koine_gateway.base_url)
    assert isinstance(_run(ctx, "health"), HealthReport)
