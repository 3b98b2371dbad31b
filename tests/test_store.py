"""Envelope stores: the filesystem store, and the database store on both databases."""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from intake.config import StorageBackend
from intake.models import CHUNK_SIZE, EnvelopeChunk
from intake.store import (
    DatabaseStore,
    EnvelopeExistsError,
    EnvelopeNotFoundError,
    EnvelopeStore,
    FilesystemStore,
    InvalidEnvelopeIdError,
    make_store,
)

from conftest import SettingsFactory, migrated_database


class Boom(Exception):
    pass


@pytest.fixture(params=["filesystem", "database-sqlite", "database-postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EnvelopeStore]:
    if request.param == "filesystem":
        yield FilesystemStore(tmp_path / "data")
        return
    with migrated_database(request.param.removeprefix("database-"), tmp_path) as engine:
        yield DatabaseStore(engine)


def _write(store: EnvelopeStore, envelope_id: str, data: bytes, piece: int = 65536) -> None:
    with store.writer(envelope_id) as out:
        for i in range(0, len(data), piece):
            out.write(data[i : i + piece])


def _read(store: EnvelopeStore, envelope_id: str, piece: int = 100_003) -> bytes:
    parts = []
    with store.open(envelope_id) as src:
        while chunk := src.read(piece):
            parts.append(chunk)
    return b"".join(parts)


def _chunk_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(EnvelopeChunk)).scalar_one()


def test_round_trip_several_mib(store: EnvelopeStore) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 12345)
    _write(store, "abc123", data)
    assert _read(store, "abc123") == data
    with store.open("abc123") as src:
        assert src.read() == data
    assert store.size("abc123") == len(data)


@pytest.mark.parametrize("length", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_round_trip_edge_sizes(store: EnvelopeStore, length: int) -> None:
    data = os.urandom(length)
    _write(store, "edge", data, piece=7919)
    assert _read(store, "edge") == data
    assert store.size("edge") == length
    assert list(store.ids()) == ["edge"]


def test_one_big_write_call(store: EnvelopeStore) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 3)
    with store.writer("big") as out:
        assert out.write(data) == len(data)
    assert _read(store, "big") == data


def test_exception_inside_writer_leaves_nothing(store: EnvelopeStore, tmp_path: Path) -> None:
    with pytest.raises(Boom), store.writer("doomed") as out:
        out.write(os.urandom(2 * CHUNK_SIZE + 5))
        raise Boom
    assert list(store.ids()) == []
    with pytest.raises(EnvelopeNotFoundError):
        store.size("doomed")
    with pytest.raises(EnvelopeNotFoundError), store.open("doomed"):
        pass
    if isinstance(store, FilesystemStore):
        assert os.listdir(store.directory) == []
    else:
        assert isinstance(store, DatabaseStore)
        assert _chunk_rows(store.engine) == 0
    # The id is free again.
    _write(store, "doomed", b"second try")
    assert _read(store, "doomed") == b"second try"


def test_keyboard_interrupt_inside_writer_leaves_nothing(store: EnvelopeStore) -> None:
    with pytest.raises(KeyboardInterrupt), store.writer("doomed") as out:
        out.write(b"x" * 1000)
        raise KeyboardInterrupt
    assert list(store.ids()) == []


@pytest.mark.parametrize(
    "bad", ["../x", "a/b", "", ".", "..", "/etc/passwd", "A", "a.b", "-x", "a\n", "x" * 65]
)
def test_bad_ids_refused(store: EnvelopeStore, bad: str) -> None:
    with pytest.raises(InvalidEnvelopeIdError), store.writer(bad):
        pass
    with pytest.raises(InvalidEnvelopeIdError), store.open(bad):
        pass
    with pytest.raises(InvalidEnvelopeIdError):
        store.size(bad)
    with pytest.raises(InvalidEnvelopeIdError):
        store.delete(bad)


def test_no_overwrite(store: EnvelopeStore) -> None:
    _write(store, "once", b"first")
    with pytest.raises(EnvelopeExistsError), store.writer("once") as out:
        out.write(b"second")
    assert _read(store, "once") == b"first"


def test_delete_and_ids(store: EnvelopeStore) -> None:
    for name in ["c3", "a1", "b2"]:
        _write(store, name, name.encode() * 10)
    assert list(store.ids()) == ["a1", "b2", "c3"]
    store.delete("b2")
    assert list(store.ids()) == ["a1", "c3"]
    with pytest.raises(EnvelopeNotFoundError):
        store.size("b2")
    store.delete("b2")  # deleting twice is fine
    assert _read(store, "a1") == b"a1" * 10


def test_filesystem_layout_and_modes(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "data")
    _write(store, "f00d", b"sealed")
    path = tmp_path / "data" / "envelopes" / "f00d.age"
    assert path.read_bytes() == b"sealed"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The file's time says no more than the database row: the hour.
    assert path.stat().st_mtime % 3600 == 0


