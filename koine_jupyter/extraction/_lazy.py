"""Recognising a Dask DataFrame or Series without importing Dask (only an input made by Dask,
which has imported it, can be one)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["is_dask"]


def is_dask(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame or Series."""
    module = sys.modules.get("dask.dataframe")
    if module is None:
        return False
    kinds: Any = (module.DataFrame, module.Series)
    return isinstance(obj, kinds)
