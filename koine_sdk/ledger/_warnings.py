"""The ledger's warning category (its own module: the store and the package both raise it)."""

from __future__ import annotations

__all__ = ["LedgerWarning"]


class LedgerWarning(UserWarning):
    """The ledger file could not be used as asked (answers kept in this process only, a
    shipped ledger's triggers dropped, a ledger readable by other users)."""
