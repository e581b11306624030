"""Benchmarks of koine-sdk against the local gateway: ``python benchmarks/run.py``.

    python benchmarks/run.py                 # everything; writes benchmarks/RESULTS.md
    python benchmarks/run.py --only stream   # one benchmark (repeat --only for more)
    python benchmarks/run.py --smoke         # correctness only, tiny sizes, no 2.3.0 (CI)

Every measurement runs in a fresh client process (``_drivers.py``) against a gateway in its own
process (``_gateway.py``); implementations are interleaved round by round and medians compared,
so the ratios printed come from one run on one (noisy) machine. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REF_DIR = HERE / ".venv-ref"
REF_VERSION = "2.3.0"
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

BENCHMARKS = (
    "startup", "seq", "conc", "stream", "objects", "magic", "render", "extract", "storm", "dask",
    "memory",
)  # fmt: skip


# -- helpers --------------------------------------------------------------------------------


def log(*parts: object) -> None:
    print(*parts, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if x == x else "n/a"


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import httpx
    import pydantic

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "httpx": httpx.__version__,
        "pydantic": pydantic.VERSION,
        "platform": platform.platform(),
    }


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Gateway:
    """The local gateway in a child process (see _gateway.py)."""

    def __init__(self, **options: float | int) -> None:
        argv = [sys.executable, str(HERE / "_gateway.py")]
        for name, value in options.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        info = json.loads(self.proc.stdout.readline())
        self.url: str = info["base_url"]
        self.key: str = info["auth_key"]

    def cmd(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if not answer.get("ok"):
            raise RuntimeError(answer)
        return answer

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def gateway(**options: float | int) -> Iterator[Gateway]:
    gw = Gateway(**options)
    try:
        yield gw
    finally:
        gw.close()


def drive(python: str, bench: str, impl: str, gw: Gateway, **args: Any) -> dict[str, Any]:
    """One measurement in a fresh process; adds the gateway's CPU seconds during it."""
    payload = json.dumps({"url": gw.url, "key": gw.key, **args})
    before = gw.cpu()
    out = subprocess.run(
        [python, str(HERE / "_drivers.py"), bench, impl, payload],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{bench}/{impl} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["gateway_cpu"] = gw.cpu() - before
    return result


# -- the reference implementation ----------------------------------------------------------


def reference_python() -> tuple[str | None, str]:
    """The interpreter of benchmarks/.venv-ref with koine-sdk==2.3.0, installed if needed."""
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = REF_DIR / bindir / ("python.exe" if os.name == "nt" else "python")
    check = [str(python), "-c", "import koine_sdk; print(koine_sdk.__version__)"]
    try:
        if python.exists():
            # cwd: from the repository root, "-c" would import the repo's own koine_sdk
            out = subprocess.run(check, capture_output=True, text=True, cwd=REF_DIR)
            if out.stdout.strip() == REF_VERSION:
                return str(python), "already installed"
        else:
            log(f"creating {REF_DIR} ...")
            venv.EnvBuilder(with_pip=True, clear=True).create(REF_DIR)
        log(f"installing koine-sdk=={REF_VERSION} from PyPI into {REF_DIR} ...")
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"koine-sdk=={REF_VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if pip.returncode != 0:
            return None, f"pip install failed: {pip.stderr.strip()[-500:]}"
        out = subprocess.run(check, capture_output=True, text=True, cwd=REF_DIR)
        if out.stdout.strip() != REF_VERSION:
            return None, f"installed, but import gives {out.stdout.strip() or out.stderr[-300:]}"
        return str(python), "installed now"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


# -- results --------------------------------------------------------------------------------


@dataclass
class Section:
    name: str
    title: str
    setup: str
    rows: list[tuple[str, ...]] = field(default_factory=list)
    header: tuple[str, ...] = ()
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def target(self, what: str, measured: str, ok: bool | None) -> None:
        self.targets.append((what, measured, ok))

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.setup, ""]
        if self.rows:
            lines.append("| " + " | ".join(self.header) + " |")
            lines.append("|" + "---|" * len(self.header))
            lines += ["| " + " | ".join(r) + " |" for r in self.rows]
            lines.append("")
        if self.targets:
            lines += ["| target | measured | |", "|---|---|---|"]
            for what, measured, ok in self.targets:
                mark = "n/a" if ok is None else ("met" if ok else "**missed**")
                lines.append(f"| {what} | {measured} | {mark} |")
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def text(self) -> str:
        return self.markdown()


@dataclass
class Ctx:
    smoke: bool
    rounds: int
    ref: str | None
    ref_status: str


