"""Every schema resumes from the answer as received: aliases, excluded and computed fields, a
validator that transforms (dollars to cents). Three runs of three rows cost three requests,
with the same values every time; strict replay of recorded calls gives the same values."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from koine_jupyter.extraction import extract
from koine_sdk import create_koine_sync
from koine_sdk.ledger import open_ledger
from koine_sdk.testing import LocalGateway


class Aliased(BaseModel):
    name: str = Field(serialization_alias="fullName")


class Excluded(BaseModel):
    name: str
    secret: str = Field(exclude=True)


class Computed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int

    @computed_field
    @property
    def double(self) -> int:
        return self.size * 2


class Cents(BaseModel):
    price: int

    @field_validator("price")
    @classmethod
    def _cents(cls, dollars: int) -> int:
        return dollars * 100


SCHEMAS: list[type[BaseModel]] = [Aliased, Excluded, Computed, Cents]
TEXTS = ["one", "two", "three"]


def _sent(gw: LocalGateway) -> int:
    return sum(1 for r in gw.requests if r.path == "/generate-object")


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_three_runs_of_three_rows_cost_three_requests_with_the_same_values(
    schema: type[BaseModel], koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "l.sqlite3")
    gw = koine_gateway
    client = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    frames: list[Any] = []
    try:
        for _ in range(3):
            frames.append(extract(TEXTS, schema, client=client, ledger=ledger, progress=False))
    finally:
        client.close()
    assert _sent(gw) == 3
    fields = list(schema.model_fields)
    first = frames[0][fields]
    assert frames[0]["error"].isna().all()
    for later in frames[1:]:
        assert set(later["answer_from"]) == {"ledger"}
        assert later[fields].equals(first)
    if schema is Cents:
        assert list(frames[2]["price"]) == [100, 100, 100]  # not 10000 on resume


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_strict_replay_gives_the_recorded_values(
    schema: type[BaseModel], koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "r.sqlite3")
    gw = koine_gateway
    values: list[dict[str, Any]] = []
    for mode in ("record", "strict", "strict"):
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay=mode, ledger=ledger
        ) as client:
            result = client.generate_object(prompt="Describe it", schema=schema)
            values.append(result.object.model_dump())
    assert _sent(gw) == 1
    assert values[0] == values[1] == values[2]
    if schema is Cents:
        assert values[2] == {"price": 100}


def test_a_lone_surrogate_among_good_rows_is_stored_and_resumed(
    koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "s.sqlite3")
    gw = koine_gateway
    texts = ["good", "bad \udce9 text", "fine"]
    with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as client:
        first = extract(texts, Aliased, client=client, ledger=ledger, progress=False)
        again = extract(texts, Aliased, client=client, ledger=ledger, progress=False)
    assert first["error"].isna().all() and list(first["name"]) == ["example"] * 3
    assert set(again["answer_from"]) == {"ledger"}
    assert _sent(gw) == 3


_READ_ONLY_CHILD = textwrap.dedent(
    """
    import os, sys, warnings
    import pandas
    from pydantic import BaseModel
    from koine_jupyter.extraction import extract, history
    from koine_sdk import KoineConfig
    from koine_sdk.ledger import Ledger
    Ledger(":memory:").rows()

    class Aliased(BaseModel):
        name: str

    config = KoineConfig(base_url=sys.argv[4], auth_key=os.environ["CHILD_KEY"])
    # every module a run needs, imported as root (nobody cannot read root's Python)
    extract(["warm up"], Aliased, client=config, ledger=False, progress=False)
    os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[2]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = extract(["one", "two", "new"], Aliased, client=config, ledger=sys.argv[1],
                     progress=False)
        assert len(history(ledger=sys.argv[1])) == 1
    assert list(df["answer_from"]) == ["ledger", "ledger", "request"], df
    assert df["error"].isna().all(), list(df["error"])
    said = [str(w.message) for w in caught if "read-only" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
    print("ok")
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges from root")
def test_extract_reuses_a_read_only_ledger_and_warns_once(koine_gateway: LocalGateway) -> None:
    nobody = pwd.getpwnam("nobody")
    folder = Path(tempfile.mkdtemp(prefix="koine-ro-"))
    ledger = folder / "answers.sqlite3"
    gw = koine_gateway
    try:
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as client:
            extract(["one", "two"], Aliased, client=client, ledger=str(ledger), progress=False)
        open_ledger(str(ledger)).close()
        for side in folder.iterdir():
            side.chmod(0o444)
        folder.chmod(0o555)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "CHILD_KEY": gw.auth_key}
        done = subprocess.run(
            [sys.executable, "-c", _READ_ONLY_CHILD, str(ledger), str(nobody.pw_uid),
             str(nobody.pw_gid), gw.base_url],
            capture_output=True, text=True, env=env, timeout=120, cwd="/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert _sent(gw) == 4  # two paid once, the warm-up, the new one (not kept)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
