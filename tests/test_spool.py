"""The upload spool: plaintext never reaches the disk, and always comes back intact.

An auditor's checks: write a large, recognisable upload, then look at every
byte the spool put on disk (named files in the spool directory, and the
anonymous ``O_TMPFILE`` file, found through ``/proc/self/fd``) for the
plaintext in the encodings a forensic tool would search. Then check the
plaintext reads back exactly, from any position, in any chunk size.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.crypto import spool as spool_module
from intake.crypto.spool import EncryptedSpool, SpoolLimitExceededError, make_spool

MARKER = "TORTURE-REPORT-MARKER-Евгений-"


def _payload(size: int) -> bytes:
    """``size`` bytes full of the marker (so any slice of the disk would show it)."""
    unit = (MARKER + os.urandom(8).hex() + "\n").encode("utf-8")
    return (unit * (size // len(unit) + 1))[:size]


def _needles() -> list[bytes]:
    marker = MARKER.encode("utf-8")
    needles = [marker, MARKER.encode("utf-16-le"), marker[:16]]
    # base64 of the marker at each of the three alignments
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + marker)[4:-4]
        needles.append(encoded)
    return needles


def _spool_fds(directory: Path) -> Iterator[int]:
    """Open file descriptors of this process whose target is inside ``directory``."""
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            yield int(entry)


def _read_fd(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_disk_never_holds_plaintext(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    data = _payload(5 * 1024 * 1024 + 123)
    spool = make_spool(directory)
    try:
        for start in range(0, len(data), 65_521):
            spool.write(data[start : start + 65_521])
        spool.seek(0)
        assert spool.read(1000) == data[:1000]  # flushed, and readable

        disk: list[bytes] = [path.read_bytes() for path in directory.rglob("*") if path.is_file()]
        fds = list(_spool_fds(directory))
        assert spool._file.fileno() in fds, "the spool's fd should point into its directory"
        disk += [_read_fd(fd) for fd in fds]
        on_disk = _read_fd(spool._file.fileno())
        assert len(on_disk) == len(data), "the file holds the (same-size) ciphertext"
        assert on_disk != data
        for blob in disk:
            for needle in _needles():
                assert needle not in blob, needle
        # and nothing is named: the file is anonymous
        assert list(directory.iterdir()) == []
    finally:
        spool.close()
    assert list(directory.iterdir()) == []
    assert list(_spool_fds(directory)) == []


def test_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "spool"
    make_spool(directory).close()
    assert directory.stat().st_mode & 0o077 == 0


def test_read_back_size_and_hash(tmp_path: Path) -> None:
    data = _payload(3 * 1024 * 1024 + 7)
    with make_spool(tmp_path) as spool:
        spool.write(data[:1])
        spool.write(memoryview(data)[1:100_000])
        spool.write(bytearray(data[100_000:]))
        assert spool.size == len(data)
        assert spool.sha256 == hashlib.sha256(data).hexdigest()
        assert spool.tell() == len(data)
        assert spool.seek(0) == 0
        assert spool.read() == data
        assert spool.read() == b""
        assert spool.seek(0) == 0
        assert spool.read() == data  # twice
        spool.seek(12_345)
        assert spool.read(100) == data[12_345:12_445]
        spool.seek(-10, io.SEEK_END)
        assert spool.read() == data[-10:]
        spool.seek(5)
        spool.seek(3, io.SEEK_CUR)
        assert spool.read(4) == data[8:12]
        assert spool.seek(len(data) + 100) == len(data)
        assert spool.read(10) == b""
        with pytest.raises(ValueError):
            spool.seek(-1)


def test_empty_spool(tmp_path: Path) -> None:
    with make_spool(tmp_path) as spool:
        assert spool.size == 0
        assert spool.sha256 == hashlib.sha256(b"").hexdigest()
        spool.seek(0)
        assert spool.read() == b""
        assert spool.reader().read() == b""


def test_write_after_rewind_is_refused(tmp_path: Path) -> None:
    with make_spool(tmp_path) as spool:
        spool.write(b"abc")
        assert spool.writable()
        spool.seek(0)
        assert not spool.writable()
        with pytest.raises(io.UnsupportedOperation):
            spool.write(b"more")
        assert spool.read() == b"abc"


def test_readers_are_independent(tmp_path: Path) -> None:
    data = _payload(300_000)
    with make_spool(tmp_path) as spool:
        spool.write(data)
        first, second = spool.reader(), spool.reader()
        assert first.read(1000) == data[:1000]
        assert second.read(10) == data[:10]
        spool.seek(200_000)
        assert first.read(1000) == data[1000:2000]
        assert spool.read(5) == data[200_000:200_005]
        assert second.read() == data[10:]
        assert first.read() == data[2000:]
        assert spool.reader().read() == data


def test_limit(tmp_path: Path) -> None:
    with make_spool(tmp_path, limit=1000) as spool:
        spool.write(b"x" * 600)
        spool.write(b"x" * 400)  # exactly the limit is fine
        with pytest.raises(SpoolLimitExceededError):
            spool.write(b"x")
        assert spool.size == 1000
        spool.seek(0)
        assert spool.read() == b"x" * 1000
    with make_spool(tmp_path, limit=10) as spool, pytest.raises(SpoolLimitExceededError):
        spool.write(b"x" * 11)


def test_close_leaves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spools = [make_spool(directory) for _ in range(5)]
    for spool in spools:
        spool.write(_payload(100_000))
    reader = spools[0].reader()
    for spool in spools:
        spool.close()
        spool.close()  # idempotent
    assert list(directory.iterdir()) == []
    assert spools[0].closed
    with pytest.raises(ValueError):
        spools[0].write(b"x")
    with pytest.raises((ValueError, OSError)):
        reader.read()


def test_fallback_without_o_tmpfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where O_TMPFILE is missing, the file is unlinked at once: still nothing named."""
    import tempfile

    monkeypatch.setattr(tempfile, "_O_TMPFILE_WORKS", False, raising=False)
    directory = tmp_path / "spool"
    with make_spool(directory) as spool:
        spool.write(_payload(100_000))
        assert list(directory.iterdir()) == []
        spool.seek(0)
        assert spool.read(len(MARKER.encode())) == MARKER.encode()


