"""Upload spooling that never writes plaintext to disk.

An upload may be larger than memory, so it has to be spooled to a file before
it is sealed. The spool file holds only ChaCha20 ciphertext under a random key
that lives in this object and nowhere else; the file itself is anonymous
(``O_TMPFILE`` where the platform has it, unlinked at once otherwise), so
when the process ends, for whatever reason, nothing readable is left behind.

ChaCha20 without a MAC is enough here: the threat is a disk read later (a
seized server, a backup, a swap of the temp dir), not an attacker who rewrites
the file while the request is running.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["MAX_SPOOL_BYTES", "EncryptedSpool", "SpoolLimitExceededError", "make_spool"]

_KEY_BYTES = 32
# cryptography's ChaCha20 takes 16 bytes: a 4-byte little-endian block counter,
# then a 12-byte nonce (RFC 7539). The nonce is random; the counter starts at 0
# and is derived from the offset, so any block can be decrypted on its own.
_NONCE_BYTES = 12
_BLOCK = 64  # ChaCha20 block size, for seeking the keystream
#: The 32-bit block counter covers 2**32 blocks of 64 bytes (256 GiB); a spool
#: never grows past that, whatever its configured limit.
MAX_SPOOL_BYTES = _BLOCK << 32


class SpoolLimitExceededError(ValueError):
    """More bytes were written than the spool's limit allows."""


class EncryptedSpool(io.RawIOBase):
    """A write-then-read temp file whose disk bytes are always encrypted.

    Write the plaintext, then ``seek(0)`` and read it back (this is how
    Werkzeug uses the stream its form parser fills). :meth:`reader` gives
    further independent plaintext streams over the same spool.
    """

    def __init__(self, directory: Path | None = None, limit: int | None = None) -> None:
        super().__init__()
        self._key = os.urandom(_KEY_BYTES)
        self._nonce = os.urandom(_NONCE_BYTES)
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - owned by self
        self._encryptor: CipherContext | None = self._cipher_at(0).encryptor()
        self._limit = limit
        self._hash = hashlib.sha256()
        self._size = 0
        self._position = 0

    # -- writing -----------------------------------------------------------
    def writable(self) -> bool:
        return self._encryptor is not None

    def write(self, data: ReadableBuffer) -> int:
        if self._encryptor is None:
            raise io.UnsupportedOperation("the spool is read-only once it has been rewound")
        chunk = bytes(data)
        limit = MAX_SPOOL_BYTES if self._limit is None else min(self._limit, MAX_SPOOL_BYTES)
        if self._size + len(chunk) > limit:
            raise SpoolLimitExceededError(f"upload larger than {limit} bytes")
        self._file.write(self._encryptor.update(chunk))
        self._hash.update(chunk)
        self._size += len(chunk)
        return len(chunk)

    @property
    def size(self) -> int:
        """Bytes of plaintext written."""
        return self._size

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the plaintext written so far."""
        return self._hash.hexdigest()

    # -- reading -----------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._size
        if offset < 0:
            raise ValueError("negative seek position")
        self._finish_writing()
        self._position = min(offset, self._size)
        return self._position

    def tell(self) -> int:
        return self._position if self._encryptor is None else self._size

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._finish_writing()
        view = memoryview(buffer).cast("B")
        data = self._read_at(self._position, len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def reader(self) -> io.BufferedReader:
        """A new plaintext stream at offset 0, independent of this one's position."""
        self._finish_writing()
        return io.BufferedReader(_SpoolReader(self), buffer_size=1 << 16)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._key = b""
        super().close()

    # -- internals ---------------------------------------------------------
    def _finish_writing(self) -> None:
        if self._encryptor is not None:
            self._file.write(self._encryptor.finalize())
            self._file.flush()
            self._encryptor = None

    def _cipher_at(self, offset: int) -> Cipher[None]:
        # The counter starts at 0 and never wraps (writes stop at MAX_SPOOL_BYTES):
        # a random start counter would overflow after up to 256 GiB, and
        # cryptography refuses to encrypt past that point.
        counter = offset // _BLOCK
        nonce = counter.to_bytes(4, "little") + self._nonce
        return Cipher(algorithms.ChaCha20(self._key, nonce), mode=None)

    def _read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self._size - offset))
        if length == 0:
            return b""
        block_start = offset - offset % _BLOCK
        ciphertext = os.pread(self._file.fileno(), length + (offset - block_start), block_start)
        plaintext = self._cipher_at(block_start).decryptor().update(ciphertext)
        return plaintext[offset - block_start :]


class _SpoolReader(io.RawIOBase):
    """An independent read position over an :class:`EncryptedSpool`."""

    def __init__(self, spool: EncryptedSpool) -> None:
        super().__init__()
        self._spool = spool
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._spool._read_at(self._position, len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def make_spool(directory: Path | None = None, limit: int | None = None) -> EncryptedSpool:
    """A new encrypted spool in ``directory`` (the system temp dir when None)."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return EncryptedSpool(directory, limit)
