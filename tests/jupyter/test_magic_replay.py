"""``%koine replay``: cells recorded to the ledger and answered from it, in a real IPython shell
(no kernel: text mode) against the local gateway. The kernel and notebook tests are in
test_replay_notebook.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from pydantic import BaseModel

from conftest import magics_of
from koine_jupyter.magics.metadata import ResultMetadata
from koine_jupyter.views import KoineAnswer

DEAD_URL = "http://127.0.0.1:9"


class Recipe(BaseModel):
    title: str
    servings: int


def _run(ip: InteractiveShell, cell: str) -> Any:
    return ip.run_cell(cell, store_history=True)


def test_record_then_replay_a_text_cell_offline(
    ip: InteractiveShell,
    koine_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ip.run_line_magic("koine", "replay record")
    assert "Replay: record" in capsys.readouterr().out
    live = _run(ip, "%%koine --out answer\nName three rivers [[chunks=5]]")
    assert live.success
    first: KoineAnswer = ip.user_ns["answer"]
    assert first.source == "live" and first.ledger_key is not None
    capsys.readouterr()
    ip.run_line_magic("koine", "replay strict")
    monkeypatch.setenv("KOINE_BASE_URL", DEAD_URL)  # nothing could answer but the ledger
    again = _run(ip, "%%koine --out answer\nName three rivers [[chunks=5]]")
    assert again.success, again.error_in_exec
    replayed: KoineAnswer = ip.user_ns["answer"]
    assert replayed == first and replayed.usage == first.usage
    assert replayed.source == "replay" and replayed.ledger_key == first.ledger_key
    assert replayed.provenance()["source"] == "replay"
    assert replayed.provenance()["ledger_key"] == first.ledger_key
    captured = capsys.readouterr()
    assert captured.out.count(first.text) == 1
    assert "replayed" in captured.err  # the final status line says so
    assert len(koine_gateway.requests) == 1


def test_strict_miss_fails_the_cell_naming_its_prompt(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "KoineMagics.replay = 'strict'")
    result = _run(ip, "%%koine\nWhich river is the longest\nin Europe?")
    assert not result.success
    err = result.error_in_exec
    assert err.code == "REPLAY_MISS"
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Which river is the longest\\nin Europe?" in text  # repr() quoting: line breaks show
    assert "%koine replay on" in text  # what to do, in notebook terms
    assert "Traceback" not in text  # a few lines, not a page
    assert koine_gateway.requests == []


def test_strict_replay_needs_no_gateway_settings(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(ip, "%koine replay record")
    assert _run(ip, "%koine --out answer Offline later").success
    monkeypatch.delenv("KOINE_BASE_URL")
    monkeypatch.delenv("KOINE_AUTH_KEY")
    _run(ip, "%koine replay strict")
    capsys.readouterr()
    result = _run(ip, "%koine --out answer Offline later")
    assert result.success, result.error_in_exec
    assert ip.user_ns["answer"].source == "replay"
    _run(ip, "%koine replay off")  # asking the gateway again needs its settings again
    failed = _run(ip, "%koine Offline later")
    assert failed.error_in_exec.code == "INVALID_CONFIG"


def test_replay_on_sends_only_what_is_missing(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("koine", "replay on")
    for _ in range(3):
        assert _run(ip, "%koine --quiet --out answer Once only").success
    assert ip.user_ns["answer"].source == "replay"
    assert len(koine_gateway.requests) == 1
    ip.user_ns["Recipe"] = Recipe
    for _ in range(2):
        assert _run(ip, "%%koine --schema Recipe --out r\nA pancake recipe").success
    assert isinstance(ip.user_ns["r"], Recipe)
    assert len(koine_gateway.requests) == 2


def test_a_recorded_session_replays_turn_by_turn(
    ip: InteractiveShell,
    koine_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cells = [
        "%%koine --session chat --out answer\nI am Ada",
        "%%koine --session chat --out answer\nWho am I? [[history]]",
    ]
    _run(ip, "%koine replay record")
    live = [(_run(ip, c), ip.user_ns["answer"].text)[1] for c in cells]
    assert "I am Ada" in live[1]
    _run(ip, "%koine sessions --clear")
    _run(ip, "%koine replay strict")
    monkeypatch.setenv("KOINE_BASE_URL", DEAD_URL)
    replayed = [(_run(ip, c), ip.user_ns["answer"].text)[1] for c in cells]
    assert replayed == live
    assert len(koine_gateway.requests) == 2


def test_schema_results_are_still_returned_when_assigned(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["Recipe"] = Recipe
    _run(ip, "%koine replay on")
    for _ in range(2):
        result = _run(ip, "r = %koine --no-stream --schema Recipe A soup\nr")
        assert result.success
        assert isinstance(ip.user_ns["r"], Recipe) and result.result is ip.user_ns["r"]
    # the display hook is its own again after the cell
    assert "compute_format_data" not in vars(ip.displayhook)


def test_result_metadata_joins_the_output_of_its_value_only(ip: InteractiveShell) -> None:
    tags = ResultMetadata()
    value, other = Recipe(title="a", servings=1), Recipe(title="a", servings=1)
    tags.attach(ip, value, {"source": "replay"})
    _, md = ip.displayhook.compute_format_data(value)
    assert md["koine"] == {"source": "replay"}
    _, md = ip.displayhook.compute_format_data(other)  # equal, but not the tagged object
    assert "koine" not in (md or {})
    tags.after_cell()
    _, md = ip.displayhook.compute_format_data(value)
    assert "koine" not in (md or {})
    tags.after_cell()  # twice is harmless


def test_replay_command_status_and_config(
    ip: InteractiveShell,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ip.run_line_magic("koine", "replay")
    assert "Replay: off" in capsys.readouterr().out
    monkeypatch.setenv("KOINE_REPLAY", "strict")  # 'auto' follows the environment
    ip.run_line_magic("koine", "status")
    assert "replay: strict (ledger: " in capsys.readouterr().out
    ledger = tmp_path / "beside-the-notebook.sqlite3"
    ip.run_line_magic("koine", f"replay on --ledger {ledger}")
    out = capsys.readouterr().out
    assert f"Replay: on (ledger: {ledger})" in out and "recorded" in out
    assert magics_of(ip).replay == "on" and magics_of(ip).ledger == str(ledger)
    assert _run(ip, "%koine --quiet Kept beside the notebook").success
    assert ledger.exists()
    with pytest.raises(UsageError, match="takes off, record, on or strict"):
        ip.run_line_magic("koine", "replay sometimes")
    # a prompt that starts with the word: more words than the subcommand takes
    assert _run(ip, "%koine --quiet --out answer replay the last match for me").success
    assert ip.user_ns["answer"].text == "Echo: replay the last match for me"


def test_replay_with_the_ledger_turned_off_is_refused_at_once(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOINE_LEDGER", "off")
    with pytest.raises(UsageError, match="KOINE_LEDGER"):
        ip.run_line_magic("koine", "replay on")
    assert magics_of(ip).replay == "auto"  # unchanged
    monkeypatch.setenv("KOINE_REPLAY", "on")  # the environment asks for it all the same
    result = _run(ip, "%koine hello")
    assert result.error_in_exec.code == "INVALID_CONFIG"
    assert "KOINE_LEDGER" in result.error_in_exec.message
    assert os.environ["KOINE_LEDGER"] == "off"
