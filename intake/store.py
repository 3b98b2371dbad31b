"""Where sealed envelopes live: the :class:`EnvelopeStore` interface and two stores.

* :class:`FilesystemStore` (the default): one file per envelope,
  ``<data_dir>/envelopes/<id>.age``, written atomically and fsynced.
* :class:`DatabaseStore`: envelopes as 1 MiB :class:`~intake.models.EnvelopeChunk`
  rows, so several hosts share nothing but the database (see "Scale" in the
  architecture brief). Works on SQLite and PostgreSQL.

Both stream: neither ever holds a whole envelope in memory. Everything they
hold is ciphertext; an envelope id is the only clear text and is checked
against :data:`ENVELOPE_ID_RE` before it touches a path or a query.

SQLAlchemy is imported only by :class:`DatabaseStore`.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from intake.config import Settings, StorageBackend

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

__all__ = [
    "ENVELOPE_ID_RE",
    "DatabaseStore",
    "EnvelopeExistsError",
    "EnvelopeNotFoundError",
    "EnvelopeStore",
    "FilesystemStore",
    "InvalidEnvelopeIdError",
    "SweepResult",
    "make_store",
    "validate_envelope_id",
]

#: Lower-case letters, digits and inner hyphens, at most 64: never a path
#: separator, never a dot, never a leading "-" that a shell tool could take
#: for an option.
ENVELOPE_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

SUFFIX = ".age"


class InvalidEnvelopeIdError(ValueError):
    """The id is not a well-formed envelope id (see :data:`ENVELOPE_ID_RE`)."""


class EnvelopeNotFoundError(LookupError):
    """No envelope has this id."""


class EnvelopeExistsError(FileExistsError):
    """An envelope with this id already exists; envelopes are never overwritten."""


def validate_envelope_id(envelope_id: str) -> str:
    if not isinstance(envelope_id, str) or not ENVELOPE_ID_RE.fullmatch(envelope_id):
        raise InvalidEnvelopeIdError(f"invalid envelope id: {envelope_id!r}")
    return envelope_id


class EnvelopeStore(Protocol):
    """Where sealed envelopes are kept (contract: docs/internals.md)."""

    def writer(self, envelope_id: str) -> AbstractContextManager[BinaryIO]:
        """A stream to write a new envelope to: durable on clean exit, gone on error."""
        ...

    def open(self, envelope_id: str) -> AbstractContextManager[BinaryIO]:
        """A stream reading the envelope; :class:`EnvelopeNotFoundError` if missing."""
        ...

    def size(self, envelope_id: str) -> int:
        """The envelope's size in bytes; :class:`EnvelopeNotFoundError` if missing."""
        ...

    def delete(self, envelope_id: str) -> None:
        """Remove the envelope; deleting a missing envelope is not an error."""
        ...

    def ids(self) -> Iterator[str]:
        """The ids of every stored envelope, sorted."""
        ...


# --- filesystem ------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    temp_files: int
    orphan_ids: tuple[str, ...]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _floor_hour(epoch: float) -> float:
    return epoch - epoch % 3600