def test_filesystem_temp_file_while_writing(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with store.writer("abc") as out:
        out.write(b"partial")
        (tmp,) = os.listdir(store.directory)
        assert tmp.startswith(".abc.") and tmp.endswith(".tmp")
        assert stat.S_IMODE((store.directory / tmp).stat().st_mode) == 0o600
        assert list(store.ids()) == []
    assert os.listdir(store.directory) == ["abc.age"]


def test_filesystem_writer_body_may_close_stream(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with store.writer("closer") as out:
        out.write(b"data")
        out.close()
    assert _read(store, "closer") == b"data"


def test_filesystem_ids_ignore_strays(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    _write(store, "good", b"x")
    for stray in [".good.abc.tmp", "notes.txt", "BAD.age", ".hidden.age"]:
        (store.directory / stray).write_bytes(b"")
    (store.directory / "dir.age").mkdir()
    assert list(store.ids()) == ["good"]


def test_sweep_removes_temp_files_and_orphans(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    for name in ["kept", "orphan", "fresh-orphan"]:
        _write(store, name, b"x")
    old = time.time() - 3 * 3600
    for name in ["kept", "orphan"]:
        os.utime(store.path(name), (old, old))
    stale_tmp = store.directory / ".dead.k3j4.tmp"
    stale_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (old, old))
    live_tmp = store.directory / ".live.a1b2.tmp"
    live_tmp.write_bytes(b"being written")

    result = store.sweep_orphans({"kept"}, older_than=timedelta(hours=1))

    assert result.temp_files == 1
    assert result.orphan_ids == ("orphan",)
    assert sorted(os.listdir(store.directory)) == [".live.a1b2.tmp", "fresh-orphan.age", "kept.age"]
    # Later, with a shorter guard, the rest goes too (the live temp file included).
    later = time.time() + 3 * 3600
    result = store.sweep_orphans({"kept"}, older_than=timedelta(0), now=later)
    assert result.temp_files == 1
    assert result.orphan_ids == ("fresh-orphan",)
    assert list(store.ids()) == ["kept"]


def test_database_store_rows(migrated_engine: Engine) -> None:
    store = DatabaseStore(migrated_engine)
    data = os.urandom(2 * CHUNK_SIZE + 10)
    _write(store, "rows", data)
    with migrated_engine.connect() as conn:
        sizes = conn.execute(
            select(EnvelopeChunk.seq, func.length(EnvelopeChunk.data))
            .where(EnvelopeChunk.envelope_id == "rows")
            .order_by(EnvelopeChunk.seq)
        ).all()
    assert [tuple(r) for r in sizes] == [(0, CHUNK_SIZE), (1, CHUNK_SIZE), (2, 10)]


def test_database_store_nothing_visible_before_commit(migrated_engine: Engine) -> None:
    store = DatabaseStore(migrated_engine, chunk_size=1000)
    if migrated_engine.dialect.name == "sqlite":
        pytest.skip("SQLite's writer holds the database lock; PostgreSQL shows isolation")
    with store.writer("pending") as out:
        out.write(b"y" * 5000)  # five chunks already inserted, not committed
        assert list(store.ids()) == []
    assert list(store.ids()) == ["pending"]


def test_database_store_memory_is_bounded(migrated_engine: Engine) -> None:
    store = DatabaseStore(migrated_engine)
    piece = os.urandom(256 * 1024)
    total = 50 * 1024 * 1024
    tracemalloc.start()
    try:
        with store.writer("huge") as out:
            for _ in range(total // len(piece)):
                out.write(piece)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        with store.open("huge") as src:
            while chunk := src.read(256 * 1024):
                read += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == total
    assert store.size("huge") == total
    assert write_peak < 16 * 1024 * 1024, write_peak
    assert read_peak < 16 * 1024 * 1024, read_peak


def test_make_store(settings_factory: SettingsFactory, migrated_engine: Engine) -> None:
    fs = make_store(settings_factory())
    assert isinstance(fs, FilesystemStore)
    settings = settings_factory(storage={"backend": "database"})
    assert settings.storage.backend is StorageBackend.DATABASE
    assert isinstance(make_store(settings, migrated_engine), DatabaseStore)
    with pytest.raises(ValueError, match="engine"):
        make_store(settings)


def test_database_store_open_is_lazy(migrated_engine: Engine) -> None:
    """open() fetches chunk by chunk: reading a little issues few queries."""
    store = DatabaseStore(migrated_engine, chunk_size=1000)
    _write(store, "lazy", os.urandom(50_000))
    with store.open("lazy") as src:
        first = src.read(10)
        assert len(first) == 10
        reader = src.raw  # type: ignore[attr-defined]
        assert reader._seq == 1
