"""service.delivery.admission: per-client download counts, shared by forked workers."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.delivery.admission import ClientTable


def test_a_client_is_admitted_up_to_its_limit() -> None:
    table = ClientTable(slots=64)
    tickets = [table.admit("192.0.2.1", 2) for _ in range(2)]
    assert all(tickets)
    assert table.admit("192.0.2.1", 2) is None
    assert table.in_flight("192.0.2.1") == 2


def test_releasing_frees_a_slot_once_however_often_it_is_called() -> None:
    table = ClientTable(slots=64)
    first = table.admit("192.0.2.1", 1)
    assert first is not None
    first.release()
    first.release()
    assert table.in_flight("192.0.2.1") == 0
    second = table.admit("192.0.2.1", 1)
    assert second is not None
    assert table.in_flight("192.0.2.1") == 1


def test_clients_are_counted_apart_ipv4_and_ipv6() -> None:
    table = ClientTable(slots=64)
    for client in ("192.0.2.1", "192.0.2.2", "2001:db8::1", "::ffff:192.0.2.3"):
        assert table.admit(client, 1) is not None
    assert table.admit("192.0.2.1", 1) is None
    assert table.admit("::ffff:192.0.2.1", 1) is None  # the same client, mapped
    assert table.admit("2001:db8::2", 1) is not None


def test_many_clients_in_a_small_table_never_share_a_count() -> None:
    table = ClientTable(slots=256)
    clients = [f"10.0.{i // 256}.{i % 256}" for i in range(200)]
    for client in clients:
        assert table.admit(client, 1) is not None
    assert all(table.in_flight(client) == 1 for client in clients)


def test_a_full_table_admits_rather_than_refuses() -> None:
    table = ClientTable(slots=4)
    for i in range(4):
        assert table.admit(f"10.0.0.{i}", 1) is not None
    ticket = table.admit("10.0.0.99", 1)
    assert ticket is not None
    ticket.release()  # harmless


def test_a_non_ip_client_such_as_a_unix_socket_is_counted_too() -> None:
    table = ClientTable(slots=16)
    assert table.admit("", 1) is not None
    assert table.admit("", 1) is None


def _hold(table: ClientTable, client: str, results: multiprocessing.Queue) -> None:
    results.put(table.admit(client, 3) is not None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_share_the_counts() -> None:
    context = multiprocessing.get_context("fork")
    table = ClientTable(slots=64, lock=context.Lock())
    results: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_hold, args=(table, "192.0.2.7", results)) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    admitted = sorted(results.get(timeout=5) for _ in workers)
    results.close()
    results.join_thread()
    assert admitted == [False, False, True, True, True]
    assert table.in_flight("192.0.2.7") == 3  # the children never released theirs
    # As gunicorn's master does in child_exit: the dead workers' counts are dropped.
    assert sum(table.forget(worker.pid) for worker in workers if worker.pid) == 3
    assert table.in_flight("192.0.2.7") == 0


def as_worker(monkeypatch: pytest.MonkeyPatch, pid: int) -> None:
    monkeypatch.setattr(os, "getpid", lambda: pid)


def test_forgetting_a_worker_drops_only_its_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    table = ClientTable(slots=64)
    for pid, client in ((101, "192.0.2.1"), (101, "192.0.2.2"), (102, "192.0.2.1")):
        as_worker(monkeypatch, pid)
        assert table.admit(client, 5) is not None
    assert table.in_flight("192.0.2.1") == 2  # one client's count spans workers
    assert table.forget(999) == 0
    assert table.forget(101) == 2
    assert table.in_flight("192.0.2.1") == 1
    assert table.in_flight("192.0.2.2") == 0
    assert table.forget(101) == 0  # idempotent


def test_the_cap_counts_every_workers_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    table = ClientTable(slots=64)
    for pid in (101, 102, 103):
        as_worker(monkeypatch, pid)
        assert table.admit("192.0.2.1", 3) is not None
    for pid in (101, 104):
        as_worker(monkeypatch, pid)
        assert table.admit("192.0.2.1", 3) is None


def test_a_ticket_releases_its_own_workers_count(monkeypatch: pytest.MonkeyPatch) -> None:
    table = ClientTable(slots=64)
    as_worker(monkeypatch, 101)
    ticket = table.admit("192.0.2.1", 5)
    as_worker(monkeypatch, 102)
    assert table.admit("192.0.2.1", 5) is not None
    assert ticket is not None
    ticket.release()
    assert table.forget(101) == 0  # 101's count went with its ticket
    assert table.forget(102) == 1


def test_an_untracked_release_frees_whichever_worker_admitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx reports an offloaded download's end to any worker."""
    table = ClientTable(slots=64)
    as_worker(monkeypatch, 101)
    assert table.admit("192.0.2.1", 1) is not None
    as_worker(monkeypatch, 102)
    table.release("192.0.2.1")
    assert table.in_flight("192.0.2.1") == 0
    table.release("192.0.2.1")  # never below zero
    assert table.admit("192.0.2.1", 1) is not None
    assert table.in_flight("192.0.2.1") == 1


