"""The magic's settings change in one place (koine_jupyter.magics.settings): mode names and
aliases, and the environment variables set with them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from koine_jupyter.magics.settings import (
    ENV_LEDGER,
    ENV_REPLAY,
    REPLAY_CHOICES,
    USER_MODES,
    replay_mode,
    set_replay,
    shown_mode,
)


@dataclass
class _Traits:
    replay: str = "auto"
    ledger: str = ""


@pytest.mark.parametrize(
    ("name", "mode"),
    [("on", "replay"), ("ON ", "replay"), ("replay", "replay"), ("0", "off"), ("no", "off"),
     ("false", "off"), ("none", "off"), ("record", "record"), ("strict", "strict")],
)  # fmt: skip
def test_replay_aliases(name: str, mode: str) -> None:
    assert replay_mode(name) == mode


def test_every_user_mode_is_a_trait_value_and_shows_as_written() -> None:
    for name in USER_MODES:
        assert name in REPLAY_CHOICES
        assert shown_mode(replay_mode(name)) == name


def test_set_replay_sets_the_trait_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # set-then-delete: monkeypatch then restores the variables after the test (a delenv of an
    # absent variable records nothing, and set_replay's writes would leak into later tests)
    for name in (ENV_REPLAY, ENV_LEDGER):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    traits = _Traits()
    set_replay(traits, "replay", "/tmp/x.sqlite3")
    assert (traits.replay, traits.ledger) == ("on", "/tmp/x.sqlite3")
    assert (os.environ[ENV_REPLAY], os.environ[ENV_LEDGER]) == ("replay", "/tmp/x.sqlite3")
    set_replay(traits, None, None)
    assert (traits.replay, os.environ[ENV_REPLAY]) == ("on", "replay")
