"""hanshu_wire's rules on their own: what frames a request and a reply, and a chunk size.
The wire tests and the differential test hold both servers to them on real sockets."""

from __future__ import annotations

import pytest
from hanshu_wire import CHUNKED, MalformedFraming, Refusal, chunk_size, reply_framing
from hanshu_wire import request_framing as framing

HOST = ("Host", "shop.example.com:8080")


@pytest.mark.parametrize(
    ("version", "fields", "expected"),
    [
        ("1.1", [HOST], 0),
        ("1.1", [HOST, ("content-length", " 007 ")], 7),
        ("1.1", [HOST, ("Transfer-Encoding", " Chunked ")], CHUNKED),
        ("1.0", [], 0),  # HTTP/1.0 may lack a Host
        ("1.1", [("Host", "[::1]:80")], 0),
        ("1.1", [("Host", "")], 0),  # empty is a Host; routing refuses it, not framing
    ],
)
def test_framings_that_are_accepted(version, fields, expected):
    assert framing(version, fields) == expected


@pytest.mark.parametrize(
    ("version", "fields", "status", "error_type"),
    [
        ("0.9", [], 400, "InvalidHttpVersion"),
        ("2.0", [HOST], 505, "HttpVersionNotSupported"),
        ("1.1", [], 400, "MissingHost"),
        ("1.1", [HOST, ("HOST", "b")], 400, "DuplicateHost"),
        ("1.1", [("Host", "user@shop")], 400, "InvalidHost"),
        ("1.1", [HOST, ("Transfer-Encoding", "gzip, chunked")], 501, "UnsupportedTransferEncoding"),
        ("1.1", [HOST, ("Transfer-Encoding", "gzip")], 400, "InvalidTransferEncoding"),
        ("1.1", [HOST, ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
         400, "InvalidTransferEncoding"),
        ("1.1", [HOST, ("Transfer-Encoding", ", chunked")], 400, "InvalidTransferEncoding"),
        ("1.0", [("Transfer-Encoding", "chunked")], 400, "InvalidTransferEncoding"),
        ("1.1", [HOST, ("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
         400, "AmbiguousFraming"),
        ("1.1", [HOST, ("Content-Length", "+3")], 400, "InvalidContentLength"),
        ("1.1", [HOST, ("Content-Length", "\u0663")], 400, "InvalidContentLength"),
        ("1.1", [HOST, ("Content-Length", "1" * 19)], 400, "InvalidContentLength"),
        ("1.1", [HOST, ("Content-Length", "3"), ("Content-Length", "3")],
         400, "InvalidContentLength"),
    ],
)  # fmt: skip
def test_framings_that_are_refused(version, fields, status, error_type):
    refusal = framing(version, fields)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.error_type) == (status, error_type)
    assert refusal.message


def test_reply_framing():
    assert reply_framing(["13"], [], bodyless=False) == 13
    assert reply_framing(["3, 3"], [], bodyless=False) == 3
    assert reply_framing([], ["chunked"], bodyless=False) == CHUNKED
    assert reply_framing([], [], bodyless=False) is None  # ends with the connection
    assert reply_framing(["3"], ["chunked"], bodyless=True) == 0
    for lengths, encodings in (
        (["3", "4"], []),
        (["3"], ["chunked"]),
        ([], ["gzip"]),
        (["-1"], []),
    ):
        with pytest.raises(MalformedFraming):
            reply_framing(lengths, encodings, bodyless=False)


def test_chunk_size_takes_hex_digits_and_extensions_only():
    assert chunk_size(b"1f") == 31
    assert chunk_size(b"001F;name=value") == 31
    for line in (b"0x1f", b"+1f", b" 1f", b"1_f", b"1f ", b"", b"1" * 16):
        with pytest.raises(MalformedFraming):
            chunk_size(line)
