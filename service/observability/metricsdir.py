"""The folder where every worker keeps its metric values, owned by gunicorn's master.

The master makes it fresh at start and exports it as ``PROMETHEUS_MULTIPROC_DIR`` before
forking (prometheus_client picks its multiprocess mode when it is first imported, so
the variable must be set first); when a worker dies its live gauges are dropped, its
counters stay. Nothing here imports prometheus_client before the variable is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
SHM = Path("/dev/shm")

#: The folder this master made itself (removed at exit); None for a configured one.
_created: Path | None = None


def prepare(configured: Path | None, environ: MutableMapping[str, str] = os.environ) -> Path:
    """An empty folder for this master's workers, exported in ``environ``.

    ``configured`` (``DL_METRICS_DIR``) is made if missing and emptied of metric files:
    values of an earlier master must not add to ours. Without it a new folder is made
    in /dev/shm (memory, writable on a read-only root), else in the temp folder.
    """
    global _created
    if configured is None:
        base = SHM if os.access(SHM, os.W_OK | os.X_OK) else None
        path = Path(tempfile.mkdtemp(prefix="download-metrics-", dir=base))
        _created = path
    else:
        path = configured.expanduser().absolute()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        wipe(path)
    environ[ENV] = str(path)
    return path


def wipe(path: Path) -> None:
    """Remove the metric files (``*.db``) of earlier processes; nothing else."""
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def worker_exited(pid: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """Drop the dead worker's live gauges (transfers in flight): it has none any more."""
    path = environ.get(ENV)
    if not path:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def remove_created() -> None:
    """At the master's exit: remove the folder :func:`prepare` made, if it made one."""
    global _created
    if _created is not None:
        shutil.rmtree(_created, ignore_errors=True)
        _created = None
