"""``make bench`` entry point: data, peers, scenarios, report; everything started is stopped.

Phases: (A) every peer with one worker: one download, fairness, cold read, folder
archives (the service alone); (B) every
peer with one worker per core: parallel downloads and random ranges; (C) a fresh
one-worker server per slow-reader run; (D) the service, the bare stack and nginx with
one worker each: the cost of one request. Exit status 1 if a process of ours outlived it.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from bench import datafiles, proc_stats, report, scenarios
from bench.config import BenchConfig
from bench.procs import Processes
from bench.servers import ALL_PEERS, CEILING_PEERS, NGINX, OURS, default_tools, running

REPO = Path(__file__).resolve().parents[1]


def _log_to_stderr(started: float) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    return log


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers get stopped


def _command(config: BenchConfig) -> str:
    paths = ("BENCH_GUNICORN", "BENCH_NGINX")  # set by the Makefile, not by the user
    knobs = " ".join(
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("BENCH_") and k not in paths
    )
    base = "make bench" if os.environ.get("MAKELEVEL") else "bench/.venv/bin/python -m bench.run"
    return f"{knobs} {base}".strip()


def _commit() -> str:
    """The commit measured, flagged when the service's own files differ from it."""
    git = ["git", "-C", str(REPO)]
    head = proc_stats.tool_version([*git, "rev-parse", "--short", "HEAD"])
    changed = proc_stats.tool_version(
        [*git, "status", "--porcelain", "--", "service", "config", "gunicorn.conf.py"]
    )
    return head if changed in ("", "unknown") else f"{head} + uncommitted service changes"


def _versions(tools_gunicorn: Path) -> dict[str, str]:
    from importlib.metadata import version

    service_python = tools_gunicorn.with_name("python")
    code = (
        "from importlib.metadata import version as v;"
        "print(' '.join(f'{p}=={v(p)}' for p in ('gunicorn','gevent','flask','werkzeug')))"
    )
    return {
        "service": proc_stats.tool_version([str(service_python), "-c", code]),
        "bench": " ".join(f"{p}=={version(p)}" for p in ("uvicorn", "starlette", "matplotlib")),
        "nginx": proc_stats.tool_version(["/usr/sbin/nginx", "-v"]).split(": ")[-1],
        "wrk": " ".join(proc_stats.tool_version(["wrk", "-v"]).split()[:2]),
        "curl": " ".join(proc_stats.tool_version(["curl", "--version"]).split()[:2]),
    }


def _phase(
    results: dict[str, Any],
    name: str,
    enabled: bool,
    log: Callable[[str], None],
    action: Callable[[], dict[str, object]],
) -> None:
    if not enabled:
        return
    try:
        results[name] = action()
    except Exception as error:  # one broken scenario must not lose the others
        log(f"{name}: FAILED: {error}")
        traceback.print_exc(file=sys.stderr)
        results[name] = {"error": f"{type(error).__name__}: {error}"}


