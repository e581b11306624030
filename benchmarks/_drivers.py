"""One measurement in a fresh process: ``python _drivers.py BENCH IMPL JSON-ARGS``.

Run by ``run.py`` with the project's interpreter (impls ``raw``, ``raw-lines``, ``ours``,
``ours-sync``) or with the reference virtual environment's interpreter (impl ``ref``: the
``koine-sdk==2.3.0`` wheel from PyPI, whose ``koine_sdk`` shadows nothing here because this
directory, not the repository root, is first on ``sys.path``). Imports and a warm-up happen
before the clock starts. Prints one JSON line: ``wall`` and ``cpu`` seconds of the timed part,
plus what was checked.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

PROMPT = "Say hello to the benchmark"
OBJECT_PROMPT = "List the rows [[items={n}]][[chunks={n}]]"


def stream_prompt(events: int, size: int) -> str:
    return f"benchmark stream [[bytes={size}]][[chunks={events}]]"


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


# -- clients ------------------------------------------------------------------------------


def ours_async(a: dict[str, Any]) -> Any:
    from koine_sdk import create_koine

    return create_koine(base_url=a["url"], auth_key=a["key"], timeout=120)


def ours_sync(a: dict[str, Any]) -> Any:
    from koine_sdk import create_koine_sync

    return create_koine_sync(base_url=a["url"], auth_key=a["key"], timeout=120)


def ref_client(a: dict[str, Any]) -> Any:
    from koine_sdk import KoineConfig, create_koine  # koine-sdk 2.3.0

    return create_koine(KoineConfig(base_url=a["url"], timeout=120.0, auth_key=a["key"]))


def raw_client(concurrency: int = 10) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=max(10, concurrency), max_keepalive_connections=50)
    return httpx.AsyncClient(timeout=120, limits=limits)


class Timer:
    def __enter__(self) -> Timer:
        self.w0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


# -- 1. sequential generate_text -----------------------------------------------------------


async def seq(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    n, warm = a["n"], a.get("warmup", 20)
    if impl == "raw":
        body = json.dumps({"prompt": PROMPT}).encode()
        url, h = a["url"] + "/generate-text", headers(a["key"])
        async with raw_client() as c:

            async def one() -> str:
                r = await c.post(url, content=body, headers=h)
                r.raise_for_status()
                return r.json()["text"]

            for _ in range(warm):
                await one()
            with Timer() as t:
                texts = [await one() for _ in range(n)]
    elif impl == "ours":
        async with ours_async(a) as k:
            for _ in range(warm):
                await k.generate_text(prompt=PROMPT)
            with Timer() as t:
                texts = [(await k.generate_text(prompt=PROMPT)).text for _ in range(n)]
    elif impl == "ours-sync":
        with ours_sync(a) as k:
            for _ in range(warm):
                k.generate_text(prompt=PROMPT)
            with Timer() as t:
                texts = [k.generate_text(prompt=PROMPT).text for _ in range(n)]
    elif impl == "ref":
        k = ref_client(a)
        for _ in range(min(warm, 5)):
            await k.generate_text(prompt=PROMPT)
        with Timer() as t:
            texts = [(await k.generate_text(prompt=PROMPT)).text for _ in range(n)]
    else:
        raise SystemExit(f"unknown impl {impl}")
    assert len(texts) == n and all(x.startswith("Echo:") for x in texts), texts[:3]
    return {"wall": t.wall, "cpu": t.cpu, "n": n, "per_request_ms": 1000 * t.wall / n}


# -- 2. concurrent generate_text -----------------------------------------------------------


async def conc(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    n, waves = a["n"], a["waves"]
    total = n * waves
    if impl == "raw":
        body = json.dumps({"prompt": PROMPT}).encode()
        url, h = a["url"] + "/generate-text", headers(a["key"])
        async with raw_client(n) as c:

            async def one() -> str:
                r = await c.post(url, content=body, headers=h)
                r.raise_for_status()
                return r.json()["text"]

            await asyncio.gather(*(one() for _ in range(n)))  # open the connections
            with Timer() as t:
                texts = [
                    x
                    for _ in range(waves)
                    for x in await asyncio.gather(*(one() for _ in range(n)))
                ]
    elif impl == "ours":
        async with ours_async(a) as k:

            async def one() -> str:
                return (await k.generate_text(prompt=PROMPT)).text

            await asyncio.gather(*(one() for _ in range(n)))
            with Timer() as t:
                texts = [
                    x
                    for _ in range(waves)
                    for x in await asyncio.gather(*(one() for _ in range(n)))
                ]
    elif impl == "ref":
        k = ref_client(a)

        async def one() -> str:
            return (await k.generate_text(prompt=PROMPT)).text

        await asyncio.gather(*(one() for _ in range(min(n, 20))))
        with Timer() as t:
            texts = [
                x for _ in range(waves) for x in await asyncio.gather(*(one() for _ in range(n)))
            ]
    else:
        raise SystemExit(f"unknown impl {impl}")
    assert len(texts) == total and all(x.startswith("Echo:") for x in texts)
    return {"wall": t.wall, "cpu": t.cpu, "n": total, "throughput": total / t.wall}


# -- 3. one long /stream -------------------------------------------------------------------


async def stream(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    events, size = a["events"], a["size"]
    prompt = stream_prompt(events, size)
    warm_prompt = stream_prompt(100, 2000)
    count = 0
    text = ""
    if impl in ("raw", "raw-lines"):
        url, h = a["url"] + "/stream", headers(a["key"])
        decode = impl == "raw"
        async with raw_client() as c:

            async def one(p: str) -> tuple[int, str]:
                n = 0
                parts: list[str] = []
                name = ""
                body = json.dumps({"prompt": p}).encode()
                async with c.stream("POST", url, content=body, headers=h) as r:
                    async for line in r.aiter_lines():
                        if decode:
                            if line.startswith("event: "):
                                name = line[7:]
                            elif line.startswith("data: ") and name == "text":
                                parts.append(json.loads(line[6:])["text"])
                                n += 1
                        elif line.startswith("data: "):
                            n += 1
                return n, "".join(parts)

            await one(warm_prompt)
            with Timer() as t:
                count, text = await one(prompt)
        if not decode:
            count -= 3  # session, result, done
            text = "x" * size
    elif impl == "ours":
        async with ours_async(a) as k:

            async def one(p: str) -> tuple[int, str]:
                n = 0
                async with k.stream_text(prompt=p) as r:
                    async for _ in r.text_stream:
                        n += 1
                    return n, await r.text()

            await one(warm_prompt)
            with Timer() as t:
                count, text = await one(prompt)
    elif impl == "ours-sync":
        with ours_sync(a) as k:

            def one_sync(p: str) -> tuple[int, str]:
                n = 0
                with k.stream_text(prompt=p) as r:
                    for _ in r.text_stream:
                        n += 1
                    return n, r.text()

            one_sync(warm_prompt)
            with Timer() as t:
                count, text = one_sync(prompt)
    elif impl == "ref":
        k = ref_client(a)

        async def one(p: str) -> tuple[int, str]:
            n = 0
            async with k.stream_text(prompt=p) as r:
                async for _ in r.text_stream:
                    n += 1
                return n, await r.text()

        await one(warm_prompt)
        with Timer() as t:
            count, text = await one(prompt)
    else:
        raise SystemExit(f"unknown impl {impl}")
    assert count == events, (count, events)
    assert len(text) == size, (len(text), size)
    return {"wall": t.wall, "cpu": t.cpu, "events": count, "us_per_event": 1e6 * t.wall / count}


# -- 4. stream_object, a list growing to N items ------------------------------------------


def table_schema() -> Any:
    from pydantic import BaseModel

    class Row(BaseModel):
        id: int
        name: str
        score: float
        active: bool

    class Table(BaseModel):
        rows: list[Row]

    return Table


async def objects(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    n = a["n"]
    prompt = OBJECT_PROMPT.format(n=n)
    warm = OBJECT_PROMPT.format(n=10)
    Table = table_schema()
    schema = Table.model_json_schema()
    partials = 0
    rows = 0
    if impl == "raw":
        url, h = a["url"] + "/stream-object", headers(a["key"])
        async with raw_client() as c:

            async def one(p: str) -> tuple[int, int]:
                body = json.dumps({"prompt": p, "schema": schema}).encode()
                count, final, name = 0, None, ""
                async with c.stream("POST", url, content=body, headers=h) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("event: "):
                            name = line[7:]
                        elif line.startswith("data: "):
                            data = json.loads(line[6:])
                            if name == "partial-object":
                                count += 1
                            elif name == "object":
                                final = data["object"]
                assert final is not None
                return count, len(final["rows"])

            await one(warm)
            with Timer() as t:
                partials, rows = await one(prompt)
    elif impl in ("ours", "ref"):
        k = ours_async(a) if impl == "ours" else ref_client(a)

        async def one(p: str) -> tuple[int, int]:
            count = 0
            async with k.stream_object(prompt=p, schema=Table) as r:
                async for _ in r.partial_object_stream:
                    count += 1
                final = await r.object()
            return count, len(final.rows)

        await one(warm)
        with Timer() as t:
            partials, rows = await one(prompt)
        if impl == "ours":
            await k.aclose()
    else:
        raise SystemExit(f"unknown impl {impl}")
    assert rows == n, (rows, n)
    assert partials >= n, (partials, n)
    return {"wall": t.wall, "cpu": t.cpu, "partials": partials, "rows": rows}


# -- 6. extract ----------------------------------------------------------------------------


async def extract_rows(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    """``impl``: ``ledger`` (a fresh ledger file), ``memory`` (``ledger=False``: this process's
    in-memory ledger), ``unclaimed`` (a fresh ledger file, runs not claiming their keys: what
    claims cost), ``auto``/``storm`` (the 429 storm: ``a["concurrency"]`` above a limit the
    gateway does not report, against the run that reads the limit from /health)."""
    import tempfile
    import uuid

    from pydantic import BaseModel

    from koine_jupyter import extract

    class Person(BaseModel):
        name: str
        age: int

    n = a["n"]
    tag = uuid.uuid4().hex[:8]  # fresh texts: nothing is in any ledger yet
    texts = [f"Row {i} ({tag}): a person described in some text" for i in range(n)]
    folder = tempfile.mkdtemp(prefix="koine-bench-")
    ledger: Any = f"{folder}/ledger.sqlite3" if impl in ("ledger", "unclaimed") else False
    if impl == "unclaimed":
        from koine_jupyter.extraction import _claiming

        _claiming.SHARED = False
    options: dict[str, Any] = {"client": None, "progress": False, "ledger": ledger}
    if a.get("concurrency"):
        options["concurrency"] = a["concurrency"]
    with ours_sync(a) as k:
        options["client"] = k
        extract([f"warm-up {tag} {i}" for i in range(5)], Person, **options)
        with Timer() as t:
            df = await asyncio.to_thread(extract, texts, Person, **options)
    stats = df.attrs["koine"]
    errors = int(df["error"].notna().sum())
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "rows": len(df),
        "errors": errors,
        "throttled": stats["throttled"],
        "waits_429": stats["gateways"][0]["waits_429"],
    }


# -- 7. memory of one long stream ----------------------------------------------------------


async def memory(impl: str, a: dict[str, Any]) -> dict[str, Any]:
    import gc
    import tracemalloc

    size = a["size"]
    keep = a.get("keep_text", True)
    prompt = f"memory [[bytes={size}]]"
    kwargs = {} if keep else {"keep_text": False}

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    received = 0
    if impl == "ours":
        async with ours_async(a) as k:
            async with k.stream_text(prompt="warm [[bytes=100000]]", **kwargs) as r:
                async for _ in r.text_stream:
                    pass
            gc.collect()
            rss0 = rss_mb()
            hwm0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            tracemalloc.start(5)
            with Timer() as t:
                async with k.stream_text(prompt=prompt, **kwargs) as r:
                    async for chunk in r.text_stream:
                        received += len(chunk)
                    if keep:
                        assert len(await r.text()) == size
                    await r.usage()
                    current, peak = tracemalloc.get_traced_memory()
                    snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
    elif impl == "ours-sync":
        with ours_sync(a) as k:
            with k.stream_text(prompt="warm [[bytes=100000]]", **kwargs) as r:
                for _ in r.text_stream:
                    pass
            gc.collect()
            rss0 = rss_mb()
            hwm0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            tracemalloc.start(5)
            with Timer() as t:
                with k.stream_text(prompt=prompt, **kwargs) as r:
                    for chunk in r.text_stream:
                        received += len(chunk)
                    if keep:
                        assert len(r.text()) == size
                    r.usage()
                    current, peak = tracemalloc.get_traced_memory()
                    snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
    else:
        raise SystemExit(f"unknown impl {impl}")
    assert received == size, (received, size)
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    top = [
        {"where": str(s.traceback[0]), "mb": round(s.size / 2**20, 2)}
        for s in snapshot.statistics("lineno")[:3]
    ]
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "tracemalloc_peak_mb": peak / 2**20,
        "retained_at_end_mb": current / 2**20,
        "rss_before_mb": rss0,
        "rss_peak_growth_mb": max(0.0, hwm - max(hwm0, rss0)),
        "top": top,
    }


BENCHES = {
    "seq": seq,
    "conc": conc,
    "stream": stream,
    "objects": objects,
    "extract": extract_rows,
    "memory": memory,
}


def main() -> None:
    bench, impl, raw_args = sys.argv[1], sys.argv[2], sys.argv[3]
    result = asyncio.run(BENCHES[bench](impl, json.loads(raw_args)))
    result["impl"] = impl
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
