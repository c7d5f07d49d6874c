"""Lets aiokafka's consumer read past a record whose header key is not UTF-8.

aiokafka (0.14; its C extension and its pure-Python parser alike) decodes every header key
as UTF-8 while it unpacks a fetched batch. A record whose key is other bytes (any client that
writes raw header bytes can make one) fails the whole `getmany` with UnicodeDecodeError,
without moving the position, on every retry: a consumer over many partitions (the Faust
agents, the gateway's changelog follower) is stuck on it for good, and so is every
partition fetched with it.

The fix sits in `PartitionRecords`, which turns the bytes of one partition's fetch into
records: when the fast (C) parser fails on a header key, the rest of that one fetch is parsed
again in Python with header keys decoded with `errors="surrogateescape"`, from the record it
failed on (nothing already returned is returned twice). Normal fetches keep the C parser;
the only cost on them is a thin wrapper that keeps the fetch's bytes: about 0.5 us per
partition per fetch, nothing per record (a one-record fetch alone costs about 7 us to unpack).

What a consumer then gets (one rule for all): the record itself, its header key a `str`
holding lone surrogates (`key.encode("utf-8", "surrogateescape")` gives back the original
bytes). The Faust agents (events, catalog, item-events), the changelog follower and the
learner's samples never read headers, so such a record is processed like any other: applied
when its value is valid, dead-lettered with its reason when not. The readers of model updates
and model commands accept only their own header names, so they dead-letter it as an unknown
header. Nothing of ours re-sends a record's headers (a producer would refuse such a key: it
encodes keys as strict UTF-8).

Applied once, when `app` is imported (`app/__init__.py`), for every consumer in the process.
"""
from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Iterator
from typing import Any, SupportsIndex

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record import memory_records
from aiokafka.record.legacy_records import LegacyRecordBatch

log = logging.getLogger(__name__)

_original_next = fetcher.PartitionRecords.__next__  # kept for the tests: the failure this is for
_FastRecords = memory_records.MemoryRecords  # the C one (the Python one where the extension is off)
_LENGTH = struct.Struct(">i")
_LOG_OVERHEAD = 12  # a batch's offset and length fields
_MAGIC_AT = 16  # after offset, length and (v2) leader epoch or (v0/v1) CRC


class _KeptRecords:
    """The fast `MemoryRecords` of one fetch, and that fetch's bytes for a lenient re-read.

    Its methods are the fast object's own, bound: a call costs what it did before.
    """

    __slots__ = ("raw", "has_next", "next_batch", "size_in_bytes")

    def __init__(self, raw: bytes) -> None:
        records = _FastRecords(raw)
        self.raw = raw
        self.has_next = records.has_next
        self.next_batch = records.next_batch
        self.size_in_bytes = records.size_in_bytes


class _LenientSlice(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytearray.decode(self, encoding, "surrogateescape")


class _LenientBuffer(bytearray):
    """A batch's bytes whose slices decode non-UTF-8 bytes with surrogateescape.

    aiokafka's Python parser decodes a header key as `buffer[start:end].decode("utf-8")`;
    this changes that one call without copying the parser. The other slices (key, value,
    header values) are turned into `bytes` by the parser, unchanged.
    """

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = bytearray.__getitem__(self, index)
        return _LenientSlice(item) if isinstance(index, slice) else item


class _LenientBatch(_DefaultRecordBatchPy):
    """A v2 record batch parsed in Python, tolerating header keys that are not UTF-8."""

    def __iter__(self) -> _LenientBatch:
        super().__iter__()  # decompresses into self._buffer
        self._buffer = _LenientBuffer(self._buffer)
        return self


class _LenientRecords:
    """The batches of one fetch from the first not yet fully read, v2 ones parsed leniently.

    Those before the failed one were read to their end (`resume_at`, the next offset to
    return, is past them): read again they would yield nothing but would move it back.
    """

    def __init__(self, raw: bytes, resume_at: int) -> None:
        self._batches: deque[Any] = deque()
        for view in _batch_bytes(raw):
            magic = view[_MAGIC_AT]
            batch = _LenientBatch(view) if magic >= 2 else LegacyRecordBatch(view, magic)  # v0/v1: no headers
            if batch.next_offset > resume_at:
                self._batches.append(batch)

    def has_next(self) -> bool:
        return bool(self._batches)

    def next_batch(self) -> Any:
        return self._batches.popleft()


def _batch_bytes(raw: bytes) -> Iterator[memoryview]:
    """Each whole batch of a fetch (every format starts: offset int64, length int32)."""
    view, pos = memoryview(raw), 0
    while pos + _LOG_OVERHEAD <= len(raw):
        end = pos + _LOG_OVERHEAD + _LENGTH.unpack_from(raw, pos + 8)[0]
        if end > len(raw):
            return  # a batch cut off by the fetch size: fetched whole next time, as aiokafka does
        yield view[pos:end]
        pos = end


def _header_key_error(exc: Exception) -> bool:
    # The C parser raises UnicodeDecodeError; the Python one wraps it (a ValueError).
    return isinstance(exc, UnicodeDecodeError) or (
        isinstance(exc, CorruptRecordException) and isinstance(exc.__cause__, UnicodeDecodeError))


def _next_record(self: fetcher.PartitionRecords) -> Any:
    """`PartitionRecords.__next__`, re-reading the rest of the fetch leniently on a bad header key."""
    try:
        return next(self._records_iterator)
    except StopIteration:
        self._records_iterator = None  # as aiokafka's own: break the reference cycle
        raise
    except (UnicodeDecodeError, CorruptRecordException) as exc:
        raw = getattr(self._records, "raw", None)
        if raw is None or not _header_key_error(exc):
            raise  # not ours to handle, or the lenient re-read failed too
        log.warning("%s: a record at or after offset %d has a header key that is not UTF-8; "
                    "reading the rest of this fetch with the Python parser", self._tp, self.next_fetch_offset)
        # The generator died with the exception; a new one resumes at `next_fetch_offset`, the
        # offset after the last record returned, and skips any record before it.
        self._records = _LenientRecords(raw, self.next_fetch_offset)
        self._records_iterator = self._unpack_records()
        return next(self)


def apply() -> None:
    """Patch aiokafka's fetcher (once; later calls do nothing)."""
    if fetcher.PartitionRecords.__next__ is not _next_record:
        fetcher.MemoryRecords = _KeptRecords
        fetcher.PartitionRecords.__next__ = _next_record  # type: ignore[method-assign]


apply()