class FilesystemStore:
    """Envelopes as files ``<root>/envelopes/<id>.age`` (mode 0600)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.directory = self.root / "envelopes"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, envelope_id: str) -> Path:
        return self.directory / f"{validate_envelope_id(envelope_id)}{SUFFIX}"

    @contextmanager
    def writer(self, envelope_id: str) -> Iterator[BinaryIO]:
        final = self.path(envelope_id)
        if final.exists():
            raise EnvelopeExistsError(f"envelope {envelope_id} already exists")
        # mkstemp: O_EXCL and mode 0600; same directory, so the rename is atomic.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{envelope_id}.", suffix=".tmp", dir=self.directory
        )
        tmp = Path(tmp_name)
        try:
            # closefd=False: the body may close its stream (some writers do);
            # the fd stays ours to fsync.
            with os.fdopen(fd, "wb", closefd=False) as stream:
                yield cast(BinaryIO, stream)
                if not stream.closed:
                    stream.flush()
            os.fsync(fd)
            os.close(fd)
            fd = -1
            # The file's times would tell the exact second a report arrived,
            # and copies (backups, rsync -a, tar) keep mtime: round to the hour
            # like the database row.
            hour = _floor_hour(time.time())
            os.utime(tmp, (hour, hour))
            tmp.replace(final)
            _fsync_dir(self.directory)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def open(self, envelope_id: str) -> Iterator[BinaryIO]:
        try:
            stream = self.path(envelope_id).open("rb")
        except FileNotFoundError:
            raise EnvelopeNotFoundError(envelope_id) from None
        with stream:
            yield stream

    def size(self, envelope_id: str) -> int:
        try:
            return self.path(envelope_id).stat().st_size
        except FileNotFoundError:
            raise EnvelopeNotFoundError(envelope_id) from None

    def delete(self, envelope_id: str) -> None:
        path = self.path(envelope_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.directory)

    def ids(self) -> Iterator[str]:
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                stem = entry.name.removesuffix(SUFFIX)
                if (
                    entry.name.endswith(SUFFIX)
                    and ENVELOPE_ID_RE.fullmatch(stem)
                    and entry.is_file(follow_symlinks=False)
                ):
                    found.append(stem)
        return iter(sorted(found))

    def sweep_orphans(
        self, known_ids: Collection[str], older_than: timedelta, *, now: float | None = None
    ) -> SweepResult:
        """Remove stray temp files and envelopes with no database row.

        ``known_ids`` are the ids that have a row. Only files older than
        ``older_than`` go, so an upload still being written, or an envelope
        whose row is about to be committed, is safe. Envelope times are
        rounded down to the hour (see :meth:`writer`), so an envelope must be
        ``older_than`` plus one hour old to count as an orphan.
        """
        now = time.time() if now is None else now
        limit = older_than.total_seconds()
        known = set(known_ids)
        temp_files = 0
        orphans: list[str] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                age = now - entry.stat(follow_symlinks=False).st_mtime
                name = entry.name
                if name.startswith(".") and name.endswith(".tmp"):
                    if age >= limit:
                        Path(entry.path).unlink(missing_ok=True)
                        temp_files += 1
                elif name.endswith(SUFFIX):
                    stem = name.removesuffix(SUFFIX)
                    if ENVELOPE_ID_RE.fullmatch(stem) and stem not in known and age >= limit + 3600:
                        Path(entry.path).unlink(missing_ok=True)
                        orphans.append(stem)
        if temp_files or orphans:
            _fsync_dir(self.directory)
        return SweepResult(temp_files=temp_files, orphan_ids=tuple(sorted(orphans)))


# --- database --------------------------------------------------------------------


def _chunk_table() -> Table:
    from intake.models import Base, EnvelopeChunk

    return Base.metadata.tables[EnvelopeChunk.__tablename__]


class _ChunkWriter(io.RawIOBase):
    """Buffers at most one chunk, inserting each full chunk as a row."""

    def __init__(self, conn: Connection, envelope_id: str, chunk_size: int) -> None:
        self._table = _chunk_table()
        self._conn = conn
        self._id = envelope_id
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._seq = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed envelope writer")
        view = memoryview(data).cast("B")
        size = len(view)
        while len(view):
            room = self._chunk_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self._chunk_size:
                self._insert()
        return size

    def _insert(self) -> None:
        from sqlalchemy import insert

        self._conn.execute(
            insert(self._table),
            {"envelope_id": self._id, "seq": self._seq, "data": bytes(self._buffer)},
        )
        self._seq += 1
        self._buffer.clear()

    def finish(self) -> None:
        """Insert the last, partial chunk (an empty envelope still gets one row)."""
        if self._buffer or self._seq == 0:
            self._insert()
        super().close()

    def close(self) -> None:
        # Closing is not committing: the rows go in when writer() exits cleanly.
        super().close()


class _ChunkReader(io.RawIOBase):
    """Reads an envelope one chunk (one query) at a time."""

    def __init__(self, conn: Connection, envelope_id: str) -> None:
        self._table = _chunk_table()
        self._conn = conn
        self._id = envelope_id
        self._seq = 0
        self._chunk = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fetch(self) -> None:
        from sqlalchemy import select

        t = self._table
        data = self._conn.execute(
            select(t.c.data).where(t.c.envelope_id == self._id, t.c.seq == self._seq)
        ).scalar_one_or_none()
        if data is None:
            self._eof = True
            self._chunk = b""
        else:
            self._chunk = bytes(data)
            self._seq += 1
        self._pos = 0

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self._chunk) and not self._eof:
            self._fetch()  # loops past empty chunks
        n = min(len(view), len(self._chunk) - self._pos)
        view[:n] = self._chunk[self._pos : self._pos + n]
        self._pos += n
        return n


class DatabaseStore:
    """Envelopes as :class:`~intake.models.EnvelopeChunk` rows of ``chunk_size`` bytes.

    A write is one transaction, committed when :meth:`writer` exits cleanly
    and rolled back on any exception. On SQLite that transaction holds the
    database's write lock for the whole upload: use PostgreSQL when more
    than one submission may be written at once.
    """

    def __init__(self, engine: Engine, chunk_size: int | None = None) -> None:
        from intake.models import CHUNK_SIZE

        self.engine = engine
        self.chunk_size = chunk_size or CHUNK_SIZE
        self._table = _chunk_table()

    def _exists(self, conn: Connection, envelope_id: str) -> bool:
        from sqlalchemy import select

        t = self._table
        query = select(t.c.seq).where(t.c.envelope_id == envelope_id).limit(1)
        return conn.execute(query).first() is not None

    @contextmanager
    def writer(self, envelope_id: str) -> Iterator[BinaryIO]:
        validate_envelope_id(envelope_id)
        with self.engine.begin() as conn:
            if self._exists(conn, envelope_id):
                raise EnvelopeExistsError(f"envelope {envelope_id} already exists")
            stream = _ChunkWriter(conn, envelope_id, self.chunk_size)
            try:
                yield cast(BinaryIO, stream)
                stream.finish()
            finally:
                stream.close()

    @contextmanager
    def open(self, envelope_id: str) -> Iterator[BinaryIO]:
        validate_envelope_id(envelope_id)
        # One transaction for the whole read: on PostgreSQL a concurrent
        # delete can't leave us half an envelope under REPEATABLE READ.
        isolation = "REPEATABLE READ" if self.engine.dialect.name == "postgresql" else None
        conn = self.engine.connect()
        if isolation:
            conn = conn.execution_options(isolation_level=isolation)
        with conn, conn.begin():
            if not self._exists(conn, envelope_id):
                raise EnvelopeNotFoundError(envelope_id)
            stream = io.BufferedReader(_ChunkReader(conn, envelope_id), self.chunk_size)
            with stream:
                yield cast(BinaryIO, stream)

    def size(self, envelope_id: str) -> int:
        from sqlalchemy import func, select

        validate_envelope_id(envelope_id)
        t = self._table
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.count(), func.coalesce(func.sum(func.length(t.c.data)), 0)).where(
                    t.c.envelope_id == envelope_id
                )
            ).one()
        if total[0] == 0:
            raise EnvelopeNotFoundError(envelope_id)
        return int(total[1])

    def delete(self, envelope_id: str) -> None:
        from sqlalchemy import delete

        validate_envelope_id(envelope_id)
        with self.engine.begin() as conn:
            conn.execute(delete(self._table).where(self._table.c.envelope_id == envelope_id))

    def ids(self) -> Iterator[str]:
        from sqlalchemy import select

        t = self._table
        with self.engine.connect() as conn:
            found = conn.execute(select(t.c.envelope_id).distinct().order_by(t.c.envelope_id))
            return iter([row[0] for row in found])


def make_store(settings: Settings, engine: Engine | None = None) -> EnvelopeStore:
    """The store ``[storage] backend`` names; the database one needs ``engine``."""
    if settings.storage.backend is StorageBackend.DATABASE:
        if engine is None:
            raise ValueError("the database envelope store needs an engine")
        return DatabaseStore(engine)
    return FilesystemStore(settings.storage.data_dir)
