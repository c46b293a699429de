"""The nginx caching tier (deploy/nginx-cache/) in front of HAProxy and three nodes.

Every test publishes a file of its own on all replicas (same bytes, same mtime), so no
test sees another's cache entries. "From the cache" is proven twice: nginx's
``X-Cache-Status`` and the nodes' access logs, which must show no new request.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from tests.integration import rawhttp
from tests.multinode.cluster import Cluster, NginxCache, by_node
from tests.multinode.conftest import ClusterFactory

pytestmark = [pytest.mark.multinode, pytest.mark.server]

MiB = 2**20
SIZE = 5 * MiB + 123  # five full 1 MiB slices and a short sixth one
# Seconds a cached slice is served without asking the origin: long enough that a busy
# machine still sees its hits as hits, short enough to wait for its expiry.
CACHE_VALID = 3.0
#: How long to wait for an entry to be stale: nginx keeps validity in whole seconds and
#: compares ``valid_sec < now``, so a fraction of a second past CACHE_VALID is not enough.
STALE_AFTER = CACHE_VALID + 1.5


@pytest.fixture(scope="module")
def cluster(
    module_cluster_factory: ClusterFactory,
    nginx_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    source = tmp_path_factory.mktemp("cache-source")
    cluster = module_cluster_factory(source)
    workdir = tmp_path_factory.mktemp("nginx-cache")
    origin = f"{cluster.haproxy.host}:{cluster.haproxy.port}"
    cache = NginxCache(nginx_bin, origin, workdir, f"{CACHE_VALID:g}s")
    cluster.extra.append(cache)
    cache.start()
    yield cluster
    assert "[crit]" not in cache.error_log()
    assert "[alert]" not in cache.error_log()


def _cache(cluster: Cluster) -> NginxCache:
    cache = cluster.extra[0]
    assert isinstance(cache, NginxCache)
    return cache


def _publish(cluster: Cluster, name: str, data: bytes, mtime_ns: int) -> str:
    """The same bytes and mtime on every replica, each replaced atomically."""
    for node in cluster.nodes:
        staged = node.root / f".{name}.new"
        staged.write_bytes(data)
        os.utime(staged, ns=(mtime_ns, mtime_ns))
        os.replace(staged, node.root / name)
    return f"/files/{name}"


def _get(cluster: Cluster, target: str, headers: rawhttp.Headers = ()) -> rawhttp.RawResponse:
    cache = _cache(cluster)
    return rawhttp.get(cache.host, cache.port, target, headers)


def _origin_requests(cluster: Cluster, target: str) -> int:
    return sum(len(lines) for lines in cluster.settled_accesses(target, minimum=0).values())


#: (Range header, first, last) on a SIZE-byte file; None: no Range header (200).
RANGES = [
    (None, 0, SIZE - 1),
    ("bytes=100-2000000", 100, 2000000),  # across a slice boundary
    ("bytes=1048576-1048576", MiB, MiB),  # the first byte of a slice
    ("bytes=-1000", SIZE - 1000, SIZE - 1),  # suffix
    ("bytes=4000000-", 4000000, SIZE - 1),  # open-ended, into the short last slice
    ("bytes=0-", 0, SIZE - 1),
]


def test_ranges_through_the_cache_are_exact(cluster: Cluster) -> None:
    data = os.urandom(SIZE)
    target = _publish(cluster, "ranges.bin", data, 1_700_000_000_111_111_111)
    for round_ in ("cold", "warm"):
        for header, first, last in RANGES:
            answer = _get(cluster, target, [("Range", header)] if header else [])
            context = (round_, header, answer)
            assert answer.body == data[first : last + 1], context
            if header is None:
                assert answer.status == 200, context
                assert answer.get("Content-Range") is None, context
            else:
                assert answer.status == 206, context
                assert answer["Content-Range"] == f"bytes {first}-{last}/{SIZE}", context
            assert int(answer["Content-Length"]) == last - first + 1, context
            if round_ == "warm":
                assert answer["X-Cache-Status"] == "HIT", context
    # The origin saw only slice requests, each slice once (the lock merges the first
    # round's concurrent misses; the second round was all hits).
    slices = [a.range for lines in cluster.accesses(target).values() for a in lines]
    assert sorted(slices) == sorted(
        f"bytes={i * MiB}-{(i + 1) * MiB - 1}" for i in range(SIZE // MiB + 1)
    ), by_node(cluster.accesses(target))


def test_multiple_ranges_pass_through_to_the_origin(cluster: Cluster) -> None:
    """Sliced, nginx would answer several ranges with the whole file (200); the config
    sends them to the origin, which answers multipart/byteranges."""
    data = os.urandom(SIZE)
    target = _publish(cluster, "multi.bin", data, 1_700_000_000_222_222_222)
    answer = _get(cluster, target, [("Range", "bytes=0-99,3000000-3000099")])
    assert answer.status == 206, answer
    assert answer["X-Cache-Status"] == "BYPASS"
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", answer["Content-Type"])
    assert match is not None, answer
    parts = answer.body.split(b"--" + match.group(1).encode())
    assert parts[1].endswith(b"Content-Range: bytes 0-99/%d\r\n\r\n" % SIZE + data[:100] + b"\r\n")
    assert parts[2].endswith(
        b"Content-Range: bytes 3000000-3000099/%d\r\n\r\n" % SIZE + data[3000000:3000100] + b"\r\n"
    )
    assert parts[3] == b"--\r\n"


def test_second_download_comes_from_the_cache(cluster: Cluster) -> None:
    data = os.urandom(SIZE)
    target = _publish(cluster, "twice.bin", data, 1_700_000_000_333_333_333)
    first = _get(cluster, target)
    assert (first.status, first["X-Cache-Status"]) == (200, "MISS"), first
    assert first.body == data
    before = _origin_requests(cluster, target)
    assert before == SIZE // MiB + 1, by_node(cluster.accesses(target))

    second = _get(cluster, target)
    assert (second.status, second["X-Cache-Status"]) == (200, "HIT"), second
    assert second.body == data
    assert second["ETag"] == first["ETag"]
    time.sleep(0.5)  # a request the origin got would be logged by now
    assert _origin_requests(cluster, target) == before, by_node(cluster.accesses(target))


def test_if_none_match_is_304_from_the_cache_then_revalidated_at_the_origin(
    cluster: Cluster,
) -> None:
    data = os.urandom(SIZE)
    target = _publish(cluster, "conditional.bin", data, 1_700_000_000_444_444_444)
    etag = _get(cluster, target)["ETag"]
    before = _origin_requests(cluster, target)

    fresh = _get(cluster, target, [("If-None-Match", etag)])
    assert (fresh.status, fresh["X-Cache-Status"], fresh["ETag"]) == (304, "HIT", etag)
    assert _origin_requests(cluster, target) == before

    time.sleep(STALE_AFTER)
    stale = _get(cluster, target, [("If-None-Match", etag)])
    assert (stale.status, stale["X-Cache-Status"], stale["ETag"]) == (304, "REVALIDATED", etag)
    # The cache asked the origin with its own validators: a 304, no bytes moved.
    accesses = cluster.settled_accesses(target, minimum=before + 1)
    seen = [(a.status, a.sent) for lines in accesses.values() for a in lines]
    assert len([s for s in seen if s[0] == 206]) == before, by_node(accesses)
    revalidations = [s for s in seen if s[0] != 206]
    assert revalidations, by_node(accesses)
    assert set(revalidations) == {(304, 0)}, by_node(accesses)


def test_changed_file_is_served_after_revalidation(cluster: Cluster) -> None:
    old = os.urandom(SIZE)
    target = _publish(cluster, "changing.bin", old, 1_700_000_000_555_555_555)
    first = _get(cluster, target)
    assert first.body == old

    new = os.urandom(SIZE - 777)
    _publish(cluster, "changing.bin", new, 1_700_000_100_000_000_000)
    time.sleep(STALE_AFTER)
    whole = _get(cluster, target)
    assert whole.status == 200, whole
    assert whole["X-Cache-Status"] == "EXPIRED"
    assert whole.body == new
    assert whole["ETag"] != first["ETag"]
    part = _get(cluster, target, [("Range", "bytes=-5000")])
    assert part.status == 206, part
    assert part["Content-Range"] == f"bytes {len(new) - 5000}-{len(new) - 1}/{len(new)}"
    assert part.body == new[-5000:]
