"""The emulators' one-line log of a request aiohttp could not parse: it never raises (a raising
filter breaks logging) and never repeats the raw line, which may carry a token."""

from __future__ import annotations

import logging
import sys

import pytest
from aiohttp.http_exceptions import HttpProcessingError, InvalidHeader, LineTooLong

from harness.emulation.two_ports import http_log

SECRET = "tok-7f3a9c"


def record_of(error: Exception) -> logging.LogRecord:
    try:
        raise error
    except Exception:
        return http_log.makeRecord(http_log.name, logging.ERROR, __file__, 1, "Error handling request", (),
                                   sys.exc_info())


@pytest.mark.parametrize("error", [
    HttpProcessingError(),  # an empty message
    LineTooLong(f"GET /?token={SECRET}".encode(), 8190, 9000),
    InvalidHeader(f"Authorization: Bearer {SECRET}".encode()),
])
def test_an_unparsable_request_is_one_line_with_its_class_and_status_and_no_secret(error):
    record = record_of(error)
    assert all(f.filter(record) for f in http_log.filters)
    line = record.getMessage()
    assert line == f"Error handling request: {error.code} {type(error).__name__}"
    assert record.exc_info is None and SECRET not in line
