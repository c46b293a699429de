"""The streamed body handed to the server (service.delivery.responses.ClosingBody):
the generator itself to iterate, and every close callback run, whatever happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.delivery.responses import ClosingBody


def chunks(log: list[str]) -> Iterator[bytes]:
    try:
        yield b"a"
        yield b"b"
    finally:
        log.append("generator closed")


def test_iterating_is_iterating_the_generator_itself() -> None:
    log: list[str] = []
    generator = chunks(log)
    body = ClosingBody(generator, ())
    assert iter(body) is generator
    assert b"".join(body) == b"ab"


def test_closing_a_body_never_started_closes_the_generator_and_runs_every_callback() -> None:
    log: list[str] = []
    body = ClosingBody(chunks(log), (lambda: log.append("one"), lambda: log.append("two")))
    body.close()
    assert log == ["one", "two"]  # a generator never started has no finally to run


def test_a_callback_that_raises_does_not_stop_the_others() -> None:
    log: list[str] = []

    def broken() -> None:
        log.append("broken")
        raise OSError("close failed")

    body = ClosingBody(chunks(log), (broken, lambda: log.append("released")))
    next(iter(body))
    with pytest.raises(OSError, match="close failed"):
        body.close()
    assert log == ["generator closed", "broken", "released"]
