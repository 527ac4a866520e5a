"""The ingest spool: a request is acked once its bytes are durable on the collector's disk.

Requests are appended to the current *segment* file; one syncer thread runs ``fdatasync`` for
everything appended since its last one (group commit: many requests per fsync) and then
resolves the Future those requests wait on. A segment is sealed (``.open`` -> ``.seg``) when it
is big or old enough, and loaders (:mod:`tracelake.collector.loader`) insert whole sealed segments
into ClickHouse, each with its own deduplication token, and delete them only after the INSERT
returned.

Record format. A segment is exactly the stream ClickHouse's Protobuf input reads — varint
length, then an ``ExportTraceServiceRequest`` — so the INSERT reads the file in place, without a
copy. Each message ends with a 6-byte trailer that protobuf readers skip as an unknown field
(number 2047, fixed32) holding the crc32 of the request bytes before it: a torn tail or a
corrupt record is detected on restart, and ClickHouse (or any OTLP reader) never notices it.

Restart: ``.open`` segments are cut after their last whole record (a kill -9 or a power loss
mid-append; the cut bytes were never acked and are kept in ``corrupt/`` when not empty), then
sealed; sealed segments that fail their checksums are moved to ``corrupt/`` and reported, never
deleted. Everything else is loaded again under the same token, so a segment whose INSERT had
returned just before the crash shows up once.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from tracelake.collector.errors import Backpressure, NotStored
from tracelake.store.otlp import varint

log = logging.getLogger(__name__)

# Field 2047, wire type 5 (fixed32): tag varint (2047 << 3 | 5) = 0xFD 0x7F, then 4 bytes of crc32.
_TRAILER_TAG = b"\xfd\x7f"
_TRAILER = len(_TRAILER_TAG) + 4
OPEN, SEALED = ".open", ".seg"
_HARD_AGE = 4  # x segment_max_age_s: sealed then even when every loader is busy


def record_parts(body: bytes) -> tuple[bytes, bytes, bytes]:
    """One spool record as (length, request, trailer): a length-delimited request whose last field
    is its own checksum. Written with one pwritev, so the request is never copied."""
    return varint(len(body) + _TRAILER), body, _TRAILER_TAG + struct.pack("<I", zlib.crc32(body))


def encode_record(body: bytes) -> bytes:
    return b"".join(record_parts(body))


@dataclass(frozen=True)
class Scan:
    end: int  # offset after the last whole, valid record
    records: int
    problem: str  # why scanning stopped before the end of the data ('' when it did not)


def scan(data: bytes | memoryview) -> Scan:
    """Walk the records of a segment, checking lengths and checksums."""
    view = memoryview(data)
    pos = records = 0
    size = len(view)
    while pos < size:
        length = shift = 0
        cursor = pos
        while True:  # varint
            if cursor >= size:
                return Scan(pos, records, f"record {records}: length cut short at byte {pos}")
            byte = view[cursor]
            cursor += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 35:
                return Scan(pos, records, f"record {records}: bad length at byte {pos}")
        end = cursor + length
        if end > size:
            return Scan(pos, records, f"record {records}: {length} bytes announced at byte {pos}, "
                                      f"{size - cursor} present")
        if length < _TRAILER or view[end - _TRAILER:end - 4] != _TRAILER_TAG:
            return Scan(pos, records, f"record {records}: no checksum trailer at byte {pos}")
        (crc,) = struct.unpack_from("<I", view, end - 4)
        if zlib.crc32(view[cursor:end - _TRAILER]) != crc:
            return Scan(pos, records, f"record {records}: checksum mismatch at byte {pos}")
        pos = end
        records += 1
    return Scan(pos, records, "")


@dataclass(frozen=True)
class Sealed:
    """A sealed segment waiting for its INSERT."""

    path: Path
    token: str  # insert_deduplication_token: the same on every attempt, unique across collectors
    size: int
    records: int
    created: float  # wall-clock time of its first byte (for the oldest-unloaded age)
    spans: int = 0  # known for segments written by this process (0 after a restart)


class _Segment:
    __slots__ = ("path", "fd", "size", "records", "spans", "created", "created_mono")

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd
        self.size = self.records = self.spans = 0
        self.created, self.created_mono = time.time(), time.monotonic()


@dataclass
class SpoolStats:
    appended_bytes: int = 0
    appended_records: int = 0
    syncs: int = 0
    sync_seconds: float = 0.0
    sealed: int = 0
    torn_bytes: int = 0  # cut from torn tails at start
    corrupt_segments: int = 0  # moved aside at start
    refused_full: int = 0
    write_errors: int = 0


class Spool:
    """Segment files in ``directory``; thread-safe appends; one syncer thread."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int, segment_max_age_s: float,
                 on_sealed: Callable[[Sealed], None], fsync: bool = True,
                 on_sync: Callable[[int, float], None] | None = None,
                 loader_idle: Callable[[], bool] | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.segment_max_age_s = segment_max_age_s
        self._on_sealed = on_sealed
        self._on_sync = on_sync
        # Sealing by age waits for an idle loader: a segment sealed while every loader is busy would
        # only wait in the queue, while one that keeps growing makes a bigger (cheaper per span)
        # INSERT that starts at the same moment. Past _HARD_AGE x the age it is sealed regardless.
        self._loader_idle = loader_idle or (lambda: True)
        self._fsync = fsync
        self.stats = SpoolStats()
        self._cond = threading.Condition()
        self._bytes = 0  # on disk: open + sealed, not yet loaded
        self._spans = 0  # in those bytes, as far as this process knows
        self._unloaded: dict[Path, float] = {}  # sealed and not loaded -> created
        self._current: _Segment | None = None
        self._spare: _Segment | None = None
        self._generation: Future = Future()
        self._generation_records = 0
        self._dirty = False
        self._rotate_not_before = 0.0
        self._refusing = False
        self._closing = False
        self._seq = 0
        self._epoch = time.time_ns()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_directory()
        self.collector_id = self._collector_id()
        self._syncer = threading.Thread(target=self._sync_loop, name="tracelake-spool-sync", daemon=True)

    # -- start ---------------------------------------------------------------------------------

    def _lock_directory(self) -> int:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"spool directory {self.directory} is in use by another collector process "
                               "(each collector needs its own --spool-dir)") from None
        return fd

    def _collector_id(self) -> str:
        """Stable per spool directory, so a replayed segment keeps its deduplication token."""
        path = self.directory / "collector-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            ident = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(ident + "\n")
            self._fsync_file(tmp)
            os.replace(tmp, path)
            self._fsync_dir()
            return ident

    def recover(self) -> list[Sealed]:
        """Repair what a crash left and return the sealed segments to load, oldest first."""
        for path in sorted(self.directory.glob(f"*{OPEN}")):
            self._repair_open(path)
        ready = []
        for path in sorted(self.directory.glob(f"*{SEALED}")):
            data = path.read_bytes()
            result = scan(data)
            if result.problem:
                self._set_aside(path, result.problem)
                continue
            ready.append(self._sealed(path, len(data), result.records))
        self._fsync_dir()
        return ready

    def _repair_open(self, path: Path) -> None:
        data = path.read_bytes()
        result = scan(data)
        if result.end < len(data):
            torn = data[result.end:]
            self.stats.torn_bytes += len(torn)
            aside = self._corrupt_dir() / f"{path.name}.torn"
            aside.write_bytes(torn)
            self._fsync_file(aside)
            with open(path, "r+b") as f:
                f.truncate(result.end)
                f.flush()
                os.fsync(f.fileno())
            log.warning("spool: cut a torn tail of %d bytes from %s after %d whole records (%s); the cut bytes "
                        "were never acknowledged and are kept in %s", len(torn), path.name, result.records,
                        result.problem, aside)
        if result.records == 0:
            path.unlink()
            return
        os.replace(path, path.with_suffix(SEALED))

    def _set_aside(self, path: Path, problem: str) -> None:
        target = self._corrupt_dir() / path.name
        os.replace(path, target)
        self.stats.corrupt_segments += 1
        log.error("spool: segment %s is corrupt (%s); moved to %s and NOT loaded: its valid records can be "
                  "inspected there", path.name, problem, target)

    def _corrupt_dir(self) -> Path:
        d = self.directory / "corrupt"
        d.mkdir(exist_ok=True)
        return d

    def _sealed(self, path: Path, size: int, records: int) -> Sealed:
        created = _created_from_name(path) or path.stat().st_mtime
        with self._cond:
            self._bytes += size
            self._unloaded[path] = created
        return Sealed(path, f"{self.collector_id}/{path.stem}", size, records, created)

    def start(self) -> None:
        self._current = self._new_segment()
        self._spare = self._new_segment()
        self._syncer.start()

    # -- appends -------------------------------------------------------------------------------

    def append(self, body: bytes, spans: int = 0) -> Future:
        """Write one request; the Future completes once it is durable. Raises Backpressure."""
        parts = record_parts(body)
        size = len(parts[0]) + len(body) + len(parts[2])
        with self._cond:
            if self._closing:
                raise Backpressure("shutting down")
            if self._bytes + size > self.max_bytes:
                self.stats.refused_full += 1
                self._refusing = True  # not ready until loaders free some room
                raise Backpressure("spool full")
            segment = self._current
            assert segment is not None, "spool not started"
            try:
                _pwritev_all(segment.fd, parts, segment.size)
            except OSError as exc:
                self.stats.write_errors += 1
                try:  # nothing of a record that was not written whole may stay
                    os.ftruncate(segment.fd, segment.size)
                except OSError:
                    log.exception("spool: cannot cut a partial record from %s", segment.path)
                reason = "spool disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"spool write error: {exc}"
                raise Backpressure(reason) from exc
            segment.size += size
            segment.records += 1
            segment.spans += spans
            self._spans += spans
            self._bytes += size
            self.stats.appended_bytes += size
            self.stats.appended_records += 1
            self._generation_records += 1
            self._dirty = True
            generation = self._generation
            self._cond.notify_all()
        return generation

    # -- the syncer ----------------------------------------------------------------------------

    def _seal_due(self) -> bool:
        segment = self._current
        if not segment or not segment.records:
            return False
        if self._closing:
            return True
        now = time.monotonic()
        if now < self._rotate_not_before:
            return False
        age = now - segment.created_mono
        return (segment.size >= self.segment_bytes or age >= self.segment_max_age_s * _HARD_AGE
                or (age >= self.segment_max_age_s and self._loader_idle()))

    def _sync_loop(self) -> None:
        while True:
            try:
                if self._sync_once():
                    return
            except Exception:  # never leave waiters hanging on a dead syncer
                log.exception("spool: syncer error")
                with self._cond:
                    generation, self._generation = self._generation, Future()
                    self._generation_records = 0
                if not generation.done():
                    generation.set_exception(NotStored("spool syncer error"))
                time.sleep(0.1)

    def _sync_once(self) -> bool:
        """One fsync round (and a seal when due); True once closed and fully synced."""
        with self._cond:
            while not self._dirty and not self._seal_due() and not self._closing:
                segment = self._current
                wait = None
                if segment is not None and segment.records:
                    age = self.segment_max_age_s * (1 if time.monotonic() - segment.created_mono
                                                    < self.segment_max_age_s else _HARD_AGE)
                    due = max(segment.created_mono + age, self._rotate_not_before)
                    wait = max(0.0, due - time.monotonic())  # or until wake(): a loader became idle
                self._cond.wait(wait)
            generation, records = self._generation, self._generation_records
            self._generation, self._generation_records = Future(), 0
            self._dirty = False
            segment = self._current
            rotate = self._seal_due()
            if rotate:
                fresh = self._spare or self._try_new_segment()
                if fresh is None and not self._closing:
                    # Cannot create a file now (disk full): keep appending here, try again later.
                    rotate = False
                    self._rotate_not_before = time.monotonic() + 1.0
                else:
                    self._current, self._spare = fresh, None
            closing = self._closing
        assert segment is not None
        started = time.monotonic()
        try:
            if self._fsync and records:
                os.fdatasync(segment.fd)
        except OSError as exc:
            # Whether the bytes reached the disk is unknown: fail the waiters (they retry), and
            # start a new segment; what was synced before stays durable in this one.
            log.error("spool: fdatasync of %s failed: %s", segment.path, exc)
            generation.set_exception(NotStored(f"spool fsync failed: {exc}"))
            with self._cond:
                if self._current is segment:
                    fresh = self._spare or self._try_new_segment()
                    if fresh is not None:
                        self._current, self._spare = fresh, None
                        rotate = True
        else:
            generation.set_result(None)
        seconds = time.monotonic() - started
        if records:
            self.stats.syncs += 1
            self.stats.sync_seconds += seconds
            if self._on_sync:
                self._on_sync(records, seconds)
        if rotate:
            self._seal(segment)
        if not closing and self._spare is None:  # only this thread takes the spare
            spare = self._try_new_segment()
            with self._cond:
                self._spare = spare
        if closing:
            with self._cond:
                if not self._dirty and not (self._current and self._current.records):
                    self._cond.notify_all()
                    return True
        return False

    def _try_new_segment(self) -> _Segment | None:
        try:
            return self._new_segment()
        except OSError as exc:
            log.error("spool: cannot create a new segment in %s: %s", self.directory, exc)
            return None

    def _new_segment(self) -> _Segment:
        with self._cond:
            self._seq += 1
            seq = self._seq
        name = f"{time.time_ns():019d}-{self._epoch:019d}-{seq:08d}{OPEN}"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._fsync_dir()  # the name must survive a power loss before any ack depends on it
        return _Segment(path, fd)

    def _seal(self, segment: _Segment) -> None:
        if self._fsync:
            try:
                os.fsync(segment.fd)
            except OSError:
                log.exception("spool: fsync before sealing %s failed", segment.path)
        os.close(segment.fd)
        if not segment.records:
            _unlink(segment.path)
            return
        sealed_path = segment.path.with_suffix(SEALED)
        os.replace(segment.path, sealed_path)
        self._fsync_dir()
        self.stats.sealed += 1
        with self._cond:
            self._unloaded[sealed_path] = segment.created
        self._on_sealed(Sealed(sealed_path, f"{self.collector_id}/{sealed_path.stem}", segment.size,
                               segment.records, segment.created, segment.spans))

    # -- loaders' side -------------------------------------------------------------------------

    def wake(self) -> None:
        """A loader became idle: a segment old enough may be sealed now."""
        with self._cond:
            self._cond.notify_all()

    def loaded(self, sealed: Sealed) -> None:
        """The segment's INSERT returned: its bytes may go."""
        _unlink(sealed.path)
        with self._cond:
            self._bytes -= sealed.size
            self._spans -= sealed.spans
            self._refusing = False
            self._unloaded.pop(sealed.path, None)

    # -- state ---------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def spans(self) -> int:
        return self._spans

    @property
    def full(self) -> bool:
        """True once a request was refused for lack of room, until a segment is loaded."""
        return self._refusing or self._bytes >= self.max_bytes

    def unloaded_segments(self) -> int:
        with self._cond:
            return len(self._unloaded) + (1 if self._current and self._current.records else 0)

    def oldest_unloaded_age(self) -> float:
        """Seconds since the first byte of the oldest data not yet in ClickHouse (0 when none)."""
        with self._cond:
            times = list(self._unloaded.values())
            if self._current is not None and self._current.records:
                times.append(self._current.created)
        return max(0.0, time.time() - min(times)) if times else 0.0

    # -- stop ----------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> bool:
        """Refuse new appends, sync and seal what was written. True when the syncer finished."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._syncer.is_alive():
            self._syncer.join(timeout)
        stopped = not self._syncer.is_alive()
        with self._cond:
            spare, self._spare = self._spare, None
            current = self._current if stopped else None
        for segment in (spare, current):
            if segment is not None and not segment.records:
                _drop_empty(segment)
        return stopped

    def release(self) -> None:
        """Give up the directory lock (after the loaders stopped)."""
        os.close(self._lock_fd)

    # -- fsync helpers -------------------------------------------------------------------------

    def _fsync_dir(self) -> None:
        if not self._fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _fsync_file(self, path: Path) -> None:
        if not self._fsync:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pwritev_all(fd: int, parts: tuple[bytes, ...], offset: int) -> None:
    total = sum(map(len, parts))
    written = os.pwritev(fd, parts, offset)
    if written < total:  # a short write (rare): write the rest from a joined copy
        rest = memoryview(b"".join(parts))[written:]
        offset += written
        while rest:
            n = os.pwrite(fd, rest, offset)
            rest, offset = rest[n:], offset + n


def _created_from_name(path: Path) -> float | None:
    try:
        return int(path.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _drop_empty(segment: _Segment) -> None:
    try:
        os.close(segment.fd)
    except OSError:
        pass
    _unlink(segment.path)
