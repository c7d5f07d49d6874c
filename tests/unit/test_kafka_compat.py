"""aiokafka's record parsing, as patched by app.kafka_compat, on fetches built by hand: a record
whose header key is not UTF-8 no longer fails the fetch, and nothing is returned twice."""
from __future__ import annotations

import struct

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record import memory_records
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchBuilderPy
from aiokafka.util import NO_EXTENSIONS

import app  # noqa: F401 — applies app.kafka_compat
from app.kafka_compat import _KeptRecords

TP = TopicPartition("t", 0)
BAD = b"\xff\xfe"


class RawKey(str):
    """A header key that the Python record builder writes as raw, non-UTF-8 bytes."""

    def encode(self, *args: object, **kwargs: object) -> bytes:
        return BAD


def batch(base_offset: int, count: int, bad: set[int] = frozenset(), compression: int = 0) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(magic=2, compression_type=compression, is_transactional=0,
                                           producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for delta in range(count):
        offset = base_offset + delta
        key = RawKey("k") if offset in bad else "k"
        builder.append(delta, timestamp=1000, key=b"key", value=str(offset).encode(), headers=[(key, b"v")])
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base_offset)  # as the broker sets it (outside the CRC)
    return bytes(raw)


def read(raw: bytes, fetch_offset: int = 0) -> fetcher.PartitionRecords:
    records = fetcher.MemoryRecords(raw)  # the name the fetcher builds a fetch's records with
    return fetcher.PartitionRecords(TP, records, None, fetch_offset, None, None, True, 0)


def test_a_record_with_a_non_utf8_header_key_is_returned_with_the_rest():
    parts = read(batch(0, 3) + batch(3, 3, bad={4}) + batch(6, 2))
    got = list(parts)
    assert [(r.offset, r.value) for r in got] == [(i, str(i).encode()) for i in range(8)]
    assert got[4].headers == (("\udcff\udcfe", b"v"),)
    assert got[4].headers[0][0].encode("utf-8", "surrogateescape") == BAD
    assert got[3].headers == (("k", b"v"),) and got[5].headers == (("k", b"v"),)
    assert parts.next_fetch_offset == 8


def test_without_the_patch_the_same_fetch_fails(monkeypatch):
    """The failure the patch is for; if aiokafka ever parses such keys, this says the patch can go."""
    from app import kafka_compat

    monkeypatch.setattr(fetcher.PartitionRecords, "__next__", kafka_compat._original_next)
    parts = read(batch(0, 2) + batch(2, 2, bad={3}))
    assert [next(parts).offset for _ in range(3)] == [0, 1, 2]
    # (The C parser raises UnicodeDecodeError; the Python one, with AIOKAFKA_NO_EXTENSIONS, wraps it.)
    with pytest.raises((UnicodeDecodeError, CorruptRecordException)):
        next(parts)  # if this passes, aiokafka parses such keys now: app.kafka_compat may be unneeded


def test_a_fetch_that_starts_at_the_bad_record_or_inside_its_batch():
    assert [r.offset for r in read(batch(0, 3, bad={0}))] == [0, 1, 2]
    assert [r.offset for r in read(batch(0, 4, bad={1, 3}), fetch_offset=2)] == [2, 3]


def test_a_compressed_batch_and_several_bad_records():
    parts = read(batch(0, 4, bad={1}, compression=DefaultRecordBatch.CODEC_GZIP) + batch(4, 3, bad={4, 6}))
    got = list(parts)
    assert [r.offset for r in got] == list(range(7))
    assert [r.offset for r in got if r.headers[0][0] != "k"] == [1, 4, 6]


def test_a_normal_fetch_keeps_the_fast_parser():
    parts = read(batch(0, 3) + batch(3, 3))
    assert [r.offset for r in parts] == list(range(6))
    assert isinstance(parts._records, _KeptRecords)  # never switched to the Python parser
    assert type(fetcher.MemoryRecords(batch(0, 1)).next_batch.__self__) is memory_records.MemoryRecords
    assert NO_EXTENSIONS or memory_records.MemoryRecords.__module__.startswith("aiokafka.record._crecords")
