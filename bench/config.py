"""The benchmark's knobs, read once from ``BENCH_*`` environment variables.

``BENCH_QUICK=1`` shrinks every scenario (smaller files, fewer and shorter runs) for a
run of a couple of minutes; its numbers are only a smoke test. The other variables
override single knobs of either mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

MIB = 1024 * 1024
SCENARIOS = (
    "single", "parallel", "fair", "cold", "ranges", "slow", "steady", "listing", "ceiling",
    "archive",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BenchConfig:
    quick: bool = False
    scenarios: tuple[str, ...] = SCENARIOS
    #: Size of the big (hot) file and of the cold file.
    big_size: int = 1024 * MIB
    #: Repetitions of the full-speed download scenarios (1 and 2), interleaved.
    download_reps: int = 7
    parallel_reps: int = 3
    #: Repetitions of the fairness scenario, and of the cold-read and ranges scenarios.
    fair_reps: int = 3
    reps: int = 3
    parallel_downloads: int = 8
    #: Slow readers: the counts measured (the chart), the goal's count, reps at that count.
    slow_counts: tuple[int, ...] = (100, 300, 1000)
    slow_reps: int = 3
    slow_rate: int = 100 * 1024  # bytes/s per reader, like curl --limit-rate 100k
    slow_seconds: float = 10.0  # each reader reads big.bin this long, then hangs up
    #: Steady state (scenario "steady"): the goal's readers this long, CPU per GB counted
    #: after the first slow_steady_skip seconds (set-up, buffers filling).
    slow_steady_seconds: float = 70.0
    slow_steady_skip: float = 10.0
    #: Fairness: probes per run (one every ``probe_interval`` s) and concurrent downloads.
    probes: int = 300
    probe_interval: float = 0.010
    fair_downloads: int = 2
    #: Random 64 KiB ranges with wrk.
    wrk_seconds: int = 10
    wrk_connections: int = 64
    wrk_threads: int = 2
    range_length: int = 64 * 1024
    #: The cost of one request (scenario 8): wrk with one thread, one worker per peer.
    ceiling_lengths: tuple[int, ...] = (64 * 1024, 4 * 1024)
    ceiling_connections: int = 64
    #: rclone lsl of a folder of this many small files (its page, then a HEAD per file).
    listing_entries: int = 10_000
    #: The whole run stops starting new work after this many seconds.
    budget_seconds: int = 780
    update_doc: bool = True
    results_dir: Path = Path("bench/results")

    @property
    def slow_goal_count(self) -> int:
        return max(self.slow_counts)

    @classmethod
    def from_env(cls) -> BenchConfig:
        quick = _flag("BENCH_QUICK", False)
        config = cls.quick_defaults() if quick else cls()
        slow = os.environ.get("BENCH_SLOW_READERS")
        if slow:
            top = int(slow)
            counts = tuple(sorted({c for c in config.slow_counts if c < top} | {top}))
            config = replace(config, slow_counts=counts)
        overrides: dict[str, object] = {}
        for name, variable in (
            ("download_reps", "BENCH_DOWNLOAD_REPS"),
            ("parallel_reps", "BENCH_PARALLEL_REPS"),
            ("fair_reps", "BENCH_FAIR_REPS"),
            ("reps", "BENCH_REPS"),
            ("slow_reps", "BENCH_SLOW_REPS"),
            ("wrk_seconds", "BENCH_WRK_SECONDS"),
            ("budget_seconds", "BENCH_BUDGET_SECONDS"),
        ):
            if os.environ.get(variable):
                overrides[name] = int(os.environ[variable])
        if os.environ.get("BENCH_SCENARIOS"):
            chosen = tuple(s.strip() for s in os.environ["BENCH_SCENARIOS"].split(","))
            unknown = set(chosen) - set(SCENARIOS)
            if unknown:
                raise SystemExit(f"BENCH_SCENARIOS: unknown {sorted(unknown)}; use {SCENARIOS}")
            overrides["scenarios"] = tuple(s for s in SCENARIOS if s in chosen)
        overrides["update_doc"] = _flag("BENCH_UPDATE_DOC", not quick)
        return replace(config, **overrides)  # type: ignore[arg-type]

    @classmethod
    def quick_defaults(cls) -> BenchConfig:
        return cls(
            quick=True,
            big_size=256 * MIB,
            download_reps=2,
            parallel_reps=1,
            fair_reps=1,
            reps=1,
            slow_counts=(50, 200),
            slow_reps=1,
            slow_seconds=4.0,
            slow_steady_seconds=20.0,
            slow_steady_skip=5.0,
            probes=100,
            wrk_seconds=3,
            budget_seconds=300,
            update_doc=False,
        )

    def as_dict(self) -> dict[str, object]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _flag(variable: str, default: bool) -> bool:
    raw = os.environ.get(variable, "").strip().lower()
    if not raw:
        return default
    return raw in ("1", "true", "yes", "on")
