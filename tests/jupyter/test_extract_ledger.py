"""The ledger under extract: resume after kill -9, retry_failed, history, estimates, fallbacks.

Every test records to a ledger file of its own (``tests/conftest.py`` sets ``KOINE_LEDGER``).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

from koine_jupyter.extraction import BudgetExceededError, estimate, extract, history, retry_failed
from koine_sdk import KoineConfig, KoineError, SyncKoineClient, create_koine_sync
from koine_sdk.ledger import Ledger, LedgerWarning, open_ledger
from koine_sdk.testing import LocalGateway

LIMIT = 2
Factory = Callable[..., LocalGateway]


class Item(BaseModel):
    city: str
    zip: int


@pytest.fixture
def gw(koine_gateway: LocalGateway) -> LocalGateway:
    koine_gateway.configure(max_nonstreaming=LIMIT)
    return koine_gateway


@pytest.fixture
def client(gw: LocalGateway) -> Iterator[SyncKoineClient]:
    c = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    yield c
    c.close()


def object_requests(gw: LocalGateway) -> int:
    return sum(1 for r in gw.requests if r.path == "/generate-object")


# -- resume after kill -9 ----------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from pydantic import BaseModel
    from koine_jupyter import extract

    class Item(BaseModel):
        city: str
        zip: int

    texts = [f"row {i} [[delay=0.1]]" for i in range(int(sys.argv[1]))]
    extract(texts, Item, progress=False)
    print("finished", flush=True)
    """
)


@pytest.mark.filterwarnings("error::koine_sdk.ledger.LedgerWarning")
def test_rerun_after_kill_9_requests_only_rows_without_an_answer(
    koine_gateway_factory: Factory, tmp_path: Path
) -> None:
    # Counted exactly, also under load: the ledger is read from its file or the test fails
    # (open_ledger's fallback, the process's in-memory ledger, would count another ledger's
    # rows: an in-flight count of -1 was seen), and the re-run talks to a gateway of its own (a
    # request the killed child had already written to its socket can still be read by the first
    # gateway after the kill, and must not count as the re-run's).
    n = 40
    g = koine_gateway_factory(max_nonstreaming=LIMIT)
    ledger_file = tmp_path / "resume.sqlite3"
    env = {
        **os.environ,
        "KOINE_BASE_URL": g.base_url,
        "KOINE_AUTH_KEY": g.auth_key,
        "KOINE_LEDGER": str(ledger_file),
    }
    with (tmp_path / "child.stderr").open("w+b") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(n)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            started = g.wait_for_requests(12, timeout=60)
            child.send_signal(signal.SIGKILL)  # no cleanup, no atexit, no finally
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        errors.seek(0)
        assert started, errors.read().decode(errors="replace")
    assert child.returncode == -signal.SIGKILL
    sent_by_child = object_requests(g)
    with Ledger(ledger_file) as ledger:
        rows_done = len(ledger.rows())
    assert 0 < rows_done < n
    in_flight_at_kill = sent_by_child - rows_done  # received, never answered to the child
    assert 0 <= in_flight_at_kill <= LIMIT, (sent_by_child, rows_done)

    g2 = koine_gateway_factory(max_nonstreaming=LIMIT)
    with create_koine_sync(base_url=g2.base_url, auth_key=g2.auth_key) as c:
        texts = [f"row {i} [[delay=0.1]]" for i in range(n)]
        with Ledger(ledger_file) as ledger:
            df = extract(texts, Item, client=c, ledger=ledger, progress=False)
    assert df["error"].isna().all()
    assert object_requests(g2) == n - rows_done  # the re-run sent exactly the missing rows
    assert (df["answer_from"] == "ledger").sum() == rows_done
    runs = history(ledger=ledger_file)
    assert runs["status"].tolist() == ["done", "running"]  # newest first; the killed one


# -- retry_failed, history ------------------------------------------------------------------


