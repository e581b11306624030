"""``koine`` through its real entry point (the installed script) in a subprocess, against the
local gateway over loopback HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from koine_sdk.ledger import Ledger

KOINE = shutil.which("koine", path=os.path.dirname(sys.executable)) or "koine"

MODELS = """\
from pydantic import BaseModel


class Company(BaseModel):
    name: str
    city: str
"""


@pytest.fixture
def cli_env(gw: Any, tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "key"
    key.write_text(gw.auth_key)
    (tmp_path / "models.py").write_text(MODELS)
    env = dict(os.environ)
    env.update(
        KOINE_BASE_URL=gw.base_url,
        KOINE_AUTH_KEY=gw.auth_key,
        KOINE_LEDGER=str(tmp_path / "ledger.sqlite3"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    return env


RESULT_TAIL = ["error", "input_tokens", "output_tokens", "attempts", "answer_from"]


def write_input(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


def koine(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KOINE, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_ask_streams_and_adds_stdin(cli_env: dict[str, str], gw: Any) -> None:
    done = koine(cli_env, "ask", "Summarize", stdin="notes from the pipe\n")
    assert done.returncode == 0, done.stderr
    assert "Summarize" in done.stdout and "notes from the pipe" in done.stdout
    assert gw.requests[-1].path == "/stream"


def test_ask_json_then_continue_keeps_the_session(
    cli_env: dict[str, str], gw: Any, tmp_path: Path
) -> None:
    first = koine(cli_env, "ask", "--json", "first question")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["answer"] and doc["usage"]["total_tokens"] > 0 and doc["session"]
    state = next((tmp_path / "state").rglob("cli-session.json"))
    assert state.stat().st_mode & 0o777 == 0o600
    second = koine(cli_env, "ask", "--continue", "second question")
    assert second.returncode == 0, second.stderr
    assert gw.requests[-1].json["sessionId"] == doc["session"]
    assert "first question" in second.stdout  # the echo model repeats the session's history


def test_ask_schema_prints_the_object(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = koine(cli_env, "ask", "--schema", "models:Company", "Acme in Paris", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"name", "city"}
    schema = tmp_path / "company.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"name": {"type": "string"}}}))
    done = koine(cli_env, "ask", "--schema", str(schema), "Acme")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"name"}


@pytest.mark.parametrize("source", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("target", ["csv", "jsonl", "parquet"])
def test_extract_every_format_and_a_second_run_pays_nothing(
    cli_env: dict[str, str], gw: Any, tmp_path: Path, source: str, target: str
) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "text": ["Acme, Paris", "Foo, Rome", "Bar, Oslo"]})
    src, out = tmp_path / f"in.{source}", tmp_path / f"out.{target}"
    write_input(frame, src)
    args = ("extract", str(src), "-o", str(out), "--schema", "models:Company", "--column", "text")
    done = koine(cli_env, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert gw.wait_for_requests(3)
    result = read_output(out)
    assert list(result.columns) == ["id", "text", "name", "city", *RESULT_TAIL]
    assert [str(v) for v in result["id"]] == ["1", "2", "3"]
    assert result["text"].tolist() == frame["text"].tolist()
    assert "3 ok, 0 failed" in done.stderr
    before = len(gw.requests)
    again = koine(cli_env, *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(gw.requests) == before  # counted at the gateway: nothing sent
    assert "3 from the ledger, 0 tokens paid" in again.stderr


def test_failed_rows_are_kept_with_their_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    pd.DataFrame({"text": ["Acme, Paris", ""]}).to_csv(tmp_path / "in.csv", index=False)
    done = koine(
        cli_env, "extract", "in.csv", "-o", "out.jsonl", "--schema", "models:Company", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert len(result) == 2 and str(result["error"][1]).startswith("INVALID_ARGUMENT")


def test_ledger_subcommands(cli_env: dict[str, str], tmp_path: Path) -> None:
    pd.DataFrame({"text": ["Acme, Paris"]}).to_csv(tmp_path / "in.csv", index=False)
    koine(cli_env, "extract", "in.csv", "-o", "o.csv", "--schema", "models:Company", cwd=tmp_path)
    path = koine(cli_env, "ledger", "path")
    assert path.stdout.strip() == cli_env["KOINE_LEDGER"]
    status = koine(cli_env, "ledger", "status")
    assert "runs: 1" in status.stdout and "requests: 1 (1 ok, 0 failed)" in status.stdout
    history = koine(cli_env, "ledger", "history")
    assert history.returncode == 0 and "extract" in history.stdout
    export = koine(cli_env, "ledger", "export")
    (row,) = [json.loads(line) for line in export.stdout.splitlines()]
    assert "Acme, Paris" in row["prompt"] and row["status"] == "ok"
    refused = koine(cli_env, "ledger", "clear")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert koine(cli_env, "ledger", "clear", "--yes").returncode == 0
    assert "requests: 0" in koine(cli_env, "ledger", "status").stdout


def test_health(cli_env: dict[str, str]) -> None:
    done = koine(cli_env, "health")
    assert done.returncode == 0 and "healthy" in done.stdout


def test_key_file_and_koine_errors_exit_1_with_one_message(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(cli_env, KOINE_AUTH_KEY="")
    assert koine(env, "health", "--auth-key-file", str(tmp_path / "key")).returncode == 0
    (tmp_path / "bad").write_text("wrong-key")
    done = koine(env, "ask", "--auth-key-file", str(tmp_path / "bad"), "hi")
    assert done.returncode == 1
    assert done.stderr.count("AUTH_INVALID") == 1 and "Traceback" not in done.stderr
    assert "wrong-key" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--column", "nope"), "no column 'nope'"),
        (("-o", "out.txt"), "unknown extension '.txt'"),
        (("--input", "missing.csv"), "cannot read it"),
        (("--schema", "nowhere.json"), "--schema nowhere.json: cannot read it"),
        (("--schema", "no_such_module:Model"), "cannot import 'no_such_module'"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_sent(
    cli_env: dict[str, str], gw: Any, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    pd.DataFrame({"text": ["Acme"]}).to_csv(tmp_path / "in.csv", index=False)
    options = {"--input": "in.csv", "-o": "out.csv", "--schema": "models:Company"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    source = options.pop("--input")
    flat = [item for pair in options.items() for item in pair]
    done = koine(cli_env, "extract", source, *flat, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert gw.requests == []


def test_ctrl_c_exits_130_and_keeps_what_was_paid(
    cli_env: dict[str, str], gw: Any, tmp_path: Path
) -> None:
    gw.configure(first_byte_delay=0.4)
    texts = [f"Company {i}, City {i}" for i in range(40)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    proc = subprocess.Popen(
        [KOINE, "extract", "in.csv", "-o", "out.csv", "--schema", "models:Company",
         "--concurrency", "2"],
        env=cli_env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gw.wait_for_requests(4, timeout=30)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert took < 2.5, took
    with Ledger(cli_env["KOINE_LEDGER"]) as ledger:
        kept = len(ledger.rows(status="ok"))
    assert 0 < kept < len(texts)
    result = pd.read_csv(tmp_path / "out.csv")
    assert len(result) == len(texts)
    assert result["error"].fillna("").str.startswith("INTERRUPTED").sum() > 0


def test_the_tour_and_koine_say_the_hint_once(cli_env: dict[str, str]) -> None:
    env = dict(cli_env, KOINE_BASE_URL="http://127.0.0.1:9")
    tour = subprocess.run(
        [sys.executable, "-m", "koine_sdk"], capture_output=True, text=True, env=env, timeout=60
    )
    assert tour.returncode == 1
    assert tour.stderr.lower().count("is it running at base_url") == 1, tour.stderr
    done = koine(env, "health")
    assert done.returncode == 1
    assert done.stderr.lower().count("is it running at base_url") == 1, done.stderr


def test_koine_help_and_gateway_help(cli_env: dict[str, str]) -> None:
    done = koine(cli_env, "--help")
    assert done.returncode == 0
    for command in ("ask", "extract", "classify", "generate", "ledger", "health", "gateway"):
        assert command in done.stdout
    gateway = koine(cli_env, "gateway", "--help")
    assert gateway.returncode == 0 and "koine gateway" in gateway.stdout
    assert koine(cli_env, "ask", "--nope").returncode == 2


def test_classify_and_generate_over_files(cli_env: dict[str, str], gw: Any, tmp_path: Path) -> None:
    pd.DataFrame({"text": ["I love it", "Broken on arrival"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    done = koine(
        cli_env, "classify", "in.csv", "-o", "labels.jsonl", "--labels", "positive,negative",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    labels = pd.read_json(tmp_path / "labels.jsonl", lines=True)
    assert len(labels) == 2 and set(labels["label"]) <= {"positive", "negative"}
    assert labels["error"].isna().all()
    done = koine(
        cli_env, "generate", "in.csv", "-o", "out.parquet", "--prompt", "Reply to: {text}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = pd.read_parquet(tmp_path / "out.parquet")
    assert answers["text"].tolist() == ["I love it", "Broken on arrival"]  # the input's
    assert [t.startswith("Echo: Reply to:") for t in answers["koine_text"]] == [True, True]
    before = len(gw.requests)
    no_slot = koine(
        cli_env, "generate", "in.csv", "-o", "o.csv", "--prompt", "no slot", cwd=tmp_path
    )
    assert no_slot.returncode == 2 and len(no_slot.stderr.strip().splitlines()) == 1
    assert len(gw.requests) == before


def test_gateway_without_the_testing_extra_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = sys.modules['starlette'] = None\n"
        "from koine_sdk.cli import main; sys.exit(main(['gateway', '--port', '0']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "pip install 'koine-sdk[testing]'" in done.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_verb_keeps_the_input_columns_and_row_order(
    cli_env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    # The first row answers last (a delay), so the order of the answers is not the input's.
    texts = ["slow one [[delay=0.5]]", "quick two", "quick three", "quick four"]
    frame = pd.DataFrame({"id": [40, 10, 30, 20], "text": texts, "note": ["a", "b", "c", "d"]})
    src = tmp_path / f"in.{fmt}"
    write_input(frame, src)
    verbs = {
        "extract": (["--schema", "models:Company"], ["name", "city"]),
        "classify": (["--labels", "yes,no", "--reason"], ["label", "reason"]),
        "generate": (["--prompt", "Say: {text}"], ["koine_text"]),  # the input has a text
    }
    for verb, (args, columns) in verbs.items():
        out = tmp_path / f"{verb}.{fmt}"
        done = koine(
            cli_env, verb, str(src), "-o", str(out), "--concurrency", "4", *args, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        result = read_output(out)
        assert list(result.columns) == ["id", "text", "note", *columns, *RESULT_TAIL], verb
        assert [int(v) for v in result["id"]] == [40, 10, 30, 20], verb
        assert result["note"].tolist() == ["a", "b", "c", "d"], verb
        assert result["error"].isna().all(), (verb, result["error"].tolist())
    answers = read_output(tmp_path / f"generate.{fmt}")
    said = [t.replace(" [[delay=0.5]]", "") for t in texts]  # the echo drops the directive
    assert answers["koine_text"].tolist() == [f"Echo: Say: {t}" for t in said]  # row by row


def test_result_columns_named_like_input_columns_get_the_prefix(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    frame = pd.DataFrame({"text": ["I love it", "bad [[fail]]"], "label": ["x", "y"]})
    frame["error"] = ["earlier error", ""]
    frame.to_csv(tmp_path / "in.csv", index=False)
    done = koine(
        cli_env, "classify", "in.csv", "-o", "out.jsonl", "--labels", "positive,negative",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 rows -> out.jsonl: 1 ok, 1 failed" in done.stderr  # the result's errors only
    result = read_output(tmp_path / "out.jsonl")
    assert list(result.columns[:5]) == ["text", "label", "error", "koine_label", "koine_error"]
    assert result["label"].tolist() == ["x", "y"] and result["error"][0] == "earlier error"
    assert result["koine_label"][0] in ("positive", "negative")
    assert pd.isna(result["koine_error"][0]) and "CLI_EXIT_ERROR" in result["koine_error"][1]


def test_a_result_column_without_a_free_name_is_refused_before_sending(
    cli_env: dict[str, str], gw: Any, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"text": ["hello"], "koine_text": ["from an earlier run"]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    done = koine(
        cli_env, "generate", "in.csv", "-o", "out.csv", "--prompt", "Say: {text}", cwd=tmp_path
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "has columns 'text' and 'koine_text'" in done.stderr and "rename" in done.stderr
    assert gw.requests == []  # not even /health
    assert not (tmp_path / "out.csv").exists()


def test_a_parquet_named_index_is_kept_and_an_unwritable_table_is_refused(
    cli_env: dict[str, str], gw: Any, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"text": ["Acme, Paris", "Foo, Rome"]}, index=pd.Index([7, 3], name="id"))
    frame["mixed"] = [1, "one"]  # a column Parquet cannot hold (an int and a str)
    frame[["text"]].to_parquet(tmp_path / "in.parquet")  # the index is stored, named
    done = koine(
        cli_env, "generate", "in.parquet", "-o", "out.csv", "--prompt", "Say: {text}", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = pd.read_csv(tmp_path / "out.csv")
    assert list(result.columns[:3]) == ["id", "text", "koine_text"]
    assert result["id"].tolist() == [7, 3]
    frame.to_json(tmp_path / "mixed.jsonl", orient="records", lines=True)
    before = len(gw.requests)
    done = koine(
        cli_env, "generate", "mixed.jsonl", "-o", "out.parquet", "--prompt", "Say: {text}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "the input's columns cannot go into Parquet" in done.stderr
    assert len(gw.requests) == before  # refused before anything was sent
