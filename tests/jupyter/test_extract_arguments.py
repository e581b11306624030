"""Every bad ``extract`` argument is refused with ``INVALID_ARGUMENT`` before anything is sent:
0 requests at the gateway, not even ``/health``."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel

from koine_jupyter import extract
from koine_sdk import KoineError, create_koine_sync
from koine_sdk.testing import LocalGateway


class Company(BaseModel):
    name: str


BAD: list[dict[str, Any]] = [
    {"timeout": -1},
    {"timeout": 0},
    {"timeout": math.nan},
    {"timeout": "10"},
    {"model": 5},
    {"model": ""},
    {"system": 5},
    {"allowed_tools": "Bash"},
    {"allowed_tools": ["Read", 3]},
    {"concurrency": 0},
    {"max_retries": -1},
    {"max_retry_after": -1},
    {"max_outage": math.nan},
    {"max_rows": "x"},
    {"max_tokens": -5},
    {"repairs": "x"},
    {"sample": -2},
    {"cache": "yes"},
    {"progress": "loud"},
    {"on_interrupt": "x"},
    {"ledger": 5},
    {"client": "http://not-a-client"},
    {"prompt": 5},
    {"schema": int},
]


@pytest.fixture(scope="module")
def gw() -> Any:
    with LocalGateway() as gateway:
        yield gateway


@pytest.mark.parametrize(
    "bad", BAD, ids=[next(iter(b)) + "=" + repr(next(iter(b.values()))) for b in BAD]
)
def test_a_bad_argument_sends_nothing(gw: LocalGateway, bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"prompt": "Extract: {text}", "schema": Company, "ledger": False}
    args.update(bad)
    before = len(gw.requests)
    with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
        args.setdefault("client", koine)
        args.setdefault("progress", False)
        with pytest.raises(KoineError) as info:
            extract(["ACME"], **args)
    assert info.value.code == "INVALID_ARGUMENT", info.value
    assert len(gw.requests) == before, [r.path for r in gw.requests[before:]]
