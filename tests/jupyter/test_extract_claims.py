"""Never pay twice across runs: runs that share a ledger claim each key before asking for it, and
a run finding a key claimed by another waits for that answer (issue 21: two processes extracting
the same 20 texts at once paid 40 calls). A claim whose owner died expires and is taken over.

Requests are counted on the gateway's side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from koine_jupyter import extract
from koine_sdk import KoineConfig
from koine_sdk.ledger import Ledger
from koine_sdk.testing import LocalGateway

N = 20


class Person(BaseModel):
    name: str


def _posts(gw: LocalGateway) -> int:
    """Requests the gateway answered (a 429 for a full gateway is not a paid call)."""
    return sum(r.method == "POST" for r in gw.requests) - gw.rejected


def _texts(tag: str, delay: float = 0.3) -> list[str]:
    return [f"person {i}{tag} [[delay={delay}]]" for i in range(N)]


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pydantic import BaseModel
    from koine_jupyter import extract
    from koine_sdk import KoineConfig

    class Person(BaseModel):
        name: str

    base_url, key, ledger = sys.argv[1:4]
    start, texts = float(sys.argv[4]), json.loads(sys.argv[5])
    while time.time() < start:
        time.sleep(0.001)
    df = extract(texts, Person, client=KoineConfig(base_url=base_url, auth_key=key),
                 ledger=ledger, progress=False)
    print(json.dumps({"from": df["answer_from"].tolist(), "errors": int(df["error"].notna().sum()),
                      "names": df["name"].tolist()}))
    """
)


def _child(gw: LocalGateway, ledger: Path, start: float, texts: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "KOINE_LEDGER": str(ledger)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(gw.base_url), gw.auth_key or "", str(ledger),
         str(start), json.dumps(texts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def test_two_processes_at_once_pay_each_text_once(tmp_path: Path) -> None:
    ledger = tmp_path / "shared.sqlite3"
    texts = _texts(" two processes")
    with LocalGateway() as gw:
        start = time.time() + 2.0  # both past their imports: they start within a millisecond
        children = [_child(gw, ledger, start, texts) for _ in range(2)]
        outs = [c.communicate(timeout=90) for c in children]
        for child, (_, err) in zip(children, outs, strict=True):
            assert child.returncode == 0, err
        paid = _posts(gw)
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert paid == N  # was 2 * N: each text is asked once, by one of the two
    for result in results:
        assert result["errors"] == 0
        assert all(isinstance(n, str) and n for n in result["names"])
    answered = [f for r in results for f in r["from"]]
    assert answered.count("request") == N and answered.count("ledger") == N
    with Ledger(ledger) as book:
        assert len(book.rows()) == N  # one record per text


def test_two_threads_of_one_process_share_the_answers(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    texts = _texts(" threads")
    frames: list[pd.DataFrame] = []
    with LocalGateway() as gw:
        config = KoineConfig(base_url=gw.base_url, auth_key=gw.auth_key)
        barrier = threading.Barrier(2)

        def run() -> None:
            barrier.wait()
            frames.append(extract(texts, Person, client=config, ledger=ledger, progress=False))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert _posts(gw) == N
    assert len(frames) == 2
    for df in frames:
        assert df["error"].isna().all()
    both = pd.concat(frames)["answer_from"].value_counts().to_dict()
    assert both == {"request": N, "ledger": N}


def test_the_claims_of_a_killed_run_expire_and_are_taken_over(tmp_path: Path) -> None:
    """A run killed with -9 while its requests hang leaves claims that are not renewed: another
    run waits at most until they expire (KOINE_CLAIM_TTL), then asks for those rows itself."""
    ledger = tmp_path / "l.sqlite3"
    texts = [f"person {i} killed" for i in range(5)]
    with LocalGateway(first_byte_delay=60) as stuck, LocalGateway() as gw:
        env = {**os.environ, "KOINE_CLAIM_TTL": "1.5"}
        owner = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(stuck.base_url), stuck.auth_key or "",
             str(ledger), "0", json.dumps(texts)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while _posts(stuck) < len(texts) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _posts(stuck) == len(texts), "the first run never sent its requests"
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait(10)
        started = time.monotonic()
        df = extract(
            texts,
            Person,
            client=KoineConfig(base_url=gw.base_url, auth_key=gw.auth_key),
            ledger=ledger,
            progress=False,
        )
        waited = time.monotonic() - started
        assert _posts(gw) == len(texts)
    assert df["error"].isna().all() and (df["answer_from"] == "request").all()
    # It waited for the dead run's claims (1.5 s past their last renewal, a third of that
    # before the kill at most), then asked; nothing waits forever.
    assert 0.5 < waited < 10
