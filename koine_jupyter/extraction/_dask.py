"""``extract`` on a Dask DataFrame or Series: a lazy DataFrame, one extraction run per partition.

``extract_dask`` checks the arguments on the caller's side (nothing is sent, no task is made when
one is unusable) and returns ``texts.map_partitions(PartitionJob(...), meta=...)``: the meta is
the pandas result of no rows (:func:`._columns.frame`, dtypes from the schema only), so the
lazy frame has the columns and dtypes ``extract`` gives for pandas input, with the input's index
and divisions. A :class:`PartitionJob` is what travels to the workers: the schema, the prompt,
the options and the gateways' :class:`KoineConfig` objects (never a client). On the worker it
is one ordinary extraction run (:mod:`._prepare`, :mod:`._run`) over the partition's rows with
clients of its own, the ledger of ``ledger=`` as the worker resolves it, and a gate that holds
a lease of the gateway's shared semaphore for every request (:mod:`._leases`).

Dask is imported only here, and this module only for Dask input.
"""

from __future__ import annotations

import collections
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from koine_sdk import KoineClient, KoineConfig, KoineError, SyncKoineClient
from koine_sdk.ledger import Ledger

from ._clients import PRIVATE_LOOP
from ._columns import frame
from ._leases import leases_here
from ._options import Options, invalid
from ._prepare import Call, prepare
from ._verbs import Verb

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

__all__ = ["PartitionJob", "schema_of", "verb_dask"]

TASK_NAME = "koine-extract"  # the tasks' name in the dashboard and the progress bars
_SCHEMAS: collections.OrderedDict[str, Verb] = collections.OrderedDict()
_SCHEMAS_KEPT = 32

WorkerLedger = str | bool | None
"""``ledger=`` as a worker receives it: ``None`` (the worker's default), ``False`` (the worker
process's memory) or an absolute file path (opened by each worker)."""


def schema_of(group: str) -> type[BaseModel] | None:
    """The schema of a recent Dask verb call of this process, by its group id (``None`` for a
    verb without one, such as ``generate``)."""
    verb = _SCHEMAS.get(group)
    schema = getattr(verb, "schema", None)
    return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None


def known_group(group: str) -> bool:
    return group in _SCHEMAS


def _configs(client: Any) -> list[KoineConfig] | None:
    if client is None:
        return None  # each worker's environment (KOINE_BASE_URL, KOINE_AUTH_KEY)
    items: list[Any] = (
        list(cast(Sequence[Any], client)) if isinstance(client, list | tuple) else [client]
    )
    if not items:
        raise invalid("client=[] names no gateway")
    configs: list[KoineConfig] = []
    for item in items:
        if isinstance(item, KoineClient | SyncKoineClient):
            raise invalid(
                "with Dask input, client= takes KoineConfig objects (each partition makes its own "
                "clients on its worker; a client cannot be sent there): pass client.config"
            )
        if not isinstance(item, KoineConfig):
            raise invalid(
                f"client must be a KoineConfig or a list of them (got {type(item).__name__})"
            )
        configs.append(item.validated())
    return configs


def _worker_ledger(ledger: Any) -> WorkerLedger:
    if ledger is None or ledger is True:
        return None
    if ledger is False:
        return False
    if isinstance(ledger, Ledger):
        return False if ledger.path is None else str(ledger.path.absolute())
    if isinstance(ledger, str | os.PathLike):
        path = os.fspath(cast("str | os.PathLike[str]", ledger))
        # "~" is left to each worker's home; a relative path is this process's folder.
        return path if path.startswith("~") else os.path.abspath(path)
    raise invalid(
        f"ledger must be a file path, a Ledger, True or False (got {type(ledger).__name__})"
    )


def _refuse(options: Options) -> None:
    if options.sample:
        raise invalid(
            "sample= is not available with Dask input; estimate on a sample of it first, e.g. "
            "estimate(ddf['text'].head(1000), ...)"
        )
    for name in ("max_rows", "max_tokens"):
        if getattr(options, name) is not None:
            raise invalid(
                f"{name}= is not available with Dask input (each partition runs on its own); "
                "extract a slice of it, e.g. ddf.partitions[:10], to bound the spend"
            )
    if options.mode not in ("auto", "none"):
        raise invalid(
            "with Dask input the progress is Dask's (the dashboard, distributed.progress, "
            "dask.diagnostics.ProgressBar); progress= takes only True or False"
        )


def verb_dask(texts: Any, verb: Verb, prompt: Any, options: Options) -> dd.DataFrame:
    """The lazy result of a verb for a Dask DataFrame (of one column) or Series."""
    columns = verb.columns()
    if not isinstance(prompt, str):
        raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
    _refuse(options)
    import dask.dataframe as dd

    source: Any = texts
    if isinstance(source, dd.DataFrame):
        names: list[Any] = list(cast(Any, source).columns)
        if len(names) != 1:
            raise invalid(
                "texts must be one column (a Series, e.g. ddf['text']), not a DataFrame of "
                f"{len(names)} columns"
            )
        source = cast(Any, source)[names[0]]
    job = PartitionJob(
        verb=verb,
        prompt=prompt,
        options=replace(options, client=_configs(options.client), ledger=None, progress=False),
        ledger=_worker_ledger(options.ledger),
    )
    meta: Any = frame(columns, [], [], source._meta.index)
    meta.attrs = job.attrs()
    _SCHEMAS[job.group] = verb
    while len(_SCHEMAS) > _SCHEMAS_KEPT:
        _SCHEMAS.popitem(last=False)
    lazy: dd.DataFrame = source.map_partitions(job, meta=meta, token=TASK_NAME)
    return lazy


@dataclass(frozen=True)
class PartitionJob:
    """The extraction of one partition, as sent to a worker (picklable: configs, no clients).

    ``group`` ties the partitions' runs together in the ledgers (``totals``)."""

    verb: Verb
    prompt: str
    options: Options
    ledger: WorkerLedger
    group: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __dask_tokenize__(self) -> str:
        return self.group

    def attrs(self) -> dict[str, Any]:
        """What the result's ``attrs`` hold: enough for ``totals`` to find the runs."""
        return {"koine": {"group": self.group, "ledger": self.ledger}}

    def __call__(self, part: pd.Series, partition_info: Any = None) -> pd.DataFrame:
        info: Any = partition_info
        number: int | None = (
            cast(dict[str, Any], info).get("number") if isinstance(info, dict) else None
        )
        tags = {"dask": {"group": self.group, "partition": number}}
        call = Call(part, self.verb, self.prompt, self.options)
        run = prepare(call, ledger=self.ledger, tags=tags)
        leases = leases_here()
        run.use_gate(leases)
        try:
            df: Any = PRIVATE_LOOP.run(run.execute())
        except KoineError as exc:
            cause = run.fatal or exc
            raise KoineError(
                f"{call.verb.name} stopped in partition {number}: {cause.message} (nothing more "
                "was sent; every answer so far is in the ledger: compute again to resume)",
                cause.code,
                status=cause.status,
            ) from None
        finally:
            leases.close()
        df.attrs = self.attrs()
        return df
