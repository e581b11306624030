"""The magic's settings change in one place (koine_jupyter.magics.settings): their checks, the
replay names (the SDK's, aliases included), and the environment variables a change also sets —
whether it comes from ``%config`` or from a subcommand."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from _kernels import koine_kernel, of_type
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conftest import magics_of
from koine_jupyter.magics.settings import (
    ENV_LEDGER,
    ENV_REPLAY,
    REPLAY_CHOICES,
    USER_MODES,
    KoineSettings,
    SettingError,
    replay_setting,
)
from koine_sdk._replay import replay_mode as sdk_replay_mode


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """No ``$KOINE_REPLAY``; ``$KOINE_LEDGER`` is the test's own (tests/conftest.py), which
    monkeypatch restores after the test as it restores ``$KOINE_REPLAY``; returns it."""
    # set-then-delete: a delenv of an absent variable records nothing to undo, and the
    # settings' writes would leak into later tests
    monkeypatch.setenv(ENV_REPLAY, "")
    monkeypatch.delenv(ENV_REPLAY)
    return os.environ[ENV_LEDGER]


@pytest.mark.parametrize(
    ("name", "stored"),
    [("on", "on"), ("ON ", "on"), ("replay", "on"), ("0", "off"), ("no", "off"),
     ("false", "off"), ("none", "off"), ("record", "record"), ("strict", "strict"),
     ("Auto", "auto")],
)  # fmt: skip
def test_replay_names_and_the_sdks_aliases(name: str, stored: str) -> None:
    assert replay_setting(name) == stored


def test_every_user_mode_is_an_sdk_mode_and_a_setting() -> None:
    for name in USER_MODES:
        assert name in REPLAY_CHOICES
        assert replay_setting(sdk_replay_mode(name)) == name
    with pytest.raises(SettingError, match="takes off, record, on or strict"):
        replay_setting("auto", "%koine replay", auto=False)


def test_a_standalone_settings_object_exports_and_reconnects(
    clean_env: str, tmp_path: Path
) -> None:
    calls: list[str] = []
    settings = KoineSettings()
    settings.on_reconnect(lambda: calls.append(settings.replay))
    settings.replay = "strict"
    assert os.environ[ENV_REPLAY] == "strict" and calls == ["strict"]
    settings.replay = "auto"  # follow the environment again: it is left as it is
    assert os.environ[ENV_REPLAY] == "strict" and calls == ["strict", "auto"]
    settings.change(replay="replay", ledger=str(tmp_path / "l.sqlite3"))
    assert (settings.replay, settings.ledger) == ("on", str(tmp_path / "l.sqlite3"))
    assert (os.environ[ENV_REPLAY], os.environ[ENV_LEDGER]) == ("replay", settings.ledger)
    assert settings.replay_in_use() == "replay"
    settings.model = "haiku"
    snapshot = settings.snapshot()
    assert snapshot.model == "haiku"
    with pytest.raises(AttributeError):
        snapshot.model = "sonnet"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"replay": "sometimes"}, "auto, off, record, on or strict"),
        ({"replay": "on", "display": "bogus"}, "auto, widget, markdown or text"),
        ({"ledger": "/tmp/x.sqlite3", "update_rate": 0}, "> 0"),
        ({"auth_key_env": "sk-not a name"}, "NAME of an environment variable"),
        ({"replay": "strict", "max_retries": -1}, ">= 0"),
    ],
)
def test_a_refused_value_changes_nothing(
    clean_env: str, values: dict[str, Any], names: str
) -> None:
    calls: list[None] = []
    settings = KoineSettings()
    settings.on_reconnect(lambda: calls.append(None))
    before = {name: getattr(settings, name) for name in settings.traits(config=True)}
    with pytest.raises(UsageError, match=names) as caught:
        settings.change(**values)
    assert type(caught.value) is UsageError  # IPython shows exactly UsageError in one line
    assert {name: getattr(settings, name) for name in before} == before
    assert ENV_REPLAY not in os.environ and os.environ[ENV_LEDGER] == clean_env
    assert calls == []


@pytest.mark.parametrize("how", ["config", "command"])
def test_config_and_the_subcommand_set_the_same_state(
    ip: InteractiveShell, clean_env: str, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    magics = magics_of(ip)
    if how == "config":
        ip.run_line_magic("config", 'KoineMagics.replay = "strict"')
    else:
        ip.run_line_magic("koine", "replay strict")
    assert magics.replay == "strict"
    assert magics.connection.replay_mode() == "strict"
    assert os.environ[ENV_REPLAY] == "strict"
    assert os.environ[ENV_LEDGER] == clean_env  # no ledger named: none exported
    ip.run_line_magic("koine", "status")
    assert "replay: strict (ledger: " in capsys.readouterr().out


def test_a_refused_value_through_config_or_the_subcommand(
    ip: InteractiveShell, clean_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    magics = magics_of(ip)
    with caplog.at_level(logging.ERROR):
        ip.run_line_magic("config", "KoineMagics.replay = 'sometimes'")
    assert "KoineMagics.replay takes auto, off, record, on or strict (got 'sometimes')" in (
        caplog.text
    )
    with pytest.raises(UsageError, match="takes off, record, on or strict"):
        ip.run_line_magic("koine", "replay sometimes")
    assert magics.replay == "auto" and ENV_REPLAY not in os.environ
    with caplog.at_level(logging.ERROR):  # one statement: both values refused together
        ip.run_line_magic("config", "KoineMagics.display = 'bogus'")
    assert "auto, widget, markdown or text" in caplog.text
    assert magics.display == "auto"


_STATE = (
    "import json, os\n"
    "m = [c for c in get_ipython().configurables if type(c).__name__ == 'KoineMagics'][0]\n"
    "print(json.dumps([m.replay, m.connection.replay_mode(), os.environ.get('KOINE_REPLAY')]))"
)


def _printed(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in of_type(msgs, "stream"))


def test_in_a_kernel_config_and_the_subcommand_agree(koine_gateway_server: Any) -> None:
    with koine_kernel(koine_gateway_server, "import os\nos.environ.pop('KOINE_REPLAY', None)") as k:
        k.run('%config KoineMagics.replay = "strict"')
        by_config = json.loads(_printed(k.run(_STATE)[0]))
        k.run("%config KoineMagics.replay = 'auto'\nos.environ.pop('KOINE_REPLAY')")
        assert json.loads(_printed(k.run(_STATE)[0])) == ["auto", "off", None]
        k.run("%koine replay strict")
        by_command = json.loads(_printed(k.run(_STATE)[0]))
        assert by_config == by_command == ["strict", "strict", "strict"]
        msgs, reply = k.run("%koine replay sometimes")
        assert reply["content"]["status"] == "error"
        assert "UsageError: %koine replay takes off, record, on or strict" in _printed(msgs)
        msgs, _ = k.run("%config KoineMagics.replay = 'sometimes'")
        assert "auto, off, record, on or strict (got 'sometimes')" in _printed(msgs)
        assert json.loads(_printed(k.run(_STATE)[0])) == by_command  # nothing changed
