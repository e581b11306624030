"""``koine ask``: one question, the answer streamed to stdout as it arrives."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ._common import EXIT_OK, UsageError, config_from

if TYPE_CHECKING:
    from koine_sdk.types import KoineUsage

_STATE_FILE = "cli-session.json"


def _state_path() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("koine", appauthor=False)) / _STATE_FILE


def last_session() -> str | None:
    """The session of the latest ``koine ask`` (``--continue``), or None."""
    try:
        data: Any = json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value: Any = cast(dict[str, Any], data).get("session_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _remember(session_id: str | None) -> None:
    if not session_id:
        return
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"session_id": session_id}, out)
    os.chmod(path, 0o600)  # also when the file existed with wider rights


class _Options(TypedDict):
    system: str | None
    model: str | None
    session_id: str | None


def _prompt(args: argparse.Namespace) -> str:
    parts = [args.prompt] if args.prompt else []
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped.strip():
            parts.append(piped)
    prompt = "\n\n".join(parts)
    if not prompt.strip():
        raise UsageError("no prompt: give one as an argument or on stdin")
    return prompt


def run(args: argparse.Namespace) -> int:
    schema = None
    if args.schema:
        from ._schema import load_schema

        schema = load_schema(args.schema)
    session_id: str | None = args.session
    if args.resume:
        session_id = last_session()
        if session_id is None:
            raise UsageError("--continue: no earlier session (run koine ask once first)")
    prompt = _prompt(args)
    config = config_from(args)

    from koine_sdk import create_koine_sync

    options = _Options(system=args.system, model=args.model, session_id=session_id)
    with create_koine_sync(config) as koine:
        if schema is not None:
            result = koine.generate_object(prompt=prompt, schema=schema, **options)
            _remember(result.session_id)
            answer = result.object.model_dump(mode="json")
            if args.json:
                _print_json(answer, result.usage, result.session_id)
            else:
                print(json.dumps(answer, ensure_ascii=False, indent=2))
            return EXIT_OK
        if args.json:
            text_result = koine.generate_text(prompt=prompt, **options)
            _remember(text_result.session_id)
            _print_json(text_result.text, text_result.usage, text_result.session_id)
            return EXIT_OK
        with koine.stream_text(prompt=prompt, **options) as stream:
            ends_with_newline = True
            for chunk in stream.text_stream:
                sys.stdout.write(chunk)
                sys.stdout.flush()
                ends_with_newline = chunk.endswith("\n") if chunk else ends_with_newline
            if not ends_with_newline:
                sys.stdout.write("\n")
            _remember(stream.session_id())
    return EXIT_OK


def _print_json(answer: object, usage: KoineUsage, session_id: str | None) -> None:
    document = {"answer": answer, "usage": usage.model_dump(), "session": session_id}
    print(json.dumps(document, ensure_ascii=False))
