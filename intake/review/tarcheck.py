"""A cheap walk over a tar file's headers before :mod:`tarfile` parses it.

CPython's pax-header parser takes quadratic time on crafted headers
(CVE-2024-6232, fixed in 3.11.10 and 3.12.6): a bundle carried on a USB stick
could hang ``intake-review`` before any signature is checked, or a staff
member's replies upload could hang a server worker. The bundles and replies
bundles intake writes have no extended headers at all, so this walk refuses
any pax, global or GNU long-name header longer than :data:`MAX_EXTENDED_BYTES`
and anything that is not a tar header where one must be, reading only 512
bytes per member (and seeking over the data).
"""

from __future__ import annotations

import tarfile
from typing import IO

__all__ = ["MAX_EXTENDED_BYTES", "TarCheckError", "check_tar_headers"]

#: Longest extended header accepted: far above any real path, far below where
#: the quadratic parser hurts.
MAX_EXTENDED_BYTES = 4096
_BLOCK = 512
_EXTENDED_TYPES = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}


class TarCheckError(ValueError):
    """The file is not a tar this tool will parse; the message is one line."""


def check_tar_headers(stream: IO[bytes], *, max_members: int = 1_000_000) -> int:
    """Walk every header of a seekable tar stream; return the number of members.

    Leaves the stream at its start. Raises :class:`TarCheckError` on a bad
    header or an extended header over the limit.
    """
    start = stream.tell()
    members = 0
    try:
        while True:
            block = stream.read(_BLOCK)
            if len(block) < _BLOCK or not block.strip(b"\0"):
                return members
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise TarCheckError(f"bad tar header at member {members + 1} ({exc})") from None
            if info.type in _EXTENDED_TYPES and info.size > MAX_EXTENDED_BYTES:
                raise TarCheckError(
                    f"extended tar header of {info.size} bytes at member {members + 1}"
                )
            members += 1
            if members > max_members:
                raise TarCheckError("too many tar members")
            stream.seek(-(-info.size // _BLOCK) * _BLOCK, 1)
    finally:
        stream.seek(start)
