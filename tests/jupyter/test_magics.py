"""``%%koine`` / ``%koine`` in a real IPython shell (no kernel: text mode, or forced display
modes captured with IPython's capture_output) against the local gateway."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest
from _html import answer_text
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from pydantic import BaseModel

from koine_jupyter.views import KoineAnswer


def run(ip: InteractiveShell, cell: str) -> Any:
    result = ip.run_cell(cell, store_history=True)
    return result


def test_text_mode_prints_the_answer_as_it_streams(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(ip, "%%koine --out answer\nHello there [[chunks=6]]")
    assert result.success
    out = capsys.readouterr().out
    assert "Echo: Hello there" in out
    assert out.count("Echo: Hello there") == 1  # printed once, not again as Out[n]
    answer = ip.user_ns["answer"]
    assert isinstance(answer, KoineAnswer)
    assert answer.text == "Echo: Hello there"
    assert answer.usage is not None and answer.session_id
    assert ip.user_ns["_"] is answer


def test_display_handle_mode_updates_then_returns_the_answer(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "KoineMagics.display = 'markdown'")
    with capture_output() as cap:
        result = run(
            ip, "%%koine\n[[chunks=20]] [[slow=0.04]] " + " ".join(f"w{i}" for i in range(20))
        )
    assert result.success
    answer = result.result
    assert isinstance(answer, KoineAnswer)
    texts = [answer_text(o.data.get("text/html", "")) for o in cap.outputs]
    assert cap.outputs[0].data == {"text/plain": ""}
    assert cap.outputs[-1].data == {"text/plain": ""}
    growing = [t for t in texts if t.startswith("Echo")]
    assert len(set(growing)) >= 3  # several live updates before completion
    assert all(answer.text.startswith(t) for t in growing)  # each one a start of the answer
    assert answer.text == "Echo: " + " ".join(f"w{i}" for i in range(20))
    assert answer._repr_mimebundle_()[0] == {"text/html": f"<p>{answer.text}</p>\n"}


def test_interpolation_of_names_and_earlier_answers(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["topic"] = "SSE"
    first = run(ip, "%%koine\nAbout {topic}")
    n = first.execution_count
    second = run(ip, f'%%koine --out answer\nQuote {{Out[{n}]}} and {{"json": {{"kept": 1}}}}')
    assert second.success
    assert ip.user_ns["answer"].text == 'Echo: Quote Echo: About SSE and {"json": {"kept": 1}}'
    raw = run(ip, "%%koine --no-interpolate --out answer\nAbout {topic}")
    assert raw.success
    assert ip.user_ns["answer"].text == "Echo: About {topic}"
    capsys.readouterr()


def test_sessions_continue_and_start_over(ip: InteractiveShell) -> None:
    run(ip, "%%koine --session chat --quiet\nfirst")
    run(ip, "%%koine --session chat --out answer --quiet\nsecond [[history]]")
    assert ip.user_ns["answer"].text.endswith("history: first")
    run(ip, "%%koine --session chat --new --out answer --quiet\nthird [[history]]")
    assert "history" not in ip.user_ns["answer"].text or ip.user_ns["answer"].text.endswith(
        "history: "
    )
    store = ip.run_line_magic("koine", "sessions")
    assert [r.name for r in store] == ["chat"]
    assert store.get("chat").turns == 1  # --new started it over
    run(ip, "%%koine --out answer --quiet\nstateless [[history]]")
    assert "chat" in store
    ip.run_line_magic("koine", "sessions --clear chat")
    assert len(store) == 0


def _error_text(
    ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]
) -> tuple[Any, str]:
    result = run(ip, cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def test_wrong_key_is_a_short_message_without_the_key(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "not-the-key-4f1c9b"
    monkeypatch.setenv("KOINE_AUTH_KEY", secret)
    result, text = _error_text(ip, "%%koine\nhello", capsys)
    assert not result.success
    assert result.error_in_exec.code == "AUTH_INVALID"
    assert "AUTH_INVALID" in text and "KOINE_AUTH_KEY" in text
    assert secret not in text
    assert "Traceback" not in text
    assert sys.last_value is result.error_in_exec  # %tb has it
    with capture_output() as cap:
        ip.run_line_magic("tb", "")
    assert secret not in cap.stdout + cap.stderr


def test_busy_gateway_says_when_to_retry(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result, text = _error_text(ip, "%%koine\nhello [[status=429]]", capsys)
    assert result.error_in_exec.code == "CONCURRENCY_LIMIT_ERROR"
    assert "busy" in text and "run the cell again in 5 s" in text
    assert "max_retries" in text


def test_gateway_down(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ip.run_line_magic("config", f"KoineMagics.base_url = 'http://127.0.0.1:{port}'")
    result, text = _error_text(ip, "%%koine\nhello", capsys)
    assert result.error_in_exec.code == "NETWORK_ERROR"
    assert f"http://127.0.0.1:{port}" in text and "%koine connect" in text


def test_tool_not_allowed(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    koine_gateway.configure(allowed_tools=("Read",))
    result, text = _error_text(ip, "%%koine --tools Bash\nhello", capsys)
    assert result.error_in_exec.code == "NO_TOOLS_AVAILABLE"
    assert "--tools" in text


def test_connect_with_key_env_and_status(
    ip: InteractiveShell,
    koine_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("KOINE_AUTH_KEY")
    monkeypatch.setenv("MY_GATEWAY_KEY", koine_gateway.auth_key)
    ip.run_line_magic("koine", f"connect {koine_gateway.base_url} --key-env MY_GATEWAY_KEY")
    ip.run_line_magic("koine", "status")
    out = capsys.readouterr().out
    assert "MY_GATEWAY_KEY" in out and koine_gateway.auth_key not in out
    assert run(ip, "%%koine --quiet --out answer\nhi").success
    assert ip.user_ns["answer"].text == "Echo: hi"


def test_connect_local_and_health(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("koine", "connect --local")
    report = ip.run_line_magic("koine", "health")
    assert "healthy" in repr(report)
    answer = ip.run_line_magic("koine", "--format text what's up? (unbalanced quote)")
    assert answer is None  # text mode printed it
    assert "Echo: what's up? (unbalanced quote)" in capsys.readouterr().out
    ip.run_line_magic("koine", "disconnect")


def test_connect_auto_uses_the_environment_or_starts_a_local_gateway(
    ip: InteractiveShell,
    koine_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    from koine_sdk import create_koine_sync

    monkeypatch.setenv("KOINE_BASE_URL", koine_gateway.base_url)
    monkeypatch.setenv("KOINE_AUTH_KEY", koine_gateway.auth_key)
    ip.run_line_magic("koine", "connect --auto")
    assert run(ip, "%%koine --quiet --out a\nfrom env").success
    assert koine_gateway.requests[-1].json["prompt"].strip() == "from env"
    out = capsys.readouterr().out
    assert koine_gateway.auth_key not in out

    monkeypatch.delenv("KOINE_BASE_URL")
    monkeypatch.delenv("KOINE_AUTH_KEY")
    ip.run_line_magic("koine", "connect --auto")
    local_url = os.environ["KOINE_BASE_URL"]
    assert local_url != koine_gateway.base_url
    # SDK code in later cells finds the same local gateway through the environment
    with create_koine_sync() as koine:
        assert koine.generate_text(prompt="sdk").text == "Echo: sdk"
    out = capsys.readouterr().out
    assert os.environ["KOINE_AUTH_KEY"] not in out
    ip.run_line_magic("koine", "disconnect")
    assert "KOINE_BASE_URL" not in os.environ and "KOINE_AUTH_KEY" not in os.environ


def test_schema_streams_fields_and_returns_the_object(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    class Step(BaseModel):
        text: str
        minutes: int

    class Recipe(BaseModel):
        title: str
        steps: list[Step]

    ip.user_ns["Recipe"] = Recipe
    result = run(ip, "%%koine --schema Recipe --out r\n[[items=3]] [[slow=0.01]] pancakes")
    assert result.success
    assert isinstance(ip.user_ns["r"], Recipe)
    out = capsys.readouterr().out
    assert "title: " in out and "steps[2].minutes: " in out


def test_df_builds_a_dataframe(ip: InteractiveShell) -> None:
    class Address(BaseModel):
        city: str
        zip: int

    class Person(BaseModel):
        name: str
        age: int
        address: Address

    ip.user_ns["Person"] = Person
    result = run(
        ip, "%%koine --schema list[Person] --df --out df --display markdown\n[[items=4]] people"
    )
    assert result.success, result.error_in_exec
    df = ip.user_ns["df"]
    assert list(df.columns) == ["name", "age", "address.city", "address.zip"]
    assert len(df) == 4
    assert str(df["age"].dtype) == "int64"


def test_validation_error_shows_the_raw_json(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    class City(BaseModel):
        name: str
        population: int

    ip.user_ns["City"] = City
    result, text = _error_text(ip, "%%koine --schema City\n[[invalid-object]] a city", capsys)
    assert result.error_in_exec.code == "VALIDATION_ERROR"
    assert "The JSON received for City" in text
    assert result.error_in_exec.raw_text in text


def test_usage_errors(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError):
        ip.run_cell_magic("koine", "--new", "hi")
    with pytest.raises(UsageError):
        ip.run_cell_magic("koine", "--schema Nope", "hi")
    with pytest.raises(UsageError):
        ip.run_cell_magic("koine", "--df", "hi")


def test_help_lists_the_options(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("koine", "--help")
    out = capsys.readouterr().out
    for option in ("--system", "--tools", "--session", "--format", "--schema", "--df", "--timeout"):
        assert option in out


def test_config_and_reload(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "KoineMagics.model = 'haiku'")
    magics = next(c for c in ip.configurables if type(c).__name__ == "KoineMagics")
    assert magics.model == "haiku"  # type: ignore[attr-defined]
    ip.run_line_magic("load_ext", "koine_jupyter")  # idempotent
    assert sum(type(c).__name__ == "KoineMagics" for c in ip.configurables) == 1
    ip.run_line_magic("unload_ext", "koine_jupyter")
    assert "koine" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "koine_jupyter")
    assert "koine" in ip.magics_manager.magics["cell"]


@pytest.mark.parametrize("display", ["text", "markdown", "widget"])
def test_a_complete_stream_without_result_is_an_answer_without_usage(
    ip: InteractiveShell, koine_gateway: Any, display: str
) -> None:
    # ``done`` code 0 but no ``result`` event: the text is complete (nothing is lost), only the
    # usage and the resumable session id are missing, so the cell succeeds without them.
    from koine_sdk.testing import Fault

    ip.run_line_magic("config", f"KoineMagics.display = {display!r}")
    koine_gateway.inject(Fault.no_result())
    with capture_output():
        result = run(ip, "%%koine --out answer\nno result here")
    assert result.success, result.error_in_exec
    answer = ip.user_ns["answer"]
    assert answer.text == "Echo: no result here" and answer.complete
    assert answer.usage is None and answer.session_id is None