def interleaved(
    ctx: Ctx, impls: list[tuple[str, str]], run: Callable[[str, str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Run each (impl, python) once per round, in turn; all results by impl."""
    results: dict[str, list[dict[str, Any]]] = {impl: [] for impl, _ in impls}
    for r in range(ctx.rounds):
        order = impls if r % 2 == 0 else impls[::-1]
        for impl, python in order:
            res = run(impl, python)
            results[impl].append(res)
            log(
                f"  round {r + 1} {impl:10s} wall {res['wall']:.3f}s  cpu {res['cpu']:.3f}s  "
                f"gateway cpu {res['gateway_cpu']:.3f}s"
            )
    return results


def impl_list(ctx: Ctx, ours: list[str], raw: list[str], ref: bool = True) -> list[tuple[str, str]]:
    items = [(i, sys.executable) for i in raw + ours]
    if ref and ctx.ref is not None:
        items.append(("ref", ctx.ref))
    return items


def med(results: dict[str, list[dict[str, Any]]], impl: str, key: str) -> float:
    return median([r[key] for r in results.get(impl, [])])


def basic_rows(results: dict[str, list[dict[str, Any]]], base: str) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for impl in results:
        wall, cpu, gcpu = (med(results, impl, k) for k in ("wall", "cpu", "gateway_cpu"))
        rows.append(
            (
                impl,
                f"{wall:.3f}",
                f"{wall / med(results, base, 'wall'):.2f}x",
                f"{cpu:.3f}",
                f"{cpu / med(results, base, 'cpu'):.2f}x",
                f"{gcpu:.3f}",
            )
        )
    return rows


BASIC_HEADER = (
    "impl",
    "wall s (median)",
    "wall / raw",
    "client CPU s",
    "CPU / raw",
    "gateway CPU s",
)


# -- 1. sequential ---------------------------------------------------------------------------


def bench_seq(ctx: Ctx) -> Section:
    n = 20 if ctx.smoke else 2000
    n_ref = 200
    sec = Section(
        "seq",
        f"1. {n} sequential generate_text",
        f"One pooled client, {n} requests one after another (after 20 warm-up requests); "
        f"2.3.0 does {n_ref} (it opens a new httpx client per request), compared per request.",
    )
    with gateway() as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            res = drive(python, "seq", impl, gw, n=n_ref if impl == "ref" else n)
            for k in ("wall", "cpu", "gateway_cpu"):  # per request, so 2.3.0's n can differ
                res[k] = res[k] / res["n"] * n
            return res

        results = interleaved(ctx, impl_list(ctx, ["ours", "ours-sync"], ["raw"]), run)
    sec.header = (*BASIC_HEADER, "ms / request")
    sec.rows = [
        (*row, f"{1000 * med(results, row[0], 'wall') / n:.2f}")
        for row in basic_rows(results, "raw")
    ]
    ratio = med(results, "ours", "wall") / med(results, "raw", "wall")
    sec.target(
        "ours <= 1.15x raw httpx (wall)", f"{ratio:.2f}x", None if ctx.smoke else ratio <= 1.15
    )
    if "ref" in results:
        speed = med(results, "ref", "wall") / med(results, "ours", "wall")
        sec.target(">= 2x faster than 2.3.0", f"{speed:.1f}x faster", speed >= 2)
    return sec


# -- 2. concurrent ---------------------------------------------------------------------------


def bench_conc(ctx: Ctx) -> Section:
    n, waves = (10, 1) if ctx.smoke else (200, 3)
    sec = Section(
        "conc",
        f"2. {n} concurrent generate_text",
        f"Gateway limit raised to 1000; {waves} wave(s) of {n} requests gathered at once (after "
        "one warm-up wave that opens the connections). 2.3.0 runs one wave.",
    )
    with gateway(max_nonstreaming=1000) as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            return drive(python, "conc", impl, gw, n=n, waves=1 if impl == "ref" else waves)

        results = interleaved(ctx, impl_list(ctx, ["ours"], ["raw"]), run)
        peak = gw.cmd(op="stats")["peak"]
    sec.header = ("impl", "requests/s (median)", "vs raw", "client CPU ms / request")
    base = med(results, "raw", "throughput")
    for impl, rs in results.items():
        tp = med(results, impl, "throughput")
        cpu_per = median([1000 * r["cpu"] / r["n"] for r in rs])
        sec.rows.append((impl, f"{tp:.0f}", f"{tp / base:.2f}x", f"{cpu_per:.2f}"))
    ratio = med(results, "ours", "throughput") / base
    sec.target("throughput >= 0.9x raw httpx", f"{ratio:.2f}x", None if ctx.smoke else ratio >= 0.9)
    if "ref" in results:
        speed = med(results, "ours", "throughput") / med(results, "ref", "throughput")
        sec.target("(info) vs 2.3.0", f"{speed:.1f}x the throughput", None)
    sec.notes.append(f"gateway peak concurrency seen: {peak}")
    return sec


# -- 3. long /stream -------------------------------------------------------------------------


def bench_stream(ctx: Ctx) -> Section:
    events, size = (1000, 20_000) if ctx.smoke else (100_000, 2_000_000)
    epc = 50
    sec = Section(
        "stream",
        f"3. one /stream of {events:,} text events",
        f"{size:,} bytes of text in {events:,} `text` events of {size // events} bytes. "
        "The gateway "
        f"packs {epc} events per HTTP chunk (`events_per_chunk={epc}`): with one write per event "
        "the gateway, not the client, is the bottleneck. `raw` = httpx `aiter_lines()` + "
        "`json.loads` of each text event + join; `raw-lines` = line iteration only.",
    )
    with gateway(events_per_chunk=epc) as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            return drive(python, "stream", impl, gw, events=events, size=size)

        results = interleaved(ctx, impl_list(ctx, ["ours", "ours-sync"], ["raw", "raw-lines"]), run)
    sec.header = (*BASIC_HEADER, "µs / event")
    sec.rows = [
        (*row, f"{1e6 * med(results, row[0], 'wall') / events:.1f}")
        for row in basic_rows(results, "raw")
    ]
    ratio = med(results, "raw", "wall") / med(results, "ours", "wall")
    cpu_ratio = med(results, "raw", "cpu") / med(results, "ours", "cpu")
    sec.target(
        "throughput >= 0.8x raw (wall)",
        f"{ratio:.2f}x (client CPU: {cpu_ratio:.2f}x)",
        None if ctx.smoke else ratio >= 0.8,
    )
    if "ref" in results:
        speed = med(results, "ref", "wall") / med(results, "ours", "wall")
        cpu_speed = med(results, "ref", "cpu") / med(results, "ours", "cpu")
        sec.target(
            ">= 2x faster than 2.3.0 (wall)",
            f"{speed:.2f}x (client CPU: {cpu_speed:.2f}x)",
            speed >= 2,
        )
    return sec


# -- 4. stream_object ------------------------------------------------------------------------


def object_pieces(n: int) -> list[str]:
    """``{"rows": [...]}`` written one whole row per piece: one partial object per row."""
    pieces = ['{"rows": [']
    for i in range(n):
        row = {"id": i, "name": f"row number {i}", "score": i * 0.25, "active": i % 2 == 0}
        pieces.append((", " if i else "") + json.dumps(row) + ("]}" if i == n - 1 else ""))
    return pieces


def bench_objects(ctx: Ctx) -> Section:
    n = 20 if ctx.smoke else 500
    sec = Section(
        "objects",
        f"4. stream_object whose list grows to {n} items",
        f'A scripted reply writes `{{"rows": [...]}}` one whole row per piece, so the gateway '
        f"sends one `partial-object` event per row ({n + 1} events; each carries the whole JSON "
        "so far twice, as `partial` and `parsed`). Schema: `Table(rows: list[Row])`, "
        "`Row(id: int, name: str, score: float, active: bool)`. `raw` = httpx lines + "
        "`json.loads` of every event's data.",
    )
    pieces = object_pieces(n)
    with gateway() as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            gw.cmd(op="script_text", chunks=pieces, times=2)  # warm-up + timed
            return drive(python, "objects", impl, gw, n=n)

        results = interleaved(ctx, impl_list(ctx, ["ours"], ["raw"]), run)
    sec.header = BASIC_HEADER
    sec.rows = basic_rows(results, "raw")
    ratio = med(results, "ours", "wall") / med(results, "raw", "wall")
    cpu_ratio = med(results, "ours", "cpu") / med(results, "raw", "cpu")
    sec.target(
        "<= 1.5x json.loads (client CPU; the wall time is the gateway's)",
        f"{cpu_ratio:.2f}x (wall: {ratio:.2f}x)",
        None if ctx.smoke else cpu_ratio <= 1.5,
    )
    if "ref" in results:
        speed = med(results, "ref", "wall") / med(results, "ours", "wall")
        sec.target("(info) vs 2.3.0", f"{speed:.2f}x faster", None)
    return sec


# -- 5. the magic in a kernel ----------------------------------------------------------------

DISPLAY_TYPES = (
    "display_data",
    "update_display_data",
    "execute_result",
    "clear_output",
    "stream",
    "comm_open",
    "comm_msg",
    "comm_close",
)


def markdown_answer(size: int) -> str:
    """A Markdown answer of about ``size`` bytes: paragraphs, lists and fenced code."""
    blocks: list[str] = []
    i = 0
    while sum(len(b) + 2 for b in blocks) < size:
        i += 1
        if i % 7 == 0:
            code = "\n".join(f"    total += item_{j} * {j}" for j in range(8))
            blocks.append(
                f"```python\ndef step_{i}(items):\n    total = 0\n{code}\n    return total\n```"
            )
        elif i % 5 == 0:
            blocks.append("\n".join(f"- point {i}.{j}: a short item of a list" for j in range(6)))
        else:
            blocks.append(
                f"Paragraph {i}. "
                + "Server-sent events stream text to the notebook as it is written; " * 8
            )
    text = "\n\n".join(blocks)
    return text[:size]


def bench_magic(ctx: Ctx) -> Section:
    from jupyter_client.manager import KernelManager

    chunks_n, size = (500, 5_000) if ctx.smoke else (20_000, 200_000)
    answer = markdown_answer(size)
    step = len(answer) // chunks_n
    chunks = [answer[i * step : (i + 1) * step] for i in range(chunks_n - 1)]
    chunks.append(answer[(chunks_n - 1) * step :])
    assert "".join(chunks) == answer and len(chunks) == chunks_n
    sec = Section(
        "magic",
        f"5. %%koine rendering a {chunks_n:,}-chunk, {len(answer.encode()) // 1000} KB answer",
        "A headless ipykernel (jupyter_client `KernelManager`), the gateway scripted to send a "
        f"Markdown answer (paragraphs, lists, code blocks) as {chunks_n:,} `text` events, one per "
        "HTTP chunk. Time = execute request → kernel idle, seen by the client. "
        "`display msgs` = display_data, update_display_data, execute_result, clear_output, "
        "stream, comm_open/msg/close; `bytes` = their JSON content (+ buffers). `none` = the "
        "same stream consumed by the sync SDK in the cell, rendering nothing.",
    )
    cells = {
        "widget": "%%koine --display widget --out _ans\nbenchmark answer",
        "markdown": "%%koine --display markdown --out _ans\nbenchmark answer",
        "text": "%%koine --display text --out _ans\nbenchmark answer",
        "none": (
            "with _k.stream_text(prompt='benchmark answer') as _r:\n"
            "    for _c in _r.text_stream:\n        pass\n_ans = _r.text()"
        ),
    }
    with gateway() as gw:
        env = dict(os.environ)
        for name in ("JPY_SESSION_NAME", "KOINE_DISPLAY", "VSCODE_PID"):
            env.pop(name, None)
        env.update(KOINE_BASE_URL=gw.url, KOINE_AUTH_KEY=gw.key)
        km = KernelManager()
        km.start_kernel(env=env, cwd=str(HERE))
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)

            def execute(code: str) -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
                start = time.perf_counter()
                msg_id = kc.execute(code)
                msgs: list[dict[str, Any]] = []
                while True:
                    msg = kc.get_iopub_msg(timeout=120)
                    if msg["parent_header"].get("msg_id") != msg_id:
                        continue
                    if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                        break
                    msgs.append(msg)
                elapsed = time.perf_counter() - start
                while True:
                    reply = kc.get_shell_msg(timeout=120)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        return elapsed, msgs, reply

            def check(code: str) -> str:
                _, msgs, reply = execute(code)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"kernel cell failed: {reply['content']}")
                return "".join(
                    m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream"
                )

            check(
                "%load_ext koine_jupyter\nfrom koine_sdk import create_koine_sync\n"
                "_k = create_koine_sync()"
            )
            for mode in cells:  # warm-up: imports, widget classes, connections
                gw.cmd(op="script_text", chunks=["warm ", "up"])
                check(cells[mode])
            results: dict[str, list[dict[str, Any]]] = {m: [] for m in cells}
            order = list(cells)
            for r in range(ctx.rounds):
                for mode in order if r % 2 == 0 else order[::-1]:
                    gw.cmd(op="script_text", chunks=chunks)
                    elapsed, msgs, reply = execute(cells[mode])
                    if reply["content"]["status"] != "ok":
                        raise RuntimeError(f"{mode}: {reply['content']}")
                    got = check("print(len(str(_ans)))")
                    counts: dict[str, int] = {}
                    sizes: dict[str, int] = {}
                    for m in msgs:
                        t = m["msg_type"]
                        counts[t] = counts.get(t, 0) + 1
                        b = len(json.dumps(m["content"], default=str))
                        b += sum(len(x) for x in m.get("buffers") or [])
                        sizes[t] = sizes.get(t, 0) + b
                    disp = sum(counts.get(t, 0) for t in DISPLAY_TYPES)
                    disp_bytes = sum(sizes.get(t, 0) for t in DISPLAY_TYPES)
                    res = {
                        "wall": elapsed,
                        "display_msgs": disp,
                        "display_bytes": disp_bytes,
                        "counts": counts,
                        "sizes": sizes,
                        "received": int(got.split()[0]),
                    }
                    results[mode].append(res)
                    log(
                        f"  round {r + 1} {mode:9s} {elapsed:.3f}s  display msgs {disp}  "
                        f"bytes {disp_bytes:,}  text {res['received']:,}/{len(answer):,}"
                    )
                    if res["received"] != len(answer):
                        raise RuntimeError(f"{mode}: the answer arrived incomplete")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    base = med(results, "none", "wall")
    answer_bytes = len(answer.encode())
    sec.header = (
        "mode",
        "time s (median)",
        "vs none",
        "display msgs",
        "msgs / s",
        "display bytes",
        "bytes / answer",
        "by type (count)",
    )
    for mode, rs in results.items():
        wall = med(results, mode, "wall")
        msgs = med(results, mode, "display_msgs")
        byts = med(results, mode, "display_bytes")
        by_type = ", ".join(f"{k} {v}" for k, v in sorted(rs[-1]["counts"].items()))
        sec.rows.append(
            (
                mode,
                f"{wall:.3f}",
                f"{wall / base:.2f}x",
                f"{msgs:.0f}",
                f"{msgs / wall:.1f}",
                f"{byts:,.0f}",
                f"{byts / answer_bytes:.2f}x",
                by_type,
            )
        )
    for mode in ("widget", "markdown", "text"):
        wall = med(results, mode, "wall")
        rate = med(results, mode, "display_msgs") / wall
        byts = med(results, mode, "display_bytes") / answer_bytes
        tag = " (the JupyterLab mode: the target)" if mode == "widget" else " (info)"
        judge = not ctx.smoke and mode == "widget"
        sec.target(
            f"{mode}{tag}: time <= 1.2x none",
            f"{wall / base:.2f}x",
            (wall / base <= 1.2) if judge else None,
        )
        sec.target(
            f"{mode}: <= 25 display msgs / s", f"{rate:.1f}/s", (rate <= 25) if judge else None
        )
        # every mode: each block sent about once (not the whole text on each update)
        sec.target(
            f"{mode}: bytes <= 3x answer",
            f"{byts:.2f}x",
            (byts <= 3) if not ctx.smoke else None,
        )
    return sec


# -- 6. extract ------------------------------------------------------------------------------


def bench_extract(ctx: Ctx) -> Section:
    n, limit, delay = (20 if ctx.smoke else 1000), 5, 0.05
    ideal = -(-n // limit) * delay
    sec = Section(
        "extract",
        f"6. extract of {n} rows, gateway limit {limit}, {int(delay * 1000)} ms per request",
        f"`koine_jupyter.extract(texts, Person, client=sync client, progress=False)` on fresh "
        f"texts; the gateway answers each `/generate-object` after {delay}s "
        f"(`first_byte_delay`) and allows {limit} at once. Ideal = ceil({n}/{limit}) x {delay}s "
        f"= {ideal:.2f}s. `ledger`: every answer committed to a fresh SQLite ledger file (the "
        "default, each key claimed before it is asked); `unclaimed`: the same ledger file with "
        "claims turned off (what claims cost); `memory`: `ledger=False` (this process's "
        "in-memory ledger).",
    )
    with gateway(max_nonstreaming=limit, first_byte_delay=delay) as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            return drive(python, "extract", impl, gw, n=n)

        results = interleaved(
            ctx,
            [("ledger", sys.executable), ("unclaimed", sys.executable), ("memory", sys.executable)],
            run,
        )
        stats = gw.cmd(op="stats")
    sec.header = (
        "impl",
        "wall s (median)",
        "ideal s",
        "vs ideal",
        "client CPU s",
        "rows",
        "errors",
    )
    for impl in ("ledger", "unclaimed", "memory"):
        wall = med(results, impl, "wall")
        lost = max(n - min(r["rows"] for r in results[impl]), 0)
        errors = max(r["errors"] for r in results[impl])
        sec.rows.append(
            (
                impl,
                f"{wall:.3f}",
                f"{ideal:.2f}",
                f"{wall / ideal:.2f}x",
                f"{med(results, impl, 'cpu'):.3f}",
                str(n - lost),
                str(errors),
            )
        )
    wall = med(results, "ledger", "wall")
    cost = wall / med(results, "memory", "wall") - 1
    judge = not ctx.smoke
    sec.target(
        "ledger: <= 1.2x ideal", f"{wall / ideal:.2f}x", (wall / ideal <= 1.2) if judge else None
    )
    sec.target("ledger cost (wall) <= 5%", f"{cost * 100:+.1f}%", (cost <= 0.05) if judge else None)
    claims = wall / med(results, "unclaimed", "wall") - 1
    sec.target(
        "claims cost (wall) <= 5%", f"{claims * 100:+.1f}%", (claims <= 0.05) if judge else None
    )
    bad = sum(max(r["errors"] for r in results[i]) for i in results)
    sec.target("no row lost (rows with data, no error)", f"{bad} errors", bad == 0)
    sec.notes.append(f"gateway peak / 429s over all rounds: {stats['peak']} / {stats['rejected']}")
    return sec


def bench_storm(ctx: Ctx) -> Section:
    n, limit, delay = (10 if ctx.smoke else 100), 2, 0.1
    ideal = -(-n // limit) * delay
    sec = Section(
        "storm",
        f"6b. extract on a busy gateway: {n} rows, limit {limit}, concurrency=8",
        f"`auto`: the limit is read from `/health`. `storm`: `/health` does not report it "
        f"(`report_concurrency=False`) and `concurrency=8` is asked, so the first wave meets "
        f"429s with `Retry-After: 5`. {delay}s per request; ideal {ideal:.1f}s.",
    )
    with gateway(max_nonstreaming=limit, first_byte_delay=delay) as gw:

        def run(impl: str, python: str) -> dict[str, Any]:
            gw.cmd(op="configure", changes={"report_concurrency": impl == "auto"})
            extra = {"concurrency": 8} if impl == "storm" else {}
            return drive(python, "extract", impl, gw, n=n, **extra)

        results = interleaved(ctx, [("auto", sys.executable), ("storm", sys.executable)], run)
    sec.header = ("impl", "wall s (median)", "rows/s", "vs auto", "429s", "Retry-After waits")
    auto = med(results, "auto", "wall")
    for impl in ("auto", "storm"):
        wall = med(results, impl, "wall")
        sec.rows.append(
            (
                impl,
                f"{wall:.3f}",
                f"{n / wall:.1f}",
                f"{auto / wall:.2f}x",
                str(max(r["throttled"] for r in results[impl])),
                str(max(r["waits_429"] for r in results[impl])),
            )
        )
    ratio = auto / med(results, "storm", "wall")
    sec.target(
        "storm throughput >= 0.7x auto", f"{ratio:.2f}x", None if ctx.smoke else ratio >= 0.7
    )
    bad = sum(max(r["errors"] for r in results[i]) for i in results)
    sec.target("no row lost", f"{bad} errors", bad == 0)
    return sec


# -- 7. memory -------------------------------------------------------------------------------


def bench_memory(ctx: Ctx) -> Section:
    sizes = (1_000_000, 3_000_000) if ctx.smoke else (10_000_000, 50_000_000)
    sec = Section(
        "memory",
        f"7. peak memory of a {sizes[-1] // 1_000_000} MB /stream consumed chunk by chunk",
        "`[[bytes=N]]`: N bytes of text in 16 KiB `text` events. Each measurement in a fresh "
        "process: tracemalloc peak of the stream (the allocations the Python code makes) and the "
        "growth of peak RSS over the RSS before the stream. `keep_text=True` is the default "
        "(`r.text()` available); `keep_text=False` keeps no text.",
    )
    rows: dict[tuple[str, bool], dict[int, dict[str, Any]]] = {}
    with gateway() as gw:
        for impl in ("ours", "ours-sync"):
            for keep in (True, False):
                for size in sizes:
                    res = drive(sys.executable, "memory", impl, gw, size=size, keep_text=keep)
                    rows.setdefault((impl, keep), {})[size] = res
                    log(
                        f"  {impl:9s} keep_text={keep!s:5s} {size / 1e6:.0f} MB: "
                        f"tracemalloc peak {res['tracemalloc_peak_mb']:.1f} MB, "
                        f"RSS growth {res['rss_peak_growth_mb']:.1f} MB"
                    )
    small, big = sizes
    sec.header = (
        "client",
        "keep_text",
        *(f"tracemalloc peak MB @ {s // 1_000_000} MB" for s in sizes),
        *(f"peak RSS growth MB @ {s // 1_000_000} MB" for s in sizes),
        "top allocation at the end",
    )
    for (impl, keep), by_size in rows.items():
        top = by_size[big]["top"][0] if by_size[big]["top"] else {"where": "-", "mb": 0}
        sec.rows.append(
            (
                impl,
                str(keep),
                *(f"{by_size[s]['tracemalloc_peak_mb']:.1f}" for s in sizes),
                *(f"{by_size[s]['rss_peak_growth_mb']:.1f}" for s in sizes),
                f"{top['where']} ({top['mb']} MB)",
            )
        )
    for impl in ("ours", "ours-sync"):
        flat = rows[(impl, False)]
        grow = flat[big]["tracemalloc_peak_mb"] - flat[small]["tracemalloc_peak_mb"]
        rss_grow = flat[big]["rss_peak_growth_mb"] - flat[small]["rss_peak_growth_mb"]
        sec.target(
            f"{impl}, keep_text=False: does not grow with stream length",
            f"{small // 1_000_000}→{big // 1_000_000} MB: tracemalloc peak +{grow:.1f} MB, "
            f"RSS +{rss_grow:.1f} MB",
            None if ctx.smoke else (grow < 2 and rss_grow < 8),
        )
        kept = rows[(impl, True)]
        sec.target(
            f"(info) {impl}, keep_text=True (default)",
            f"tracemalloc peak {kept[big]['tracemalloc_peak_mb']:.0f} MB for "
            f"{big // 1_000_000} MB of text",
            None,
        )
    return sec


# -- 6c. extract on Dask ---------------------------------------------------------------------


def bench_dask(ctx: Ctx) -> Section:
    n, partitions, limit, delay = (40, 4, 2, 0.05) if ctx.smoke else (400, 8, 2, 0.05)
    impls = {  # impl: (driver impl, worker processes, limit per gateway)
        "pandas": ("pandas", 0, limit),
        "dask 1 worker": ("dask-1", 1, limit),
        "dask 2 workers": ("dask-2", 2, limit),
        "dask 2 workers, 2x limit": ("dask-2", 2, 2 * limit),
    }
    sec = Section(
        "dask",
        f"6c. extract on Dask: {n} rows, 2 gateways (limit {limit} each, {delay * 1000:.0f} ms)",
        f"`extract(ddf, Person, client=[config_1, config_2])` of {n} fresh rows in {partitions} "
        "partitions, computed on a `LocalCluster` of 1 or 2 worker processes (2 threads each, "
        "started and warmed up before the clock), every request holding a lease of its gateway's "
        "`distributed.Semaphore`; `pandas` is the same call on a pandas Series in one process "
        f"(no Dask). Two gateways in their own processes answer after {delay}s; the ideal is "
        f"2 x limit / {delay}s rows/s. The last row doubles both gateways' limits.",
    )
    with gateway(first_byte_delay=delay) as g1, gateway(first_byte_delay=delay) as g2:
        peaks: dict[str, list[int]] = {}

        def run(impl: str, python: str) -> dict[str, Any]:
            driver, _, lim = impls[impl]
            for g in (g1, g2):
                g.cmd(op="reset")
                g.cmd(op="configure", changes={"max_nonstreaming": lim})
            payload = json.dumps(
                {"gateways": [[g1.url, g1.key], [g2.url, g2.key]], "n": n, "partitions": partitions}
            )
            out = subprocess.run(
                [python, str(HERE / "_dask_driver.py"), driver, payload],
                capture_output=True,
                text=True,
                cwd=HERE,
                timeout=900,
            )
            if out.returncode != 0:
                raise RuntimeError(f"dask/{impl} failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            stats = [g.cmd(op="stats") for g in (g1, g2)]
            peaks.setdefault(impl, []).extend(s["peak"]["nonStreaming"] for s in stats)
            res["rejected"] = sum(s["rejected"] for s in stats)
            res["cpu"] = res["gateway_cpu"] = 0.0
            return res

        results = interleaved(ctx, [(i, sys.executable) for i in impls], run)
    sec.header = ("impl", "workers", "limit / gateway", "rows/s", "ideal rows/s", "vs ideal",
                  "peak / gateway", "429s", "rows ok")  # fmt: skip
    rate = {impl: n / med(results, impl, "wall") for impl in impls}
    for impl, (_, workers, lim) in impls.items():
        ideal = 2 * lim / delay
        ok = min(r["rows"] - r["errors"] for r in results[impl])
        sec.rows.append((impl, str(workers or "-"), str(lim), f"{rate[impl]:.1f}", f"{ideal:.0f}",
                         f"{rate[impl] / ideal:.2f}x", str(max(peaks[impl])),
                         str(sum(r["rejected"] for r in results[impl])), str(ok)))  # fmt: skip
    judge = not ctx.smoke
    two_vs_one = rate["dask 2 workers"] / rate["dask 1 worker"]
    doubled = rate["dask 2 workers, 2x limit"] / rate["dask 2 workers"]
    vs_ideal = rate["dask 2 workers"] / (2 * limit / delay)
    sec.target("2 workers vs 1 worker (rows/s ratio)", f"{two_vs_one:.2f}x", None)
    sec.target(
        "2 workers >= 0.7x ideal 2L/t", f"{vs_ideal:.2f}x", (vs_ideal >= 0.7) if judge else None
    )
    sec.target(
        "2x gateway limit -> >= 1.6x rows/s", f"{doubled:.2f}x", (doubled >= 1.6) if judge else None
    )
    within = all(max(peaks[i]) <= impls[i][2] for i in impls)
    rejected = sum(r["rejected"] for rs in results.values() for r in rs)
    sec.target("peak <= limit per gateway, no 429", f"{rejected} 429s", within and rejected == 0)
    lost = sum(
        r["rows"] - r["errors"] != n or not r["unique"] for rs in results.values() for r in rs
    )
    sec.target("every row once, no error", f"{lost} runs with a lost row", lost == 0)
    return sec


def bench_render(ctx: Ctx) -> Section:
    from _render import render_times

    size = 5_000 if ctx.smoke else 200_000
    answer = markdown_answer(size)
    sec = Section(
        "render",
        f"5b. The renderer of untrusted answers on a {len(answer.encode()) // 1000} KB answer",
        "In-process, the same Markdown answer as section 5: `reference` = markdown-it alone "
        "(raw HTML off; the renderer before answers were sanitized), `to_html` = koine's "
        "renderer (link/image rules + nh3 allowlist) on the whole answer, `live` = what "
        "markdown mode renders while streaming (each finished block once) plus the final "
        "answer. Compare `live` with section 5's markdown-mode cell time (1.118 s for this "
        "answer before the renderer, RESULTS.md of the previous run).",
    )
    times = render_times(answer, max(3, ctx.rounds))
    base = times["reference"]
    sec.header = ("way", "time s (median)", "vs reference")
    for name, t in times.items():
        sec.rows.append((name, f"{t:.3f}", f"{t / base:.2f}x"))
    judge = None if ctx.smoke else times["live"] <= 0.25 * 1.118
    sec.target(
        "live (blocks + final) <= 25% of markdown mode's 1.118 s cell",
        f"{times['live']:.3f} s",
        judge,
    )
    return sec


def bench_startup(ctx: Ctx) -> Section:
    from _startup import startup_times

    rounds = 3 if ctx.smoke else 21
    sec = Section(
        "startup",
        "0. Start-up: import in a fresh interpreter",
        f"`python -c ...` in a new process, {rounds} interleaved runs, median wall time. "
        "`import koine_sdk` imports each public name on first use; `create_koine_sync` is what a "
        "script that makes a client imports; `koine --help` is the command's start.",
    )
    times = startup_times(rounds)
    base = times["import httpx, pydantic"]
    sec.header = ("what", "time s (median)", "vs httpx + pydantic")
    for name, t in times.items():
        sec.rows.append((name, f"{t:.3f}", f"{t / base:.2f}x"))
    ratio = times["import koine_sdk"] / base
    sec.target("import koine_sdk <= 1.3x import httpx, pydantic", f"{ratio:.2f}x", ratio <= 1.3)
    help_ratio = times["koine --help"] / base
    sec.target(
        "koine --help <= 1.2x import httpx, pydantic", f"{help_ratio:.2f}x", help_ratio <= 1.2
    )
    return sec


RUNNERS: dict[str, Callable[[Ctx], Section]] = {
    "startup": bench_startup,
    "seq": bench_seq,
    "conc": bench_conc,
    "stream": bench_stream,
    "objects": bench_objects,
    "magic": bench_magic,
    "render": bench_render,
    "extract": bench_extract,
    "storm": bench_storm,
    "dask": bench_dask,
    "memory": bench_memory,
}


def write_results(info: dict[str, str], ctx: Ctx, sections: list[Section], seconds: float) -> None:
    gen = [
        START,
        "",
        f"Generated by `python benchmarks/run.py` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"in {seconds:.0f}s, {ctx.rounds} interleaved rounds (medians).",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        f"| koine-sdk {REF_VERSION} (reference) | {ctx.ref_status} |",
        "",
        *(s.markdown() for s in sections),
        END,
    ]
    block = "\n".join(gen)
    if RESULTS.exists():
        old = RESULTS.read_text()
        if START in old and END in old:
            head, rest = old.split(START, 1)
            tail = rest.split(END, 1)[1]
            RESULTS.write_text(head + block + tail)
            return
    RESULTS.write_text("# Benchmark results\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round, no 2.3.0")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; smoke 1)")
    parser.add_argument("--no-ref", action="store_true", help="skip koine-sdk 2.3.0")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    info = machine()
    log("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    if args.smoke or args.no_ref:
        ref, status = None, "not run (--smoke / --no-ref)"
    else:
        ref, status = reference_python()
    log(f"koine-sdk {REF_VERSION}: {status}")
    ctx = Ctx(args.smoke, args.rounds or (1 if args.smoke else 3), ref, status)
    names = args.only or list(BENCHMARKS)
    sections: list[Section] = []
    failed = False
    for name in names:
        log(f"\n== {name} ==")
        try:
            sec = RUNNERS[name](ctx)
        except Exception as exc:
            failed = True
            log(f"!! {name} failed: {type(exc).__name__}: {exc}")
            sec = Section(name, name, f"FAILED: {type(exc).__name__}: {exc}")
        sections.append(sec)
        log(sec.text())
    if not args.smoke and not args.no_write and not args.only:
        write_results(info, ctx, sections, time.perf_counter() - began)
        log(f"wrote {RESULTS}")
    log(f"done in {time.perf_counter() - began:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
