"""The command line of ``koine`` (argparse only: nothing heavy is imported to parse it)."""

from __future__ import annotations

import argparse

_CONNECT = argparse.ArgumentParser(add_help=False)
_CONNECT.add_argument("--base-url", help="the gateway's URL (default: $KOINE_BASE_URL)")
_CONNECT.add_argument(
    "--auth-key-file",
    metavar="PATH",
    help="a file holding the bearer key (default: $KOINE_AUTH_KEY; never the key itself)",
)
_CONNECT.add_argument("--timeout", type=float, help="seconds to wait for an answer (300)")

_VERBS = {
    "extract": "extract a schema's fields from every row (one column per field)",
    "classify": "give every row one of the --labels",
    "generate": "answer the prompt for every row (one text column)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koine",
        description="The Koine gateway (Claude Code over HTTP) from the shell.",
        epilog="Exit status: 0 ok, 1 a Koine error, 2 bad usage or input, 130 interrupted.",
    )
    subs = parser.add_subparsers(title="commands", metavar="COMMAND")

    ask = subs.add_parser(
        "ask",
        parents=[_CONNECT],
        help="ask one question; the answer streams to the terminal",
        description="Ask one question. Text piped on stdin is added to the prompt.",
    )
    ask.add_argument("prompt", nargs="?", default="", help="the prompt (and/or stdin)")
    ask.add_argument("--system", help="a system prompt")
    ask.add_argument("--model", help="the model (sonnet, haiku, a full name)")
    ask.add_argument(
        "--schema",
        metavar="module:Class|file.json",
        help="answer with an object of this pydantic model or JSON schema (printed as JSON)",
    )
    session = ask.add_mutually_exclusive_group()
    session.add_argument(
        "-c", "--continue", dest="resume", action="store_true", help="continue the last session"
    )
    session.add_argument("--session", metavar="ID", help="continue this session")
    ask.add_argument(
        "--json", action="store_true", help="print one JSON object: answer, usage, session"
    )
    ask.set_defaults(handler="_ask:run")

    for verb, summary in _VERBS.items():
        p = subs.add_parser(
            verb,
            parents=[_CONNECT],
            help=summary,
            description=(
                f"{summary[0].upper()}{summary[1:]}. Files: .csv, .jsonl/.ndjson, .parquet (by "
                "extension). Answers are kept in the ledger: the same command again pays "
                "nothing, an interrupted one resumes. Failed rows are kept with their error."
            ),
        )
        p.add_argument("input", help="the input table (.csv, .jsonl, .parquet)")
        p.add_argument("-o", "--output", required=True, help="the output table (same formats)")
        p.add_argument(
            "--column", help="the column of the texts (default: the only one, or 'text')"
        )
        p.add_argument("--prompt", help="the instruction; {text} marks where the row goes")
        if verb == "extract":
            p.add_argument(
                "--schema", required=True, metavar="module:Class|file.json", help="the fields"
            )
        if verb == "classify":
            p.add_argument("--labels", required=True, help="the labels, comma-separated (a,b,c)")
            p.add_argument("--reason", action="store_true", help="add a reason column")
        p.add_argument("--system", help="a system prompt for every row")
        p.add_argument("--model", help="the model")
        p.add_argument("--concurrency", type=int, help="requests at once (the gateway's limit)")
        p.add_argument("--max-rows", type=int, help="send at most this many requests")
        p.add_argument("--max-tokens", type=int, help="stop before spending more tokens")
        p.add_argument("--max-retries", type=int, help="retries of a busy gateway per row (8)")
        if verb != "generate":
            p.add_argument("--repairs", type=int, help="re-asks for an invalid object (0)")
        p.add_argument("--ledger", metavar="PATH", help="the ledger file (default: $KOINE_LEDGER)")
        p.add_argument("--no-cache", action="store_true", help="ask again even when recorded")
        p.set_defaults(handler="_verbs:run", verb=verb)

    ledger = subs.add_parser(
        "ledger", help="the ledger of paid answers: path, status, history, export, clear"
    )
    ledger.add_argument("--ledger", metavar="PATH", help="the ledger file (default: $KOINE_LEDGER)")
    lsubs = ledger.add_subparsers(title="actions", metavar="ACTION", required=True)
    lsubs.add_parser("path", help="print the ledger's file").set_defaults(action="path")
    lsubs.add_parser("status", help="runs, requests, tokens").set_defaults(action="status")
    history = lsubs.add_parser("history", help="the latest runs, newest first")
    history.add_argument("-n", "--limit", type=int, default=20, help="how many (20)")
    history.set_defaults(action="history")
    export = lsubs.add_parser("export", help="the recorded requests as JSON Lines")
    export.add_argument("-o", "--output", help="a file (.jsonl, .csv, .parquet; default stdout)")
    export.add_argument("--run", help="only this run's requests")
    export.add_argument("-n", "--limit", type=int, help="at most this many")
    export.set_defaults(action="export")
    clear = lsubs.add_parser("clear", help="forget every recorded answer")
    clear.add_argument("-y", "--yes", action="store_true", help="do not ask")
    clear.set_defaults(action="clear")
    ledger.set_defaults(handler="_ledger:run")

    health = subs.add_parser("health", parents=[_CONNECT], help="the gateway's /health")
    health.add_argument("--json", action="store_true", help="as JSON")
    health.set_defaults(handler="_health:run")

    gateway = subs.add_parser(
        "gateway",
        help="run the local (offline, echo model) gateway, as koine-gateway does",
        add_help=False,
    )
    gateway.add_argument("args", nargs=argparse.REMAINDER, help="koine-gateway's options")
    gateway.set_defaults(handler="_gateway:run_sub")
    return parser
