"""The options of ``extract``, ``classify`` and ``generate``, declared once.

:class:`VerbOptions` is the ``TypedDict`` of the keyword arguments (the verbs' signatures take
``**options: Unpack[VerbOptions]``); :class:`Options` is the same set as a frozen value, built and
checked by :meth:`Options.of` before anything is sent: a bad value is ``INVALID_ARGUMENT``.

Adding an option: one field here (its type, default and check in :meth:`Options.of`), and its
one use where the run reads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from koine_sdk import KoineClient, KoineConfig, KoineError, SyncKoineClient
from koine_sdk.ledger import Ledger, LedgerSpec

if TYPE_CHECKING:
    from koine_jupyter.views.progress import ProgressMode

__all__ = ["Clients", "OnInterrupt", "Options", "VerbOptions", "invalid", "progress_mode"]

OnInterrupt = Literal["return", "raise"]
ClientLike = KoineClient | SyncKoineClient
Clients = ClientLike | KoineConfig | Sequence[ClientLike | KoineConfig]


def invalid(message: str) -> KoineError:
    return KoineError(message, "INVALID_ARGUMENT")


class VerbOptions(TypedDict, total=False):
    """The keyword arguments every verb takes (see :func:`koine_jupyter.extract`)."""

    client: Clients | None
    system: str | None
    model: str | None
    allowed_tools: Sequence[str] | None
    timeout: float | None
    concurrency: int | None
    max_retries: int
    max_retry_after: float
    max_outage: float
    max_rows: int | None
    max_tokens: int | None
    sample: int
    repairs: int
    ledger: LedgerSpec
    cache: bool
    progress: bool | ProgressMode
    on_interrupt: OnInterrupt


def _count(name: str, value: Any, minimum: int, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(f"{name} must be a whole number >= {minimum} (got {value!r})")
    return value


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        sign = "> 0" if positive else ">= 0"
        raise invalid(f"{name} must be a finite number of seconds {sign} (got {value!r})")
    return float(value)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string or None (got {type(value).__name__})")
    return value


def _model(value: Any) -> str | None:
    model = _text("model", value)
    if model is not None and not model.strip():
        raise invalid("model must be a model name such as 'sonnet', not an empty string")
    return model


def _tools(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise invalid(
            "allowed_tools must be a list of tool names, e.g. ['Read'] (got "
            f"{type(value).__name__} {value!r})"
        )
    items = list(cast(Sequence[Any], value))
    bad = [t for t in items if not isinstance(t, str) or not t]
    if bad:
        raise invalid(f"allowed_tools must hold tool names (strings); got {bad[0]!r}")
    return tuple(cast(list[str], items))


def _clients(value: Any) -> Any:
    if value is None:
        return None
    items: list[Any] = (
        list(cast(Sequence[Any], value)) if isinstance(value, list | tuple) else [value]
    )
    if not items:
        raise invalid("client=[] names no gateway")
    for item in items:
        if not isinstance(item, KoineClient | SyncKoineClient | KoineConfig):
            raise invalid(
                "client must be a KoineClient, a SyncKoineClient, a KoineConfig or a list of "
                f"them (got {type(item).__name__})"
            )
    return tuple(items) if isinstance(value, list | tuple) else value


def _ledger(value: Any) -> LedgerSpec:
    import os

    if value is None or isinstance(value, bool | str | os.PathLike | Ledger):
        return cast(LedgerSpec, value)
    raise invalid(
        f"ledger must be a file path, a Ledger, True, False or None (got {type(value).__name__})"
    )


def progress_mode(progress: Any) -> ProgressMode:
    if progress is True:
        return "auto"
    if progress is False or progress is None:
        return "none"
    if progress in ("auto", "widget", "markdown", "text", "none"):
        return progress
    raise invalid(
        f"progress must be True, False, 'widget', 'markdown' or 'text' (got {progress!r})"
    )


@dataclass(frozen=True, slots=True)
class Options:
    """Every option of a verb call, checked (see :class:`VerbOptions`)."""

    client: Any = None
    system: str | None = None
    model: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    timeout: float | None = None
    concurrency: int | None = None
    max_retries: int = 8
    max_retry_after: float = 30.0
    max_outage: float = 30.0
    max_rows: int | None = None
    max_tokens: int | None = None
    sample: int = 0
    repairs: int = 0
    ledger: LedgerSpec = None
    cache: bool = True
    progress: bool | str = True
    on_interrupt: OnInterrupt = "return"

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def of(cls, verb: str = "extract", /, **given: Any) -> Options:
        """The options of ``given`` (keyword arguments), each checked; ``INVALID_ARGUMENT``
        for an unknown name or a bad value."""
        unknown = sorted(set(given) - cls.names())
        if unknown:
            raise invalid(f"{verb}() got unknown argument(s) {unknown}")
        o = replace(cls(), **given)
        if not isinstance(o.cache, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise invalid(f"cache must be True or False (got {o.cache!r})")
        if o.on_interrupt not in ("return", "raise"):
            raise invalid(f"on_interrupt must be 'return' or 'raise' (got {o.on_interrupt!r})")
        progress_mode(o.progress)
        return replace(
            o,
            client=_clients(o.client),
            system=_text("system", o.system),
            model=_model(o.model),
            allowed_tools=_tools(o.allowed_tools),
            timeout=None if o.timeout is None else _seconds("timeout", o.timeout, positive=True),
            concurrency=_count("concurrency", o.concurrency, 1, optional=True),
            max_retries=_count("max_retries", o.max_retries, 0),
            max_retry_after=_seconds("max_retry_after", o.max_retry_after),
            max_outage=_seconds("max_outage", o.max_outage),
            max_rows=_count("max_rows", o.max_rows, 0, optional=True),
            max_tokens=_count("max_tokens", o.max_tokens, 0, optional=True),
            sample=_count("sample", o.sample, 0),
            repairs=_count("repairs", o.repairs, 0),
            ledger=_ledger(o.ledger),
        )

    @property
    def mode(self) -> ProgressMode:
        return progress_mode(self.progress)