def test_retry_failed_resends_only_the_failed_rows(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    texts = [f"ok {i}" for i in range(6)] + ["bad [[fail]]", "bad too [[fail]]", "", "late"]
    first = extract(texts, Item, client=client, max_rows=8, progress=False)
    assert first["error"].notna().tolist() == [False] * 6 + [True, True, True, True]
    assert first.loc[9, "error"].startswith("BUDGET_EXCEEDED")
    assert object_requests(gw) == 8
    again = retry_failed(first, progress=False)
    assert object_requests(gw) == 8 + 2  # the two failed rows; not the blank, not the unsent
    assert again["error"].iloc[6:8].str.startswith("CLI_EXIT_ERROR").all()
    assert again["answer_from"].iloc[:6].eq("ledger").all()
    assert again.loc[8, "error"].startswith("INVALID_ARGUMENT")
    assert again.loc[9, "error"].startswith("BUDGET_EXCEEDED")
    assert again["input_tokens"].iloc[:6].eq(0).all()
    with pytest.raises(KoineError, match="does not know"):
        retry_failed(pd.DataFrame({"error": []}))


def test_history_reads_runs_and_requests(gw: LocalGateway, client: SyncKoineClient) -> None:
    df = extract(["h1", "h2", "h3 [[fail]]"], Item, "Find: {text}", client=client, progress=False)
    runs = history()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "done" and run["rows"] == 3 and run["requests"] == 3
    assert run["prompt"] == "Find: {text}" and run["schema"] == "Item"
    assert run["input_tokens"] == df.attrs["koine"]["input_tokens"]
    rows = history("last")
    assert rows["prompt"].tolist() == ["Find: h1", "Find: h2", "Find: h3 [[fail]]"] or sorted(
        rows["prompt"].tolist()
    ) == ["Find: h1", "Find: h2", "Find: h3 [[fail]]"]
    assert sorted(rows["status"].tolist()) == ["failed", "ok", "ok"]
    ok = rows[rows["status"] == "ok"]
    assert ok["answer"].str.startswith("{").all()
    assert rows["input_tokens"].sum() == df["input_tokens"].sum()
    assert rows["error"].dropna().str.startswith("CLI_EXIT_ERROR: ").all()
    assert (rows["seconds"] >= 0).all()
    assert len(history("last", status="failed")) == 1


def test_ledger_false_and_off_keep_answers_in_this_process(
    gw: LocalGateway, client: SyncKoineClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from koine_jupyter.extraction import clear_cache

    clear_cache()
    extract(["mem 1"], Item, client=client, ledger=False, progress=False)
    again = extract(["mem 1"], Item, client=client, ledger=False, progress=False)
    assert object_requests(gw) == 1 and again.attrs["koine"]["ledger"] == ":memory:"
    clear_cache()
    extract(["mem 1"], Item, client=client, ledger=False, progress=False)
    assert object_requests(gw) == 2
    monkeypatch.setenv("KOINE_LEDGER", "off")
    df = extract(["mem 2"], Item, client=client, progress=False)
    assert df.attrs["koine"]["ledger"] == ":memory:"
    assert not list(tmp_path.glob("*.sqlite3"))  # nothing was written to a file


def test_a_corrupt_ledger_file_warns_and_the_run_goes_on(
    gw: LocalGateway, client: SyncKoineClient, tmp_path: Path
) -> None:
    bad = tmp_path / "corrupt.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.warns(LedgerWarning, match="cannot be used"):
        df = extract(["c1", "c2"], Item, client=client, ledger=bad, progress=False)
    assert df["error"].isna().all()
    assert df.attrs["koine"]["ledger"] == ":memory:"
    with pytest.raises(KoineError) as info:
        Ledger(bad)
    assert info.value.code == "LEDGER_ERROR" and str(bad) in info.value.message
    assert bad.read_bytes().startswith(b"this is not")  # left as it was


def test_config_and_list_of_configs_as_client(gw: LocalGateway) -> None:
    config = KoineConfig(base_url=gw.base_url, auth_key=gw.auth_key)
    df = extract(["cfg 1", "cfg 2"], Item, client=config, progress=False)
    assert df["error"].isna().all()
    df = extract(["cfg 3", "cfg 4"], Item, client=[config, config], progress=False)
    assert df["error"].isna().all() and len(df.attrs["koine"]["gateways"]) == 2
    assert object_requests(gw) == 4


# -- estimate before spending ------------------------------------------------------------------


def test_estimate_projects_from_a_sample_that_is_not_paid_twice(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    texts = [f"estimate {i}" for i in range(30)]
    est = estimate(texts, Item, client=client, sample=5)
    assert object_requests(gw) == 5
    assert est.sampled == 5 and est.remaining == 25 and not est.from_ledger
    assert est.tokens_per_request > 0
    assert est.total_tokens == est.spent_tokens + round(25 * est.tokens_per_request)
    assert "Estimate from 5 sampled requests" in str(est)
    df = extract(texts, Item, client=client, progress=False)
    assert object_requests(gw) == 30  # the 5 sampled rows came from the ledger
    assert (df["answer_from"] == "ledger").sum() == 5
    spent = int(df["input_tokens"].sum() + df["output_tokens"].sum())
    assert abs(spent + est.spent_tokens - est.total_tokens) <= 0.2 * est.total_tokens


def test_sample_with_a_budget_stops_before_spending_it(
    gw: LocalGateway, client: SyncKoineClient, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"budget {i}" for i in range(40)]
    with pytest.raises(KoineError) as info:
        extract(texts, Item, client=client, sample=4, max_tokens=500, progress="text")
    assert info.value.code == "BUDGET_EXCEEDED"
    assert "projected" in info.value.message
    # a typed error carrying the projection (not an attribute stuck on afterwards)
    assert isinstance(info.value, BudgetExceededError)
    assert info.value.estimate.total_tokens > 500
    assert pickle.loads(pickle.dumps(info.value)).estimate == info.value.estimate
    assert object_requests(gw) == 4  # the sample only
    df = extract.__dict__["last_result"]
    assert df["error"].isna().sum() == 4
    assert df["error"].dropna().str.startswith("BUDGET_EXCEEDED: projected").all()
    assert "Estimate from 4 sampled requests" in capsys.readouterr().out  # shown, then stopped
    ok = extract(texts[:6], Item, client=client, sample=2, max_tokens=10**6, progress="text")
    assert ok["error"].isna().all()
    assert "Estimate from 2 sampled requests" in capsys.readouterr().out
    # The sample is spread over the input (rows 0, 10, 20, 30): row 0 is answered already.
    assert object_requests(gw) == 4 + 5


def test_history_magic_shows_runs(gw: LocalGateway, client: SyncKoineClient) -> None:
    from IPython.testing.globalipapp import get_ipython

    extract(["magic history"], Item, client=client, progress=False)
    ip = get_ipython()
    ip.run_line_magic("load_ext", "koine_jupyter")
    runs = ip.run_line_magic("koine", "history")
    assert isinstance(runs, pd.DataFrame) and runs["rows"].tolist() == [1]
    rows = ip.run_line_magic("koine", "history last")
    assert rows["prompt"].str.contains("magic history").all()
    assert ip.run_line_magic("koine", "history last --failed").empty
    assert len(ip.run_line_magic("koine", "history --limit 1")) == 1
    from IPython.core.error import UsageError

    with pytest.raises(UsageError):
        ip.run_line_magic("koine", "history --failed")  # which run?


def test_several_threads_extracting_into_one_ledger_lose_nothing(gw: LocalGateway) -> None:
    import concurrent.futures

    gw.configure(max_nonstreaming=8)

    def work(k: int) -> int:
        with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as c:
            df = extract([f"t{k}-{i}" for i in range(15)], Item, client=c, progress=False)
        return int(df["error"].isna().sum())

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(4))) == [15] * 4
    assert time.perf_counter() - started < 60
    assert len(history("last")) == 15 and len(open_ledger().rows()) == 60


# -- repairs (the SDK's generate_object(repairs=N)) -----------------------------------------


def test_repairs_fix_an_invalid_object_and_count_every_attempt(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    from koine_sdk.testing import Fault

    gw.enqueue(Fault.invalid_object())  # the first answer breaks the schema, the repair not
    df = extract(["repair me"], Item, client=client, repairs=1, progress=False)
    assert df["error"].isna().all() and df.loc[0, "attempts"] == 2
    assert object_requests(gw) == 2
    assert df["input_tokens"].sum() == df.attrs["koine"]["input_tokens"]
    assert history("last")["attempts"].tolist() == [2]


def test_exhausted_repairs_fail_the_row_with_the_tokens_paid(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    from koine_sdk.testing import Fault

    gw.enqueue(Fault.invalid_object(), Fault.invalid_object())
    df = extract(["never valid"], Item, client=client, repairs=1, progress=False)
    assert df.loc[0, "error"].startswith("VALIDATION_ERROR")
    assert df.loc[0, "attempts"] == 2 and df.loc[0, "input_tokens"] > 0
    assert df["input_tokens"].sum() == df.attrs["koine"]["input_tokens"]
