"""``koine ledger path|status|history|export|clear``: the ledger of paid answers (public
:mod:`koine_sdk.ledger` API only)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import EXIT_OK, UsageError
from ._verbs import tokens, values


def _location(args: argparse.Namespace) -> str | None:
    if args.ledger:
        return args.ledger
    from koine_sdk.ledger import default_location

    where = default_location()
    return None if where is None else str(where)


def run(args: argparse.Namespace) -> int:
    where = _location(args)
    action: str = args.action
    if action == "path":
        print(where if where is not None else "off (KOINE_LEDGER turns it off)")
        return EXIT_OK
    if where is None:
        raise UsageError("the ledger is off (KOINE_LEDGER); pass --ledger PATH")
    from koine_sdk.ledger import Ledger

    if action == "clear":
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("clear forgets every paid answer: pass --yes to confirm")
            answer = input(f"Forget every answer recorded in {where}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing cleared.", file=sys.stderr)
                return EXIT_OK
        with Ledger(where) as ledger:
            ledger.clear()
        print(f"Cleared {where}", file=sys.stderr)
        return EXIT_OK
    with Ledger(where) as ledger:
        if action == "status":
            runs: Any = ledger.runs()
            rows: Any = ledger.rows()
            ok = sum(1 for s in values(rows, "status") if s == "ok")
            paid = tokens(rows)
            print(f"ledger: {where}")
            print(f"runs: {len(runs)}")
            print(f"requests: {len(rows)} ({ok} ok, {len(rows) - ok} failed)")
            print(f"tokens: {paid}")
        elif action == "history":
            runs = ledger.runs(limit=args.limit)
            table: Any = runs
            if len(runs):
                print(table.to_string(index=False))
            else:
                print("no runs yet", file=sys.stderr)
        else:
            rows = ledger.rows(args.run, limit=args.limit)
            found: Any = rows
            if args.output:
                from ._tables import write_table

                write_table(found, args.output)
            else:
                text: str = found.to_json(orient="records", lines=True, force_ascii=False)
                sys.stdout.write(text)
                if text and not text.endswith("\n"):
                    sys.stdout.write("\n")
    return EXIT_OK
