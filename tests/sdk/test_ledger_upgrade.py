"""A ledger written by koine-sdk 3.0.0a1 (``fixtures/ledger-3.0.0a1.sqlite3``, made by
``fixtures/make_ledger_3_0_0a1.py``) keeps serving its answers: ``extract`` and strict replay
ask the gateway nothing for what it holds."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from koine_jupyter import extract
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from ledger_3_0_0a1_cases import (  # noqa: E402
    EXTRACT_PROMPT,
    EXTRACT_TEXTS,
    SDK_OBJECT_PROMPT,
    SDK_STREAM_PROMPT,
    SDK_TEXT_PROMPT,
    Company,
)


@pytest.fixture
def old_ledger(tmp_path: Path) -> Path:
    copy = tmp_path / "ledger-3.0.0a1.sqlite3"
    shutil.copyfile(FIXTURES / "ledger-3.0.0a1.sqlite3", copy)
    os.chmod(copy, 0o600)
    return copy


def _posts(gw: LocalGateway) -> int:
    return sum(r.method == "POST" for r in gw.requests)


def test_extract_reuses_every_answer_of_a_3_0_0a1_ledger(old_ledger: Path) -> None:
    with LocalGateway() as gw:
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
            df = extract(
                EXTRACT_TEXTS[:2], Company, EXTRACT_PROMPT, client=koine, ledger=old_ledger,
                progress=False,
            )  # fmt: skip
        assert _posts(gw) == 0
    assert list(df["name"]) == ["example", "example"]
    assert df["error"].isna().all()


def test_strict_replay_answers_every_recorded_call_of_a_3_0_0a1_ledger(old_ledger: Path) -> None:
    # strict replay sends nothing: no gateway at all
    with create_koine_sync(replay="strict", ledger=old_ledger) as koine:
        text = koine.generate_text(prompt=SDK_TEXT_PROMPT)
        assert SDK_TEXT_PROMPT in text.text
        obj = koine.generate_object(prompt=SDK_OBJECT_PROMPT, schema=Company)
        assert isinstance(obj.object, Company)
        with koine.stream_text(prompt=SDK_STREAM_PROMPT) as s:
            assert SDK_STREAM_PROMPT in s.text()
        with koine.stream_object(prompt=SDK_OBJECT_PROMPT, schema=Company) as s:
            assert isinstance(s.object(), Company)


def test_the_upgrade_is_numbered_and_in_place(old_ledger: Path) -> None:
    import sqlite3

    from koine_sdk.ledger import Ledger
    from koine_sdk.ledger._schema import SCHEMA_VERSION

    with sqlite3.connect(old_ledger) as db:
        assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone() == ("1",)
        before = db.execute("SELECT COUNT(*) FROM requests").fetchone()
    Ledger(old_ledger).close()
    with sqlite3.connect(old_ledger) as db:
        assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone() == before  # nothing lost
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert "run_group" in columns
    Ledger(old_ledger).close()  # a second open finds nothing to do


def test_no_sql_outside_the_ledger() -> None:
    """The ledger owns its schema: no other module of either package holds SQL."""
    import ast
    import re

    root = Path(__file__).resolve().parents[2]
    sql = re.compile(
        r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b"
    )
    offenders: list[str] = []
    for pkg in ("koine_sdk", "koine_jupyter"):
        for path in (root / pkg).rglob("*.py"):
            if "ledger" in path.relative_to(root).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and sql.search(text):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders
