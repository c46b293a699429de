"""Tables of medians and ratios, the goals, JSON, the chart, BENCHMARKS.md."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.servers import ALL_PEERS, BARE, NGINX, OURS

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
LABELS = {p.name: p.label for p in (*ALL_PEERS, BARE)}
FAIR_P99_MS = 20.0


@dataclass(frozen=True, slots=True)
class Goal:
    goal: int
    title: str
    peer: str
    ratio: float | None
    ratio_of: str  # what the ratio compares with, e.g. "the faster nginx"
    measured: str
    target: str
    met: bool | None  # None: not measured

    def line(self) -> str:
        verdict = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[self.met]
        ratio = "" if self.ratio is None else f"{self.ratio:.3f}x {self.ratio_of}; "
        return (
            f"goal {self.goal} {self.title} [{LABELS.get(self.peer, self.peer)}]: "
            f"{ratio}{self.measured} (target {self.target}) -> {verdict}"
        )


# -- reading results -------------------------------------------------------------------


def _median(scenario: Mapping[str, Any] | None, peer: str, key: str) -> float | None:
    if not scenario:
        return None
    value = scenario.get("peers", {}).get(peer, {}).get("median", {}).get(key)
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def _best(
    scenario: Mapping[str, Any] | None, peers: Sequence[str], key: str, low: bool = False
) -> float | None:
    values = [v for p in peers if (v := _median(scenario, p, key)) is not None]
    if not values:
        return None
    return min(values) if low else max(values)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


def _runs(scenario: Mapping[str, Any] | None, peer: str) -> list[Mapping[str, Any]]:
    if not scenario:
        return []
    runs: list[Mapping[str, Any]] = scenario.get("peers", {}).get(peer, {}).get("runs", [])
    return runs


# -- goals -----------------------------------------------------------------------------


def goals(results: Mapping[str, Any]) -> list[Goal]:
    found: list[Goal] = []
    nginx = [p.name for p in NGINX]
    single, parallel = results.get("single"), results.get("parallel")
    fair, cold, ranges_ = results.get("fair"), results.get("cold"), results.get("ranges")
    size = results.get("meta", {}).get("config", {}).get("big_size", 1024**3) / 1024**3
    faster = "the faster nginx"
    for peer in (p.name for p in OURS):
        mine, best = _median(single, peer, "mb_s"), _best(single, nginx, "mb_s")
        ratio = _ratio(mine, best)
        found.append(
            Goal(
                1,
                f"one {size:g} GiB download",
                peer,
                ratio,
                faster,
                _vs(mine, best, "MB/s"),
                f">= 0.9x {faster}",
                None if ratio is None else ratio >= 0.9,
            )
        )
    for peer in (p.name for p in OURS):
        mine = _median(parallel, peer, "aggregate_mb_s")
        best = _best(parallel, nginx, "aggregate_mb_s")
        ratio = _ratio(mine, best)
        count = parallel.get("downloads", 8) if parallel else 8
        found.append(
            Goal(
                2,
                f"{count} parallel downloads",
                peer,
                ratio,
                faster,
                _vs(mine, best, "MB/s aggregate"),
                f">= 0.8x {faster}",
                None if ratio is None else ratio >= 0.8,
            )
        )
    found += _slow_goals(results.get("slow"))
    for number, scenario, title, during in (
        (4, fair, "fairness", "while full-speed downloads run"),
        (6, cold, "cold read", "while cold downloads run"),
    ):
        for peer in (p.name for p in OURS):
            p50, p99 = _median(scenario, peer, "p50_ms"), _median(scenario, peer, "p99_ms")
            found.append(
                Goal(
                    number,
                    title,
                    peer,
                    None,
                    "",
                    "not measured" if p99 is None else f"p99 {p99:.1f} ms (p50 {p50:.1f}) {during}",
                    f"p99 < {FAIR_P99_MS:.0f} ms",
                    None if p99 is None else p99 < FAIR_P99_MS,
                )
            )
    for peer in (p.name for p in OURS):
        mine = _median(ranges_, peer, "requests_per_s")
        best = _best(ranges_, nginx, "requests_per_s")
        ratio = _ratio(mine, best)
        measured = _vs(mine, best, "req/s")
        for other, name in (("werkzeug", "Werkzeug send_file"), ("starlette", "Starlette")):
            r = _ratio(mine, _median(ranges_, other, "requests_per_s"))
            if r is not None:
                measured += f"; {r:.2f}x {name}"
        found.append(
            Goal(
                5,
                "random 64 KiB ranges",
                peer,
                ratio,
                faster,
                measured,
                f">= 0.15x {faster}",
                None if ratio is None else ratio >= 0.15,
            )
        )
    found += _listing_goals(results.get("listing"))
    found += _ceiling_goals(results.get("ceiling"))
    found += _archive_goals(results.get("archive"))
    return sorted(found, key=lambda g: g.goal)


#: The issue's bounds: an archive's throughput against one file of the same bytes, and
#: the first byte of the archive of a folder of 10,000 small files.
ARCHIVE_RATIO = 0.9
ARCHIVE_FIRST_BYTE_S = 1.0


def _archive_goals(archive: Mapping[str, Any] | None) -> list[Goal]:
    found: list[Goal] = []
    entries = archive["entries"] if archive else 10_000
    for peer in (p.name for p in OURS):
        runs = _runs(archive, peer)
        exact = bool(runs) and all(bool(r.get("ok")) for r in runs)
        file_mb_s = _median(archive, peer, "file_mb_s")
        for kind in ("tar", "zip"):
            ratio = _median(archive, peer, f"{kind}_ratio")
            mb_s = _median(archive, peer, f"{kind}_mb_s")
            found.append(
                Goal(
                    9,
                    f"{kind} of eight files, one worker",
                    peer,
                    ratio,
                    "one file of the same bytes",
                    _vs(mb_s, file_mb_s, "MB/s") + f"; bytes ok: {_fmt(exact)}",
                    f">= {ARCHIVE_RATIO:g}x",
                    None if ratio is None else exact and ratio >= ARCHIVE_RATIO,
                )
            )
            first = _median(archive, peer, f"many_{kind}_first_byte_s")
            total = _median(archive, peer, f"many_{kind}_seconds")
            rise = _median(archive, peer, f"many_{kind}_rss_rise_mb")
            found.append(
                Goal(
                    9,
                    f"first byte of the {kind} of {entries:,} small files",
                    peer,
                    None,
                    "",
                    "not measured"
                    if first is None
                    else f"{first:.3f} s (whole: {_fmt(total, 2)} s; RSS rise {_fmt(rise, 1)} MB)",
                    f"< {ARCHIVE_FIRST_BYTE_S:g} s",
                    None if first is None else first < ARCHIVE_FIRST_BYTE_S,
                )
            )
    return found


#: The issue's bound: the service's CPU per request at most this many times the bare
#: WSGI function's under the same gunicorn + gevent worker.
CEILING_RATIO = 2.0


def _ceiling_goals(ceiling: Mapping[str, Any] | None) -> list[Goal]:
    found: list[Goal] = []
    lengths = ceiling["lengths"] if ceiling else {}
    for length, scenario in lengths.items():
        mine = _median(scenario, "svc-sendfile", "cpu_us_per_request")
        bare = _median(scenario, "bare", "cpu_us_per_request")
        nginx = _median(scenario, "nginx-sendfile", "cpu_us_per_request")
        ratio = _ratio(mine, bare)
        measured = "not measured"
        if mine is not None and bare is not None:
            measured = f"{mine:.0f} us vs {bare:.0f} us of CPU per request"
            if nginx:
                measured += f" (nginx {nginx:.0f} us)"
        found.append(
            Goal(
                8,
                f"CPU per random {int(length) // 1024} KiB range",
                "svc-sendfile",
                ratio,
                "the bare WSGI function's",
                measured,
                f"<= {CEILING_RATIO:g}x the bare stack",
                None if ratio is None else ratio <= CEILING_RATIO,
            )
        )
    return found


#: The issue's bound for rclone listing a folder of 10,000 entries.
LISTING_SECONDS = 5.0


def _listing_goals(listing: Mapping[str, Any] | None) -> list[Goal]:
    found: list[Goal] = []
    entries = listing["entries"] if listing else 10_000
    nginx_s = _best(listing, [p.name for p in NGINX], "seconds", low=True)
    for peer in (p.name for p in OURS):
        mine = _median(listing, peer, "seconds")
        runs = _runs(listing, peer)
        exact = bool(runs) and all(bool(r.get("ok")) for r in runs)
        found.append(
            Goal(
                7,
                f"rclone lists {entries:,} entries",
                peer,
                _ratio(mine, nginx_s),
                "nginx autoindex's time",
                "not measured"
                if mine is None or nginx_s is None
                else f"{mine:.2f} s vs {nginx_s:.2f} s; every entry right: {_fmt(exact)}",
                f"< {LISTING_SECONDS:g} s, every entry right",
                None if mine is None else exact and mine < LISTING_SECONDS,
            )
        )
    return found


def _slow_goals(slow: Mapping[str, Any] | None) -> list[Goal]:
    found: list[Goal] = []
    count = str(slow["goal_count"]) if slow else "1000"
    at_goal = {"peers": slow["counts"].get(count, {})} if slow else None
    nginx_cpu = _best(at_goal, [p.name for p in NGINX], "server_cpu_s_per_gb", low=True)
    target = "all bytes exact, RSS < 100 MB, <= 32 KiB/conn, CPU/GB <= 1.5x nginx"
    for peer in (p.name for p in OURS):
        runs = _runs(at_goal, peer)
        if not runs:
            found.append(
                Goal(3, f"{count} slow readers", peer, None, "", "not measured", target, None)
            )
            continue
        exact = all(bool(r.get("all_exact")) for r in runs)
        rss = _median(at_goal, peer, "peak_rss_mb") or 0.0
        per = _median(at_goal, peer, "rss_per_connection_kib") or 0.0
        cpu_ratio = _ratio(_median(at_goal, peer, "server_cpu_s_per_gb"), nginx_cpu)
        met = exact and rss < 100 and per <= 32 and cpu_ratio is not None and cpu_ratio <= 1.5
        found.append(
            Goal(
                3,
                f"{count} slow readers on one worker",
                peer,
                cpu_ratio,
                "nginx's CPU per GB",
                f"bytes exact: {'all' if exact else 'NO'}; peak RSS {rss:.0f} MB; "
                f"{per:.0f} KiB per connection",
                target,
                met,
            )
        )
    return found


def _vs(mine: float | None, base: float | None, unit: str) -> str:
    if mine is None or base is None:
        return "not measured"
    return f"{mine:,.0f} vs {base:,.0f} {unit}"


# -- tables ----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _range(summary: Mapping[str, Any], digits: int = 0) -> str:
    span = summary.get("range") or []
    return f"{_fmt(span[0], digits)}-{_fmt(span[1], digits)}" if len(span) == 2 else "-"


def _all_ok(summary: Mapping[str, Any], key: str = "ok") -> str:
    runs = summary.get("runs", [])
    return _fmt(all(bool(r.get(key)) for r in runs)) if runs else "-"


def _probe_cells(m: Mapping[str, Any]) -> list[str]:
    """p50, p99 and max latency, probes and failures of a latency-probe median."""
    return [
        _fmt(m.get("p50_ms"), 2),
        _fmt(m.get("p99_ms"), 2),
        _fmt(m.get("max_ms"), 1),
        _fmt(m.get("probes")),
        _fmt(m.get("failures")),
    ]


def tables(results: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    parts: list[str] = []
    nginx = [p.name for p in NGINX]
    size_gib = config["big_size"] / 1024**3
    single = results.get("single")
    if single and "peers" in single:
        best = _best(single, nginx, "mb_s")
        nginx_cpu = _best(single, nginx, "server_cpu_s_per_gb", low=True)
        rows = []
        for name, s in single["peers"].items():
            m = s["median"]
            rows.append(
                [
                    LABELS[name],
                    _fmt(m.get("mb_s")),
                    _range(s),
                    _fmt(_ratio(m.get("mb_s"), best), 2),
                    _fmt(m.get("server_cpu_s_per_gb"), 3),
                    _fmt(_ratio(m.get("server_cpu_s_per_gb"), nginx_cpu), 2),
                    _fmt(m.get("client_cpu_s_per_gb"), 3),
                    f"{len(s['runs'])}",
                    _all_ok(s),
                ]
            )
        parts.append(
            f"### 1. One {size_gib:g} GiB download (curl, one worker each)\n\n"
            + _table(
                [
                    "peer",
                    "MB/s",
                    "range",
                    "x faster nginx",
                    "server CPU-s/GB",
                    "x nginx CPU",
                    "curl CPU-s/GB",
                    "runs",
                    "bytes ok",
                ],
                rows,
            )
        )
    parallel = results.get("parallel")
    if parallel and "peers" in parallel:
        best = _best(parallel, nginx, "aggregate_mb_s")
        rows = [
            [
                LABELS[name],
                _fmt(s["median"].get("aggregate_mb_s")),
                _range(s),
                _fmt(_ratio(s["median"].get("aggregate_mb_s"), best), 2),
                _fmt(s["median"].get("server_cpu_s_per_gb"), 3),
                f"{len(s['runs'])}",
                _all_ok(s),
            ]
            for name, s in parallel["peers"].items()
        ]
        parts.append(
            f"### 2. {parallel['downloads']} parallel {size_gib:g} GiB downloads "
            f"(workers = cores)\n\n"
            + _table(
                [
                    "peer",
                    "aggregate MB/s",
                    "range",
                    "x faster nginx",
                    "server CPU-s/GB",
                    "runs",
                    "bytes ok",
                ],
                rows,
            )
        )
    slow = results.get("slow")
    if slow and "counts" in slow:
        rows = []
        for count, peers in slow["counts"].items():
            base = _best({"peers": peers}, nginx, "server_cpu_s_per_gb", low=True)
            for name, s in peers.items():
                m = s["median"]
                runs = s["runs"]
                exact = f"{min(int(r.get('exact', 0)) for r in runs)}/{count}" if runs else "-"
                rows.append(
                    [
                        count,
                        LABELS[name],
                        exact,
                        _fmt(m.get("peak_rss_mb"), 1),
                        _fmt(m.get("rss_per_connection_kib"), 1),
                        _fmt(m.get("server_cpu_s_per_gb"), 2),
                        _fmt(_ratio(m.get("server_cpu_s_per_gb"), base), 2),
                        _fmt(m.get("server_cpu_s_per_gb_read"), 2),
                        f"{_fmt(m.get('read_mb'))} / {_fmt(m.get('written_mb'))}",
                        _fmt(m.get("reader_kib_s_median"), 0),
                        f"{_fmt(m.get('peak_fds'))} / {_fmt(m.get('fds_after'))}",
                        f"{len(runs)}",
                    ]
                )
        rate = slow["rate_bytes_s"] / 1024
        parts.append(
            f"### 3. Slow readers ({rate:g} KiB/s each for {slow['seconds']:g} s, "
            "one fresh worker)\n\n"
            + _table(
                [
                    "readers",
                    "peer",
                    "bytes exact (min)",
                    "peak RSS MB",
                    "RSS/conn KiB",
                    "CPU-s/GB written",
                    "x nginx CPU",
                    "CPU-s/GB read",
                    "MB read / written",
                    "KiB/s per reader",
                    "fds peak / after",
                    "runs",
                ],
                rows,
            )
        )
    steady = results.get("steady")
    if steady and "peers" in steady:
        nginx_cpu = _best(steady, [p.name for p in NGINX], "steady_cpu_s_per_gb", low=True)
        rows = []
        for name, summary in steady["peers"].items():
            m = summary["median"]
            rows.append(
                [
                    LABELS[name],
                    f"{_fmt(m.get('exact'))}/{steady['readers']}",
                    _fmt(m.get("steady_cpu_s_per_gb"), 2),
                    _fmt(_ratio(m.get("steady_cpu_s_per_gb"), nginx_cpu), 2),
                    _fmt(m.get("server_cpu_s_per_gb"), 2),
                    f"{len(summary['runs'])}",
                ]
            )
        parts.append(
            f"### 3b. Slow readers in a steady state ({steady['readers']} readers for "
            f"{steady['seconds']:g} s; CPU counted after the first {steady['skip']:g} s)\n\n"
            + _table(
                [
                    "peer",
                    "bytes exact",
                    "CPU-s/GB, steady",
                    "x nginx",
                    "CPU-s/GB, whole run",
                    "runs",
                ],
                rows,
            )
        )
    fair = results.get("fair")
    if fair and "peers" in fair:
        base = fair["idle_baseline"]
        rows = [
            [
                f"{LABELS[base['peer']]} (idle, no download)",
                *_probe_cells(base),
                "-",
                "1",
            ]
        ]
        for name, s in fair["peers"].items():
            m = s["median"]
            rows.append(
                [
                    LABELS[name],
                    *_probe_cells(m),
                    _fmt(m.get("download_mb_s")),
                    f"{len(s['runs'])}",
                ]
            )
        parts.append(
            f"### 4. Fairness: 1-byte range every 10 ms during {fair['downloads']} "
            "full-speed downloads (one worker)\n\n"
            + _table(
                [
                    "peer",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "probes",
                    "failures",
                    "download MB/s",
                    "runs",
                ],
                rows,
            )
        )
    ranges_ = results.get("ranges")
    if ranges_ and "peers" in ranges_:
        best = _best(ranges_, nginx, "requests_per_s")
        ours = _median(ranges_, OURS[0].name, "requests_per_s")
        rows = []
        for name, s in ranges_["peers"].items():
            m = s["median"]
            rows.append(
                [
                    LABELS[name],
                    _fmt(m.get("requests_per_s")),
                    _range(s),
                    _fmt(_ratio(m.get("requests_per_s"), best), 3),
                    _fmt(_ratio(ours, m.get("requests_per_s")), 2),
                    _fmt(m.get("latency_avg_ms"), 1),
                    _fmt(m.get("latency_max_ms"), 0),
                    _fmt(m.get("non_2xx")),
                    _fmt(m.get("socket_errors")),
                    f"{len(s['runs'])}",
                ]
            )
        parts.append(
            f"### 5. Random 64 KiB ranges (wrk -t{ranges_['threads']} "
            f"-c{ranges_['connections']} -d{ranges_['seconds']}s, keep-alive, "
            "workers = cores)\n\n"
            + _table(
                [
                    "peer",
                    "req/s",
                    "range",
                    "x faster nginx",
                    "ours (sendfile=1) x this",
                    "avg ms",
                    "max ms",
                    "non-2xx",
                    "socket errors",
                    "runs",
                ],
                rows,
            )
        )
        if ranges_.get("restarts_after_run"):
            parts[-1] += (
                "\n\nRestarted after a run because still busy 30 s after wrk stopped: "
                + ", ".join(f"{k} ({v}x)" for k, v in ranges_["restarts_after_run"].items())
            )
    listing = results.get("listing")
    if listing and "peers" in listing:
        fastest = _best(listing, nginx, "seconds", low=True)
        rows = [
            [
                LABELS[name],
                _fmt(s["median"].get("seconds"), 2),
                _range(s, 2),
                _fmt(_ratio(s["median"].get("seconds"), fastest), 2),
                _fmt(s["median"].get("server_cpu_ms_per_entry"), 3),
                f"{len(s['runs'])}",
                _all_ok(s),
            ]
            for name, s in listing["peers"].items()
        ]
        parts.append(
            f"### 7. rclone lsl of a folder of {listing['entries']:,} files (its index page, "
            "then a HEAD per file; workers = cores)\n\n"
            + _table(
                [
                    "peer",
                    "seconds",
                    "range",
                    "x nginx time",
                    "server CPU-ms/entry",
                    "runs",
                    "all right",
                ],
                rows,
            )
        )
    ceiling = results.get("ceiling")
    if ceiling and "lengths" in ceiling:
        rows = []
        for length, scenario in ceiling["lengths"].items():
            bare = _median(scenario, "bare", "cpu_us_per_request")
            for name, summary in scenario["peers"].items():
                m = summary["median"]
                rows.append(
                    [
                        f"{int(length) // 1024} KiB",
                        LABELS[name],
                        _fmt(m.get("cpu_us_per_request")),
                        _fmt(_ratio(m.get("cpu_us_per_request"), bare), 2),
                        _fmt(m.get("requests_per_s")),
                        _fmt(m.get("latency_max_ms")),
                        _fmt(m.get("non_2xx")),
                        f"{len(summary['runs'])}",
                    ]
                )
        parts.append(
            "### 8. The cost of one request: random single ranges, wrk -t1 "
            f"-c{ceiling['connections']}, one worker each\n\n"
            + _table(
                [
                    "range",
                    "peer",
                    "CPU us/request",
                    "x bare",
                    "req/s",
                    "max ms",
                    "non-2xx",
                    "runs",
                ],
                rows,
            )
        )
    archive = results.get("archive")
    if archive and "peers" in archive:
        rows = []
        for name, s in archive["peers"].items():
            m = s["median"]
            for label in ("file", "tar", "zip"):
                rows.append(
                    [
                        LABELS[name],
                        "big.bin" if label == "file" else f"eight/?format={label}",
                        _fmt(m.get(f"{label}_mb_s")),
                        "1.00" if label == "file" else _fmt(m.get(f"{label}_ratio"), 2),
                        _fmt(m.get(f"{label}_cpu_s_per_gb"), 3),
                        "-" if label == "file" else _fmt(m.get(f"many_{label}_first_byte_s"), 3),
                        "-" if label == "file" else _fmt(m.get(f"many_{label}_seconds"), 2),
                        "-" if label == "file" else _fmt(m.get(f"many_{label}_rss_rise_mb"), 1),
                        "-" if label == "file" else _fmt(m.get(f"many_{label}_peak_rss_mb"), 1),
                        f"{len(s['runs'])}",
                        _all_ok(s),
                    ]
                )
        parts.append(
            f"### 9. Folder archives: {size_gib:g} GiB as {archive['parts']} files against one "
            f"file, and the archive of {archive['entries']:,} small files (curl, one worker)\n\n"
            + _table(
                [
                    "peer",
                    "download",
                    "MB/s",
                    "x the file",
                    "server CPU-s/GB",
                    "small files: first byte s",
                    "whole s",
                    "RSS rise MB",
                    "peak RSS MB",
                    "runs",
                    "bytes ok",
                ],
                rows,
            )
        )
    cold = results.get("cold")
    if cold and "peers" in cold:
        rows = []
        for name, s in cold["peers"].items():
            m = s["median"]
            rows.append(
                [
                    LABELS[name],
                    *_probe_cells(m),
                    _fmt(m.get("cold_mb_s")),
                    _fmt(m.get("cold_downloads")),
                    _fmt(m.get("cached_before_max"), 3),
                    f"{len(s['runs'])}",
                ]
            )
        parts.append(
            "### 6. Cold read: goal 4's probe while cold.bin downloads, dropped from the "
            "page cache before each (one worker)\n\n"
            + _table(
                [
                    "peer",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "probes",
                    "failures",
                    "cold MB/s",
                    "cold downloads",
                    "cached before",
                    "runs",
                ],
                rows,
            )
        )
    errors = {k: v["error"] for k, v in results.items() if isinstance(v, dict) and "error" in v}
    if errors:
        parts.append(
            "### Scenarios that failed\n\n" + "\n".join(f"- {k}: {v}" for k, v in errors.items())
        )
    return "\n\n".join(parts)


def goal_lines(found: Sequence[Goal]) -> str:
    return "\n".join(f"- {g.line()}" for g in found)


# -- files -----------------------------------------------------------------------------


def write_json(path: Path, document: Mapping[str, Any], found: Sequence[Goal]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**document, "goals": [asdict(g) for g in found]}
    path.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")


def _json_default(value: object) -> object:
    return str(value)


def sanitize(value: Any) -> Any:
    """NaN and infinities become None, so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


