"""Aggregate throughput of 1, 2 and 3 nodes behind HAProxy on this machine.

    .venv/bin/python -m bench.multinode [--runs 5] [--parallel 8] [--size-mib 256]

Each node is one gunicorn worker over its own replica of a random file that sits in
the page cache; HAProxy uses deploy/haproxy/haproxy.cfg.in as deployed. A run is
``--parallel`` simultaneous whole-file curl downloads to /dev/null; its throughput is
the bytes of all of them over the wall time of the lot. Printed: the median and the
range over ``--runs`` runs per setup, plus one node without HAProxy as the baseline and
three nodes without ``option splice-response``. All processes share one machine, so
the nodes, HAProxy and the curls compete for the same cores: this measures the cost of
the tier and whether it scales at all here, not what separate machines would reach.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.multinode.cluster import HAProxy, Node, start_nodes

HAPROXY = os.environ.get("BENCH_HAPROXY", "/usr/sbin/haproxy")
NAME = "big.bin"


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        for _ in range(size // 2**20):
            file.write(os.urandom(2**20))


def _warm(path: Path) -> None:
    with open(path, "rb") as file:
        while file.read(2**22):
            pass


def _one_run(url: str, parallel: int, size: int) -> float:
    """Bytes per second of ``parallel`` simultaneous whole downloads."""
    argv = ["curl", "-s", "-f", "-o", "/dev/null", "-w", "%{size_download}", url]
    started = time.perf_counter()
    running = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(parallel)]
    sizes = []
    for process in running:
        out, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            raise RuntimeError(f"curl failed with {process.returncode}")
        sizes.append(int(out))
    elapsed = time.perf_counter() - started
    if sizes != [size] * parallel:
        raise RuntimeError(f"short downloads: {sizes}")
    return sum(sizes) / elapsed


@contextmanager
def _setup(
    source: Path, workdir: Path, nodes: int, *, proxy: bool, splice: bool = True
) -> Iterator[str]:
    """Start the nodes (and HAProxy); yields the URL of the file."""
    started: list[Node] = start_nodes(source, workdir, nodes, {"DL_WORKERS": "1"})
    haproxy: HAProxy | None = None
    try:
        for node in started:
            _warm(node.root / NAME)
        if not proxy:
            yield f"{started[0].server.url}/files/{NAME}"
            return
        haproxy = HAProxy(HAPROXY, [node.address for node in started], workdir)
        if not splice:
            text = haproxy.config.read_text().replace("option splice-response", "")
            haproxy.config.write_text(text)
        haproxy.start()
        haproxy.wait_states({node.name: "UP" for node in started})
        yield f"{haproxy.url}/files/{NAME}"
    finally:
        if haproxy is not None:
            haproxy.stop()
        for node in started:
            node.server.stop()


SETUPS = [
    ("1 node, direct (no HAProxy)", 1, False, True),
    ("1 node behind HAProxy", 1, True, True),
    ("2 nodes behind HAProxy", 2, True, True),
    ("3 nodes behind HAProxy", 3, True, True),
    ("3 nodes behind HAProxy, no splice", 3, True, False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    size = args.size_mib * 2**20
    base = Path(tempfile.mkdtemp(prefix="bench-multinode-"))
    try:
        source = base / "source"
        source.mkdir()
        _write_random(source / NAME, size)
        print(f"{os.cpu_count()} CPUs; {args.parallel} parallel downloads of {args.size_mib} MiB")
        for index, (label, nodes, proxy, splice) in enumerate(SETUPS):
            workdir = base / f"setup{index}"
            workdir.mkdir()
            with _setup(source, workdir, nodes, proxy=proxy, splice=splice) as url:
                _one_run(url, args.parallel, size)  # warm-up
                rates = [_one_run(url, args.parallel, size) / 1e9 for _ in range(args.runs)]
            shutil.rmtree(workdir, ignore_errors=True)
            print(
                f"{label:38} median {statistics.median(rates):5.2f} GB/s "
                f"(min {min(rates):.2f}, max {max(rates):.2f})",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
