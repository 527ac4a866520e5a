"""The spool alone, in-process: record format, group fsync, sealing, restart repair, bounds."""
from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_spans import new_trace_id, request, span

from tracelake.collector.errors import Backpressure
from tracelake.collector.spool import Sealed, Spool, encode_record, scan


def _body(n: int = 3, name: str = "s") -> bytes:
    trace = new_trace_id()
    return request([span(f"{name}{i}", trace) for i in range(n)]).SerializeToString()


class Collected:
    def __init__(self) -> None:
        self.sealed: list[Sealed] = []
        self.event = threading.Event()

    def __call__(self, segment: Sealed) -> None:
        self.sealed.append(segment)
        self.event.set()


def _spool(directory: Path, collected: Collected, **overrides) -> Spool:
    args = dict(max_bytes=10 << 20, segment_bytes=1 << 20, segment_max_age_s=60.0, on_sealed=collected)
    return Spool(directory, **{**args, **overrides})


def test_a_record_is_a_protobuf_message_with_its_checksum_as_an_unknown_field():
    body = _body()
    record = encode_record(body)
    result = scan(record + encode_record(body))
    assert (result.end, result.records, result.problem) == (2 * len(record), 2, "")
    # Any protobuf reader sees the original request (the trailer is an unknown field).
    length = record[0] | ((record[1] & 0x7F) << 7) if record[0] & 0x80 else record[0]
    message = record[len(record) - length:]
    parsed = ExportTraceServiceRequest.FromString(message)
    parsed.DiscardUnknownFields()
    assert parsed.SerializeToString() == body


@pytest.mark.parametrize("damage, problem", [
    (lambda r: r[:-3], "announced"),  # torn: cut inside the record
    (lambda r: r[:1], "cut short"),  # torn: cut inside the length
    (lambda r: r[:10] + bytes([r[10] ^ 0xFF]) + r[11:], "checksum mismatch"),  # a flipped byte
    (lambda r: r[:-6] + b"\x00" * 6, "no checksum trailer"),
])
def test_scan_stops_at_the_first_damaged_record(damage, problem):
    good = encode_record(_body())
    result = scan(good + damage(encode_record(_body())))
    assert (result.end, result.records) == (len(good), 1)
    assert problem in result.problem


def test_appends_are_durable_together_and_sealed_by_age(tmp_path):
    collected = Collected()
    spool = _spool(tmp_path, collected, segment_max_age_s=0.2)
    spool.start()
    futures = [spool.append(_body(), 3) for _ in range(20)]
    for f in futures:
        assert f.result(30) is None
    assert spool.stats.syncs <= 20 and spool.stats.appended_records == 20
    assert collected.event.wait(30)  # sealed once 0.2 s old
    [segment] = collected.sealed
    assert segment.records == 20 and segment.spans == 60 and segment.path.suffix == ".seg"
    data = segment.path.read_bytes()
    assert scan(data).records == 20 and len(data) == segment.size == spool.bytes
    assert segment.token.startswith(spool.collector_id + "/") and segment.path.stem in segment.token
    spool.loaded(segment)
    assert not segment.path.exists() and spool.bytes == 0 and spool.oldest_unloaded_age() == 0
    assert spool.close(30)
    spool.release()


def test_a_segment_is_sealed_by_size(tmp_path):
    collected = Collected()
    body = _body(50)
    spool = _spool(tmp_path, collected, segment_bytes=3 * len(body))
    spool.start()
    for _ in range(7):
        spool.append(body).result(30)
    assert spool.close(30)
    sizes = [s.records for s in collected.sealed]
    assert sum(sizes) == 7 and len(sizes) >= 2 and max(sizes) <= 3
    spool.release()


def test_the_spool_bound_refuses_with_backpressure_until_loaded(tmp_path):
    collected = Collected()
    body = _body(20)
    spool = _spool(tmp_path, collected, max_bytes=3 * len(encode_record(body)), segment_max_age_s=0.05)
    spool.start()
    for _ in range(3):
        spool.append(body).result(30)
    with pytest.raises(Backpressure, match="spool full"):
        spool.append(body)
    assert collected.event.wait(30)
    for segment in list(collected.sealed):
        spool.loaded(segment)
    spool.append(body).result(30)  # room again
    assert spool.close(30)
    spool.release()


def test_two_processes_cannot_share_a_spool(tmp_path):
    spool = _spool(tmp_path, Collected())
    with pytest.raises(RuntimeError, match="in use by another collector"):
        _spool(tmp_path, Collected())
    spool.release()


def test_restart_cuts_a_torn_tail_and_keeps_the_cut_bytes(tmp_path):
    whole = [encode_record(_body()) for _ in range(3)]
    torn = encode_record(_body())[:-7]
    (tmp_path / "0000000000000000001-0000000000000000001-00000001.open").write_bytes(b"".join(whole) + torn)
    (tmp_path / "0000000000000000002-0000000000000000001-00000002.open").write_bytes(b"")  # an unused spare
    spool = _spool(tmp_path, Collected())
    [segment] = spool.recover()
    assert segment.records == 3 and segment.path.read_bytes() == b"".join(whole)
    assert spool.stats.torn_bytes == len(torn)
    assert (tmp_path / "corrupt" / "0000000000000000001-0000000000000000001-00000001.open.torn").read_bytes() == torn
    assert not list(tmp_path.glob("*.open"))
    assert spool.bytes == segment.size
    spool.release()


def test_restart_sets_a_corrupt_sealed_segment_aside_and_loads_the_rest(tmp_path):
    good = b"".join(encode_record(_body()) for _ in range(2))
    bad = bytearray(good)
    bad[len(bad) // 4] ^= 0x55
    (tmp_path / "0000000000000000001-0000000000000000001-00000001.seg").write_bytes(bytes(bad))
    (tmp_path / "0000000000000000002-0000000000000000001-00000002.seg").write_bytes(good)
    spool = _spool(tmp_path, Collected())
    [segment] = spool.recover()
    assert segment.path.name.endswith("00000002.seg")
    assert spool.stats.corrupt_segments == 1
    assert (tmp_path / "corrupt" / "0000000000000000001-0000000000000000001-00000001.seg").read_bytes() == bytes(bad)
    spool.release()


def test_the_collector_id_and_so_the_tokens_survive_a_restart(tmp_path):
    first = _spool(tmp_path, Collected())
    ident = first.collector_id
    first.release()
    second = _spool(tmp_path, Collected())
    assert second.collector_id == ident
    second.release()


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 1 MiB tmpfs: writes past it fail with ENOSPC, as on a full disk."""
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_disk_full_is_a_clear_refusal_and_nothing_partial_stays(tiny_filesystem):
    collected = Collected()
    spool = _spool(tiny_filesystem, collected)
    spool.start()
    body = _body(200)
    acked = 0
    with pytest.raises(Backpressure, match="spool disk full"):
        for _ in range(1000):
            spool.append(body).result(30)
            acked += 1
    assert acked > 0 and spool.stats.write_errors == 1
    assert spool.close(30)
    spool.release()
    # What stayed on disk is exactly the acked records, whole.
    reopened = _spool(tiny_filesystem, Collected())
    segments = reopened.recover()
    assert sum(s.records for s in segments) == acked and reopened.stats.torn_bytes == 0
    reopened.release()