def test_a_wedged_lock_fails_open_instead_of_stalling_the_worker() -> None:
    """A worker killed inside the critical section leaves the shared lock held."""
    lock = threading.Lock()
    table = ClientTable(slots=16, lock=lock)
    assert table.admit("192.0.2.1", 1) is not None
    lock.acquire()
    try:
        started = time.monotonic()
        ticket = table.admit("192.0.2.1", 1)  # over the cap, but the count is unreadable
        assert ticket is not None
        assert time.monotonic() - started < 1
        ticket.release()
    finally:
        lock.release()
    assert table.admit("192.0.2.1", 1) is None  # the real count was never disturbed


def test_a_release_naming_the_admitting_worker_frees_that_workers_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx's report names the worker that admitted the download (X-Offload-Worker), so
    the count a dead worker leaves behind is exactly what it still had in flight."""
    table = ClientTable(slots=64)
    for pid in (101, 102):
        as_worker(monkeypatch, pid)
        assert table.admit("192.0.2.1", 5) is not None
    as_worker(monkeypatch, 102)  # the report reaches worker 102 ...
    table.release("192.0.2.1", worker=101)  # ... about 101's download
    assert table.forget(101) == 0
    as_worker(monkeypatch, 103)
    table.release("192.0.2.1", worker=999)  # an unknown worker: any count of the client
    assert table.in_flight("192.0.2.1") == 0
    assert table.forget(102) == 0


OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 11), st.sampled_from((101, 102, 103)), st.booleans(), st.integers(0, 7)
    ),
    max_size=120,
)


@given(OPERATIONS)
def test_counts_match_a_model_however_slots_are_freed_and_reused(
    operations: list[tuple[int, int, bool, int]],
) -> None:
    """Admits, releases and dead workers in any order, in a table small enough for the
    clients' runs to collide and wrap: every count is what a plain dict says. (A lookup
    stops at the first slot never used; freed slots in between must not end it.)"""
    table = ClientTable(slots=16)
    tickets: list[tuple[int, int, Any]] = []
    model: dict[tuple[int, int], int] = {}  # (client, pid) -> downloads in flight
    with pytest.MonkeyPatch.context() as patch:
        for client, pid, admit, which in operations:
            address = f"10.0.0.{client}" if client % 2 else f"2001:db8::{client}"
            as_worker(patch, pid)
            if admit:
                total = sum(n for (c, _), n in model.items() if c == client)
                ticket = table.admit(address, 4)
                assert (ticket is None) == (total >= 4)
                if ticket is not None:
                    tickets.append((client, pid, ticket))
                    model[client, pid] = model.get((client, pid), 0) + 1
            elif which == 7:  # this worker dies: the master forgets its counts
                dropped = table.forget(pid)
                assert dropped == sum(n for (_, p), n in model.items() if p == pid)
                model = {k: n for k, n in model.items() if k[1] != pid}
                tickets = [t for t in tickets if t[1] != pid]
            elif tickets:
                owner, by, ticket = tickets.pop(which % len(tickets))
                as_worker(patch, by)  # a ticket is released in the worker that holds it
                ticket.release()
                model[owner, by] -= 1
            for c in range(12):
                seen = f"10.0.0.{c}" if c % 2 else f"2001:db8::{c}"
                expected = sum(n for (k, _), n in model.items() if k == c)
                assert table.in_flight(seen) == expected
