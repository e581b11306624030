"""``koine extract|classify|generate INPUT -o OUTPUT``: one request per row, through the same
machinery as the Python verbs (the ledger, resume, retries, failed rows kept with their error).
The output keeps the input's columns and rows, the result's columns after them.
"""

from __future__ import annotations

import argparse
import numbers
import sys
from typing import Any

from ._common import EXIT_INTERRUPTED, EXIT_OK, UsageError, config_from
from ._tables import (
    check_writable,
    joined,
    output_names,
    read_table,
    table_format,
    write_table,
)


def _texts(frame: Any, column: str | None, path: str) -> Any:
    columns = [str(c) for c in frame.columns]
    if column is None:
        if len(columns) == 1:
            column = columns[0]
        elif "text" in columns:
            column = "text"
        else:
            names = ", ".join(columns)
            raise UsageError(f"input {path}: several columns ({names}): pick one with --column")
    if column not in columns:
        raise UsageError(f"input {path}: no column {column!r} (it has {', '.join(columns)})")
    return frame[column]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "system": args.system,
        "model": args.model,
        "concurrency": args.concurrency,
        "max_rows": args.max_rows,
        "max_tokens": args.max_tokens,
        "cache": not args.no_cache,
        "progress": "text" if sys.stderr.isatty() else False,
        "on_interrupt": "return",
    }
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    if getattr(args, "repairs", None) is not None:
        options["repairs"] = args.repairs
    if args.ledger:
        options["ledger"] = args.ledger
    return options


def run(args: argparse.Namespace) -> int:
    table_format(args.output, "output")  # fail on a bad output name before anything is sent
    verb: str = args.verb
    schema = None
    labels: list[str] = []
    if verb == "extract":
        from ._schema import load_schema

        schema = load_schema(args.schema)
    elif verb == "classify":
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        if len(labels) < 2:
            raise UsageError("--labels: give at least two, comma-separated")
    elif not args.prompt:
        raise UsageError("generate needs --prompt")
    frame = read_table(args.input)
    texts = _texts(frame, args.column, args.input)
    check_writable(frame, args.output)
    config = config_from(args)

    options = _options(args)
    import koine_jupyter.extraction as extraction
    from koine_sdk.errors import KoineError

    verbs: Any = extraction  # the schema and labels were checked above, as the verbs take them

    def call(rows: Any, **given: Any) -> Any:
        if verb == "extract":
            prompt = args.prompt or verbs.DEFAULT_PROMPT
            return verbs.extract(rows, schema, prompt, client=config, **given)
        if verb == "classify":
            return verbs.classify(
                rows, labels, args.prompt, reason=args.reason, client=config, **given
            )
        return verbs.generate(rows, args.prompt, client=config, **given)

    try:
        # No rows, no ledger: the arguments checked and the result's columns known, with
        # nothing sent (not even /health) and no run recorded.
        empty = call(texts.iloc[:0], **{**options, "ledger": False, "progress": False})
        names = output_names([str(c) for c in frame.columns], list(empty.columns), args.input)
        result = call(texts, **options)
    except KoineError as exc:
        if exc.code == "INVALID_ARGUMENT":  # refused before anything was sent: bad usage
            raise UsageError(exc.message) from None
        raise
    write_table(joined(frame, result, names), args.output)
    return _summary(result, args.output)


def values(frame: Any, column: str) -> list[Any]:
    """A column's strings and numbers as a list (missing values as None; empty when the frame
    has no such column)."""
    if column not in frame.columns:
        return []
    return [v if isinstance(v, str | numbers.Real) else None for v in frame[column].tolist()]


def tokens(frame: Any) -> int:
    """The input and output tokens of every row (missing counts as 0)."""
    counts = [*values(frame, "input_tokens"), *values(frame, "output_tokens")]
    return sum(int(float(n)) for n in counts if isinstance(n, numbers.Real) and n == n)


def _summary(result: Any, output: str) -> int:
    errors = [str(e) for e in values(result, "error") if isinstance(e, str) and e]
    interrupted = sum(1 for e in errors if e.startswith("INTERRUPTED"))
    paid = tokens(result)
    from_ledger = sum(1 for a in values(result, "answer_from") if a == "ledger")
    print(
        f"{len(result)} rows -> {output}: {len(result) - len(errors)} ok, {len(errors)} failed, "
        f"{from_ledger} from the ledger, {paid} tokens paid",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED if interrupted else EXIT_OK
