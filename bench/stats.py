"""Medians, percentiles and the interleaving order of repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def rotations(items: Sequence[T], reps: int) -> Iterator[tuple[int, list[T]]]:
    """(rep, order) with the order rotated by one each rep: every peer runs at every
    position, so drift on a shared machine does not favour one of them."""
    for rep in range(reps):
        shift = rep % len(items) if items else 0
        yield rep, [*items[shift:], *items[:shift]]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 300 samples is the 297th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def medians(runs: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Median of every numeric field over the runs (booleans and text are skipped)."""
    keys: dict[str, list[float]] = {}
    for run in runs:
        for key, value in run.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                keys.setdefault(key, []).append(float(value))
    return {key: statistics.median(values) for key, values in keys.items() if values}


def spread(runs: Sequence[Mapping[str, object]], key: str) -> list[float]:
    """[min, max] of one field over the runs."""
    values = [
        float(v) for run in runs if isinstance(v := run.get(key), int | float) and v is not None
    ]
    return [min(values), max(values)] if values else []
