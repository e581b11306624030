"""Every schema resumes at no cost, with the values of the first run: a resumed row is validated
again from what the gateway sent (the model's JSON), not from the validated object's dump.

Before: ``serialization_alias``, ``Field(exclude=True)`` and ``computed_field`` with
``extra="forbid"`` paid on every run (3 runs of 3 rows: 9 calls), and a validator converting
dollars to cents gave 100 on the first run and 10000 on resume."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from koine_jupyter import extract
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

TEXTS = ["ACME", "Globex", "Initech"]
PROMPT = "Describe: {text}"


class Aliased(BaseModel):
    name: str = Field(serialization_alias="companyName")


class Excluded(BaseModel):
    name: str
    note: str = Field(default="n", exclude=True)


class Computed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shout(self) -> str:
        return self.name.upper()


class Cents(BaseModel):
    price: int

    @field_validator("price")
    @classmethod
    def to_cents(cls, dollars: int) -> int:
        return dollars * 100


def _posts(gw: LocalGateway) -> int:
    return sum(r.method == "POST" for r in gw.requests)


@pytest.mark.parametrize("schema", [Aliased, Excluded, Computed, Cents])
def test_three_runs_pay_once_and_give_the_same_values(tmp_path: Path, schema: Any) -> None:
    ledger = tmp_path / "l.sqlite3"
    frames = []
    with LocalGateway() as gw:
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
            for _ in range(3):
                frames.append(
                    extract(TEXTS, schema, PROMPT, client=koine, ledger=ledger, progress=False)
                )
        assert _posts(gw) == len(TEXTS)  # 3 rows, 3 runs: paid once each
    first = frames[0].drop(columns=["answer_from", "input_tokens", "output_tokens", "attempts"])
    for later in frames[1:]:
        assert list(later["answer_from"]) == ["ledger"] * len(TEXTS)
        again = later.drop(columns=["answer_from", "input_tokens", "output_tokens", "attempts"])
        assert again.equals(first), (first, again)


def test_strict_replay_extract_sends_nothing(tmp_path: Path) -> None:
    """A strict client against a server that accepts connections but never answers: rows are
    answered from the ledger or miss, at once — no /health, no connection."""
    ledger = tmp_path / "l.sqlite3"
    with LocalGateway() as gw:
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="record", ledger=ledger
        ) as koine:
            koine.generate_object(prompt=PROMPT.format(text="ACME"), schema=Aliased)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts, never answers
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with create_koine_sync(
            base_url=url, auth_key="k", replay="strict", ledger=ledger, timeout=30
        ) as koine:
            started = time.monotonic()
            df = extract(
                ["ACME", "never recorded"], Aliased, PROMPT, client=koine, ledger=False,
                progress=False,
            )  # fmt: skip
            elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(2)
        silent.close()
        for conn in accepted:
            conn.close()
    assert elapsed < 3.0, elapsed
    assert not accepted, "a strict replay connected to the gateway"
    assert df.loc[0, "name"] is not None and str(df.loc[1, "error"]).startswith("REPLAY_MISS")