def run_all(ctx: scenarios.Context, results: dict[str, Any]) -> None:
    chosen = set(ctx.config.scenarios)
    cores = os.cpu_count() or 1
    data_root = ctx.data.root
    if chosen & {"single", "fair", "cold", "archive"}:
        ctx.log("phase A: every peer with one worker")
        with running(ALL_PEERS, 1, data_root, ctx.tools, ctx.procs) as one:
            for server in one.values():
                scenarios.verify(server, ctx.data)
            _phase(
                results,
                "single",
                "single" in chosen,
                ctx.log,
                lambda: scenarios.single_download(ctx, one),
            )
            _phase(results, "fair", "fair" in chosen, ctx.log, lambda: scenarios.fairness(ctx, one))
            _phase(
                results, "cold", "cold" in chosen, ctx.log, lambda: scenarios.cold_read(ctx, one)
            )
            ours = {p.name: one[p.name] for p in OURS}
            _phase(
                results,
                "archive",
                "archive" in chosen,
                ctx.log,
                lambda: scenarios.archives(ctx, ours),
            )
    if chosen & {"parallel", "ranges", "listing"}:
        ctx.log(f"phase B: every peer with {cores} workers")
        with running(ALL_PEERS, cores, data_root, ctx.tools, ctx.procs) as many:
            fast = {p.name: many[p.name] for p in (*OURS, *NGINX)}
            _phase(
                results,
                "parallel",
                "parallel" in chosen,
                ctx.log,
                lambda: scenarios.parallel_downloads(ctx, fast),
            )
            _phase(
                results, "ranges", "ranges" in chosen, ctx.log, lambda: scenarios.ranges(ctx, many)
            )
            walked = {p.name: many[p.name] for p in (*OURS, *NGINX)}
            _phase(
                results,
                "listing",
                "listing" in chosen,
                ctx.log,
                lambda: scenarios.listing(ctx, walked),
            )
    if "ceiling" in chosen:
        ctx.log("phase D: the cost of one request, one worker each")
        with running(CEILING_PEERS, 1, data_root, ctx.tools, ctx.procs) as lone:
            _phase(results, "ceiling", True, ctx.log, lambda: scenarios.ceiling(ctx, lone))
    _phase(
        results,
        "steady",
        "steady" in chosen,
        ctx.log,
        lambda: scenarios.slow_steady(ctx, (*OURS, *NGINX)),
    )
    if "slow" in chosen:
        ctx.log("phase C: slow readers, a fresh one-worker server per run")
    _phase(
        results,
        "slow",
        "slow" in chosen,
        ctx.log,
        lambda: scenarios.slow_readers(ctx, (*OURS, *NGINX)),
    )


def main() -> int:
    config = BenchConfig.from_env()
    started = time.monotonic()
    log = _log_to_stderr(started)
    os.chdir(REPO)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="dl-bench-"))
    tools = default_tools(REPO, workdir)
    results: dict[str, Any] = {}
    leftovers: list[str] = []
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    log(f"workdir {workdir}; quick={config.quick}; scenarios={','.join(config.scenarios)}")
    try:
        log(f"writing data files ({config.big_size // 2**20} MiB x2, random)")
        data = datafiles.create(workdir / "data", config.big_size, config.listing_entries)
        ctx = scenarios.Context(
            config,
            data,
            tools,
            procs,
            scenarios.Budget(config.budget_seconds),
            REPO / "bench" / "ranges.lua",
            log,
        )
        run_all(ctx, results)
    finally:
        procs.stop_all()
        leftovers = procs.leftovers()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    document: dict[str, Any] = {
        "meta": {
            "date": when,
            "command": _command(config),
            "runtime_s": round(elapsed, 1),
            "machine": proc_stats.machine(),
            "commit": _commit(),
            "versions": _versions(tools.gunicorn),
            "config": config.as_dict(),
            "processes_left": leftovers,
        },
        **results,
    }
    document = report.sanitize(document)
    found = report.goals(document)
    tables = report.tables(document, document["meta"]["config"])
    goal_text = report.goal_lines(found)
    results_dir = REPO / config.results_dir
    report.write_json(results_dir / "latest.json", document, found)
    drew = report.chart(results_dir / "latest.png", document)
    print(tables)
    print("\n### Goals\n")
    print(goal_text)
    print(f"\ntotal runtime {elapsed:.0f} s; JSON {config.results_dir / 'latest.json'}", end="")
    print(f"; chart {config.results_dir / 'latest.png'}" if drew else "; no chart")
    if config.update_doc:
        report.update_doc(REPO / "BENCHMARKS.md", _doc_block(document, tables, goal_text))
        print("BENCHMARKS.md updated")
    if leftovers:
        print("processes still running:\n" + "\n".join(leftovers), file=sys.stderr)
        return 1
    print("processes left behind: none (pgrep -g over every process group started)")
    return 0


def _doc_block(document: dict[str, Any], tables: str, goal_text: str) -> str:
    meta = document["meta"]
    machine = meta["machine"]
    versions = meta["versions"]
    return f"""## Latest run

- date: {meta["date"]}; total runtime {meta["runtime_s"]:.0f} s
- command: `{meta["command"]}` at commit {meta["commit"]}
- machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["memory"]} memory, \
Linux {machine["kernel"]}, Python {machine["python"]}; shared and noisy
- service: {versions["service"]}; peers: {versions["bench"]}
- tools: {versions["nginx"]}; {versions["wrk"]}; {versions["curl"]}

### Goals

{goal_text}

{tables}
"""


if __name__ == "__main__":
    sys.exit(main())
