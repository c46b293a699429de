"""service.storage.faults: each storage fault as one line, and what the transfer records."""

from __future__ import annotations

import logging

import pytest

from service.observability.accesslog import Transfer
from service.storage.faults import TransferFaults, describe
from service.web.errors import StorageError, StorageTimeoutError, TruncatedFileError


def transfer() -> Transfer:
    record = Transfer(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/files/a.iso", "HTTP_X_REQUEST_ID": "r1"}
    )
    record.answered(206)
    return record


@pytest.mark.parametrize(
    ("error", "listing", "text"),
    [
        (StorageError("EIO"), False, "EIO opening 'iso/a.iso'"),
        (StorageError("ESTALE", 1048576), False, "ESTALE reading 'iso/a.iso' at byte 1048576"),
        (StorageError("EIO"), True, "EIO listing 'iso/a.iso'"),
        (
            StorageTimeoutError(60),
            False,
            "ETIMEDOUT opening 'iso/a.iso' (no answer from storage in 60s)",
        ),
    ],
)
def test_a_storage_error_says_what_failed_and_where(
    error: StorageError, listing: bool, text: str
) -> None:
    assert describe(error, "iso/a.iso", listing) == text


def test_a_storage_error_mid_body_keeps_the_status_sent_and_records_the_errno(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = transfer()
    with caplog.at_level(logging.ERROR, logger="service.storage"):
        TransferFaults(record, "a.iso", 4096).failed(StorageError("EIO", 2048), headers_sent=True)
    assert caplog.messages == ["storage error: EIO reading 'a.iso' at byte 2048; request r1"]
    log = record.record()
    assert (log["status"], log["outcome"], record.storage_errno) == (206, "storage_error", "EIO")


def test_a_failure_before_any_byte_went_out_logs_no_status() -> None:
    record = transfer()
    TransferFaults(record, "a.iso", 4096).failed(StorageError("EIO", 0), headers_sent=False)
    assert record.record()["status"] is None


def test_truncation_is_one_warning_with_the_planned_and_the_real_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = transfer()
    with caplog.at_level(logging.WARNING, logger="service.storage"):
        TransferFaults(record, "a.iso", 4096).failed(TruncatedFileError(1000, 3096), True)
    (line,) = caplog.records
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "truncated: 'a.iso' ended at byte 1000, expected 4096 bytes; connection closed; request r1"
    )
    assert record.record()["outcome"] == "truncated"
    assert record.storage_errno is None


def test_without_an_access_log_the_fault_is_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="service.storage"):
        TransferFaults(None, "a.iso", 10).failed(StorageError("EIO", 5), headers_sent=True)
    assert caplog.messages == ["storage error: EIO reading 'a.iso' at byte 5; request -"]