def chart(path: Path, results: Mapping[str, Any]) -> bool:
    """Throughput and RSS against concurrency; False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    drew = False
    single, parallel = results.get("single"), results.get("parallel")
    ax = axes[0][0]
    for peer in ALL_PEERS:
        points = []
        if (v := _median(single, peer.name, "mb_s")) is not None:
            points.append((1, v))
        if parallel and (v := _median(parallel, peer.name, "aggregate_mb_s")) is not None:
            points.append((int(parallel["downloads"]), v))
        if points:
            drew = True
            ax.plot(*zip(*points, strict=True), marker="o", label=peer.label)
    ax.set(
        title="Full-speed downloads",
        xlabel="parallel downloads (1: one worker; 8: one worker per core)",
        ylabel="aggregate MB/s",
    )
    ax.legend(fontsize=7)
    slow = results.get("slow")
    panels = (
        (axes[0][1], "aggregate_mb_s", "Slow readers: MB/s read by them", "MB/s"),
        (axes[1][0], "peak_rss_mb", "Slow readers: worker peak RSS", "MB"),
        (axes[1][1], "server_cpu_s_per_gb", "Slow readers: server CPU per GB written", "CPU-s/GB"),
    )
    for ax, key, title, unit in panels:
        if slow and "counts" in slow:
            for peer in ALL_PEERS:
                points = []
                for count, peers in slow["counts"].items():
                    value = _median({"peers": peers}, peer.name, key)
                    if value is not None:
                        points.append((int(count), value))
                if points:
                    drew = True
                    ax.plot(*zip(*sorted(points), strict=True), marker="o", label=peer.label)
        ax.set(title=title, xlabel="concurrent slow readers (one worker)", ylabel=unit)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    if drew:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drew


def update_doc(path: Path, block: str) -> None:
    """Replace the generated part of BENCHMARKS.md (between the markers)."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}")
