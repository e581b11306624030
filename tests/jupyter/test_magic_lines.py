"""What a ``%koine`` line means, what is refused, and what a failed cell leaves behind: in a real
IPython shell against the local gateway."""

from __future__ import annotations

from typing import Any

import pytest
from _html import status_text
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from pydantic import BaseModel

from conftest import magics_of
from koine_jupyter.views import KoineAnswer
from koine_sdk.testing import Fault


def _sent(gateway: Any) -> list[str]:
    return [r.json["prompt"].strip() for r in gateway.requests if r.json and "prompt" in r.json]


# -- subcommands take no free words -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("health benefits of green tea", "health benefits of green tea"),
        ("status of the project", "status of the project"),
        ("connect the dots for me", "connect the dots for me"),
        ("disconnect from work, a poem", "disconnect from work, a poem"),
        ("sessions of a therapist, summarised", "sessions of a therapist, summarised"),
        ("health isn't wealth", "health isn't wealth"),  # unbalanced quote: prose
        ("-- status", "status"),
        ("--format text -- health", "health"),
    ],
)
def test_a_subcommand_with_more_words_is_a_prompt(
    ip: InteractiveShell,
    koine_gateway: Any,
    capsys: pytest.CaptureFixture[str],
    line: str,
    prompt: str,
) -> None:
    ip.run_line_magic("koine", line)
    assert _sent(koine_gateway)[-1] == prompt
    assert f"Echo: {prompt}" in capsys.readouterr().out


