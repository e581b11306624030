"""The prompt of a repair attempt (``generate_object(..., repairs=N)``): the validation errors of
the previous answer, stated briefly, and the request to answer again. No I/O here."""

from __future__ import annotations

from pydantic import ValidationError

from ._objects import format_loc
from .errors import KoineError

__all__ = ["repair_prompt"]

_MAX_PROBLEMS = 20
_MAX_INPUT = 80


def repair_prompt(error: KoineError) -> str:
    """What to say to the model, in the same session, after its answer failed the schema."""
    cause = error.__cause__
    lines: list[str] = []
    if isinstance(cause, ValidationError):
        problems = cause.errors(include_url=False)
        for problem in problems[:_MAX_PROBLEMS]:
            shown = repr(problem.get("input"))
            if len(shown) > _MAX_INPUT:
                shown = shown[: _MAX_INPUT - 3] + "..."
            lines.append(f"- {format_loc(problem['loc'])}: {problem['msg']} (got {shown})")
        if len(problems) > _MAX_PROBLEMS:
            lines.append(f"- ... and {len(problems) - _MAX_PROBLEMS} more")
    else:
        lines.append(f"- {error.message}")
    return (
        "Your previous JSON answer does not match the required JSON Schema:\n"
        + "\n".join(lines)
        + "\nAnswer again with the complete, corrected JSON value only."
    )