def test_keys_and_nonces_differ_between_spools(tmp_path: Path) -> None:
    data = b"\0" * 4096
    blobs = []
    for _ in range(2):
        with make_spool(tmp_path) as spool:
            spool.write(data)
            spool.seek(0)
            blobs.append(_read_fd(spool._file.fileno()))
    assert blobs[0] != blobs[1]
    assert data not in blobs[0]


def test_random_nonce_never_overflows_the_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the ChaCha20 block counter used to start at a random value.

    With a start near 2**32 the counter overflowed after a few blocks and
    ``write`` failed (about one upload in 256 per GiB). Whatever the random
    bytes are, the spool must work.
    """
    real_urandom = os.urandom
    monkeypatch.setattr(spool_module.os, "urandom", lambda n: b"\xff" * n)
    data = _payload(64 * 100 + 17)
    with EncryptedSpool(tmp_path) as spool:
        spool.write(data)
        spool.seek(0)
        assert spool.read() == data
        spool.seek(6000)
        assert spool.read(300) == data[6000:6300]
    monkeypatch.setattr(spool_module.os, "urandom", real_urandom)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(min_size=0, max_size=3000),
    write_sizes=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=20),
    read_sizes=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=20),
    seek_to=st.integers(min_value=0, max_value=3100),
)
def test_odd_chunks_across_block_boundaries(
    tmp_path: Path, data: bytes, write_sizes: list[int], read_sizes: list[int], seek_to: int
) -> None:
    with make_spool(tmp_path) as spool:
        position, index = 0, 0
        while position < len(data):
            step = write_sizes[index % len(write_sizes)]
            spool.write(data[position : position + step])
            position += step
            index += 1
        assert spool.size == len(data)
        assert spool.sha256 == hashlib.sha256(data).hexdigest()

        for start in (seek_to, 0, seek_to):
            spool.seek(start)
            got, index = bytearray(), 0
            while chunk := spool.read(read_sizes[index % len(read_sizes)]):
                got += chunk
                index += 1
            assert bytes(got) == data[start:]

        reader = spool.reader()
        got, index = bytearray(), 0
        while chunk := reader.read(read_sizes[index % len(read_sizes)]):
            got += chunk
            index += 1
        assert bytes(got) == data

        # readinto into a buffer that straddles 64-byte blocks
        spool.seek(min(seek_to, len(data)))
        buffer = bytearray(131)
        count = spool.readinto(buffer)
        assert bytes(buffer[:count]) == data[min(seek_to, len(data)) :][:131]