def test_options_and_no_prompt_is_an_error_not_status(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for line in ("--model haiku", "--format text", "   "):
        with pytest.raises(UsageError, match="the prompt is empty"):
            ip.run_cell_magic("koine", line, "  \n")
    with pytest.raises(UsageError, match="the prompt is empty"):
        ip.run_line_magic("koine", "--model haiku")
    assert _sent(koine_gateway) == []
    capsys.readouterr()
    ip.run_line_magic("koine", "")  # %koine alone: what is configured
    assert "gateway: http://127.0.0.1:" in capsys.readouterr().out


def test_subcommands_with_their_own_options(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    report = ip.run_line_magic("koine", "--timeout 5 health")
    assert "healthy" in repr(report)
    assert ip.run_line_magic("koine", "health --timeout=5") is not None
    with pytest.raises(UsageError, match=r"%koine -- status"):  # says how to send it instead
        ip.run_line_magic("koine", "--model haiku status")
    with pytest.raises(UsageError, match="unrecognized arguments: --loacl"):
        ip.run_line_magic("koine", "connect --loacl")
    with pytest.raises(UsageError, match="expected one argument"):
        ip.run_line_magic("koine", "health --timeout")
    ip.run_cell("%%koine --session chat --quiet\nhi")
    assert [r.name for r in ip.run_line_magic("koine", "sessions chat")] == ["chat"]
    assert len(ip.run_line_magic("koine", "sessions other")) == 0
    ip.run_line_magic("koine", "sessions chat --clear")
    assert "Forgot 1 session." in capsys.readouterr().out
    assert _sent(koine_gateway) == ["hi"]  # none of these was sent as a prompt


def test_help_lists_prompt_options_and_subcommands(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("koine", "--help")
    out = capsys.readouterr().out
    for needle in ("--schema", "--no-interpolate", "%koine connect URL", "%koine sessions"):
        assert needle in out
    ip.run_line_magic("koine", "connect --help")
    out = capsys.readouterr().out
    assert "--key-env" in out and "--schema" not in out
    ip.run_line_magic("koine", "how do I use --help in argparse")  # a prompt, not help
    assert "Echo: how do I use --help in argparse" in capsys.readouterr().out


# -- no credentials on screen -----------------------------------------------------------------

SECRET = "s3cretPW"


@pytest.mark.parametrize(
    "url",
    [
        f"https://alice:{SECRET}@gateway.example",
        f"http://{SECRET}@gateway.example:3100",
        "ftp://gateway.example",
        "gateway.example:3100",
        f"https://gateway.example/?key={SECRET}",
    ],
)
def test_connect_refuses_credentials_and_other_schemes(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    magics = magics_of(ip)
    with capture_output() as cap:
        result = ip.run_cell(f"%koine connect {url}")
        ip.run_line_magic("koine", "status")
    shown = cap.stdout + cap.stderr + capsys.readouterr().out + repr(cap.outputs)
    assert result.error_in_exec.code == "INVALID_CONFIG"
    assert "INVALID_CONFIG" in shown and "Connected" not in shown
    assert SECRET not in shown
    assert magics.base_url == ""  # nothing was stored: the environment's gateway still works
    assert ip.run_cell("%%koine --quiet --out answer\nstill here").success


@pytest.mark.parametrize("where", ["config", "env"])
def test_configured_credentials_are_masked_and_refused(
    ip: InteractiveShell,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    url = f"https://alice:{SECRET}@gateway.example/v1"
    if where == "env":
        monkeypatch.setenv("KOINE_BASE_URL", url)
    else:
        ip.run_line_magic("config", f"KoineMagics.base_url = {url!r}")
    with capture_output() as cap:
        ip.run_line_magic("koine", "status")
        result = ip.run_cell("%%koine\nhello")
        health = ip.run_cell("%koine health")
    shown = cap.stdout + cap.stderr + capsys.readouterr().out + repr(cap.outputs)
    assert "gateway: https://***@gateway.example/v1" in shown
    assert result.error_in_exec.code == "INVALID_CONFIG"
    assert health.error_in_exec.code == "INVALID_CONFIG"
    assert "embeds credentials" in shown
    assert SECRET not in shown


# -- what a failed cell leaves behind ----------------------------------------------------------


def _run(ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def test_after_a_failure_out_holds_what_arrived_marked_failed(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    koine_gateway.enqueue(Fault.cli_error(after=2))
    result, _ = _run(ip, "%%koine --out answer\none two three four five", capsys)
    assert result.error_in_exec.code == "CLI_EXIT_ERROR"
    answer = ip.user_ns["answer"]
    assert isinstance(answer, KoineAnswer)
    assert answer.text and "Echo: one two three four five".startswith(answer.text)
    assert answer.error is result.error_in_exec and not answer.interrupted
    assert not answer.complete and "failed='CLI_EXIT_ERROR'" in repr(answer)
    # without streaming nothing arrived: an empty answer, still marked (never a stale value)
    result, _ = _run(ip, "%koine --no-stream --out answer [[fail]] again", capsys)
    assert ip.user_ns["answer"].text == "" and ip.user_ns["answer"].error is result.error_in_exec

    class Town(BaseModel):
        name: str

    ip.user_ns["Town"] = Town
    ip.user_ns["r"] = "stale"
    result, _ = _run(ip, "%%koine --schema Town --out r\n[[invalid-object]] a town", capsys)
    assert result.error_in_exec.code == "VALIDATION_ERROR" and ip.user_ns["r"] is None


def test_a_new_session_is_not_told_the_gateway_forgot_it(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result, text = _run(ip, "%%koine --session fresh\n[[fail]] hello", capsys)
    assert result.error_in_exec.code == "CLI_EXIT_ERROR"
    assert "no longer knows" not in text and "try again" in text
    assert _run(ip, "%%koine --session fresh --quiet\nhello", capsys)[0].success
    result, text = _run(ip, "%%koine --session fresh\n[[fail]] more", capsys)
    assert "no longer knows session 'fresh'" in text and "--new" in text


def test_schema_results_print_once_in_a_terminal(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    class Recipe(BaseModel):
        title: str
        steps: list[str]

    ip.user_ns["Recipe"] = Recipe
    result, out = _run(ip, "%%koine --schema Recipe\n[[items=2]] pancakes", capsys)
    assert result.success
    assert out.count("title: ") == 1  # printed while it streamed...
    assert "Recipe(" not in out  # ...and not again as the cell's value
    assert isinstance(ip.user_ns["_"], Recipe)


def test_a_terminal_prints_the_filled_references_once(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["topic"] = "SSE"
    assert ip.run_cell("%%koine\nAbout {topic}, `{topic}` and ${topic}").success
    captured = capsys.readouterr()
    assert captured.err.count("[filled {topic}]") == 1
    assert "Echo: About SSE, `{topic}` and ${topic}" in captured.out


def test_the_status_line_names_the_filled_references(ip: InteractiveShell) -> None:
    ip.user_ns["topic"] = "SSE"
    ip.run_line_magic("config", "KoineMagics.display = 'markdown'")
    with capture_output() as cap:
        result = ip.run_cell("%%koine\n[[chunks=20]] [[slow=0.03]] About {topic} and {nope}")
    assert result.success
    live = [status_text(o.data.get("text/html", "")) for o in cap.outputs]
    assert any("filled {topic}; kept {nope} (not defined)" in text for text in live), live
    assert result.result.references == ("topic",)
    assert result.result.provenance()["references"] == ["topic"]


def test_a_new_subcommand_is_one_handler_and_one_dataclass(
    ip: InteractiveShell, koine_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import dataclass

    from koine_jupyter.magics.args import flag, word
    from koine_jupyter.magics.commands import COMMANDS, command

    @dataclass(frozen=True, slots=True)
    class PingArgs:
        name: str | None = word("Who to ping.", metavar="NAME")
        loud: bool = flag("Shout.")

    calls: list[PingArgs] = []

    @command("ping", PingArgs, "answer pong", "%koine ping [NAME] [--loud]")
    def _ping(magics: Any, args: PingArgs) -> str:
        calls.append(args)
        return "PONG" if args.loud else "pong"

    try:
        assert ip.run_line_magic("koine", "ping") == "pong"
        assert ip.run_line_magic("koine", "ping bob --loud") == "PONG"
        assert calls[-1] == PingArgs(name="bob", loud=True)
        ip.run_line_magic("koine", "ping pong is a table sport")  # too many words: a prompt
        assert _sent(koine_gateway) == ["ping pong is a table sport"]
        ip.run_line_magic("koine", "--help")
        assert "%koine ping [NAME] [--loud]" in capsys.readouterr().out
    finally:
        COMMANDS.pop("ping")
