"""Run by tests/cli/test_suite_isolation.py in an inner pytest: tests that leave ``KOINE_*``
variables changed (directly, or through a fixture's teardown), and one that changes them the
right way (monkeypatch restores them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def test_leaks_a_mode() -> None:
    os.environ["KOINE_REPLAY"] = "record"


@pytest.fixture
def leaky_fixture() -> Iterator[None]:
    yield
    os.environ["KOINE_AUTH_KEY"] = "probe-secret-value"  # set in teardown: still a leak


def test_leaks_through_a_fixture(leaky_fixture: None) -> None:
    pass


def test_restores_what_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOINE_DISPLAY", "text")
    monkeypatch.setenv("KOINE_REPLAY", "off")
    os.environ["KOINE_REPLAY"] = "record"  # as code under test would: monkeypatch undoes it
