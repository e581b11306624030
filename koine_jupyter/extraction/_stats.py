"""A run's statistics as a typed value, owned by the extraction: what ``df.attrs["koine"]``
shows and what the ledger stores (opaquely, as JSON) when the run ends; ``totals`` reads it back
with :meth:`RunStats.read`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast

__all__ = ["RunStats"]


@dataclass(frozen=True, slots=True)
class RunStats:
    """How a run went (counts of rows and requests, tokens paid now, time, gateways)."""

    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    ledger_hits: int = 0
    duplicates: int = 0
    requests: int = 0
    throttled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    budget_exceeded: str | None = None
    estimate: Mapping[str, Any] | None = None
    run_id: str | None = None
    ledger: str = ":memory:"
    verb: str = "extract"
    gateways: tuple[Mapping[str, Any], ...] = field(default=())
    error: str | None = None  # why the run failed: its fatal error, or the ledger that broke

    def as_dict(self) -> dict[str, Any]:
        """As ``df.attrs["koine"]`` and the ledger hold it (``cache_hits``: the name earlier
        versions gave ``ledger_hits``)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["cache_hits"] = self.ledger_hits
        out["estimate"] = dict(self.estimate) if self.estimate is not None else None
        out["gateways"] = [dict(g) for g in self.gateways]
        return out

    @classmethod
    def read(cls, data: Mapping[str, Any] | None) -> RunStats | None:
        """The statistics a ledger holds (written by this or an earlier version: missing
        fields take their defaults, unknown ones are ignored); ``None`` for none."""
        if data is None:
            return None
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in data.items() if k in known and v is not None}
        if "ledger_hits" not in given and isinstance(data.get("cache_hits"), int):
            given["ledger_hits"] = data["cache_hits"]
        reported: Any = given.get("gateways") or []
        given["gateways"] = tuple(
            cast(Mapping[str, Any], g) for g in reported if isinstance(g, Mapping)
        )
        try:
            return cls(**given)
        except TypeError:
            return cls()
