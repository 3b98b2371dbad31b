"""Identity files on the offline machine: loading them, and making a new one.

Identity files may be plain (as ``age-keygen`` writes them) or encrypted with a
passphrase (age scrypt), the format ``intake-review keygen`` writes and
``age -d -i`` reads. The passphrase comes from a file (scripted use) or a
prompt, and is asked for only when a file is encrypted.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.crypto.keys import (
    KeyFileError,
    encrypt_identity,
    generate_identity,
    load_identities,
    recipient_fingerprint,
)
from intake.review.lang import _

__all__ = [
    "MIN_PASSPHRASE_LENGTH",
    "NewIdentity",
    "load_identity_files",
    "read_passphrase_file",
    "write_new_identity",
]

#: Shorter passphrases are accepted with a warning (scrypt slows guessing, but
#: only so much).
MIN_PASSPHRASE_LENGTH = 12
_MAX_PASSPHRASE_FILE = 64 * 1024

Prompt = Callable[[str], str]


@dataclass(frozen=True)
class NewIdentity:
    """What ``keygen`` made: where, and the public half to give the server."""

    path: Path
    recipient: str
    fingerprint: str


def read_passphrase_file(path: Path) -> str:
    """The first line of a passphrase file, without its line ending."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PASSPHRASE_FILE + 1)
    except OSError as exc:
        raise KeyFileError(
            _("%(path)s: cannot read the passphrase file (%(reason)s)")
            % {"path": path, "reason": exc.strerror}
        ) from None
    if len(data) > _MAX_PASSPHRASE_FILE:
        raise KeyFileError(_("%(path)s: too large to be a passphrase file") % {"path": path})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(
            _("%(path)s: the passphrase file is not UTF-8 text") % {"path": path}
        ) from None
    return text.splitlines()[0] if text else ""


def load_identity_files(
    paths: Sequence[Path],
    passphrase_file: Path | None = None,
    prompt: Prompt = getpass.getpass,
) -> list[Any]:
    """Load every identity in ``paths``; raises :class:`KeyFileError` (one line)."""
    if not paths:
        raise KeyFileError(
            _("no identity given: use --identity FILE or set INTAKE_REVIEW_IDENTITY")
        )
    identities: list[Any] = []
    for path in paths:
        try:
            with path.open("rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise KeyFileError(_("%(path)s: identity file not found") % {"path": path}) from None
        except OSError as exc:
            raise KeyFileError(
                _("%(path)s: cannot read the identity file (%(reason)s)")
                % {"path": path, "reason": exc.strerror}
            ) from None

        def passphrase(path: Path = path) -> str:
            if passphrase_file is not None:
                return read_passphrase_file(passphrase_file)
            try:
                return prompt(f"Passphrase for {path}: ")
            except (EOFError, KeyboardInterrupt):
                raise KeyFileError(_("%(path)s: no passphrase entered") % {"path": path}) from None

        identities.extend(load_identities(data, str(path), passphrase))
    return identities


def _write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically; never overwrite unless forced."""
    path = path.absolute()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            temporary.replace(path)
        else:
            # link() fails if the target exists, with no window for a race.
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_new_identity(out: Path, passphrase: str, *, force: bool = False) -> NewIdentity:
    """Generate an X25519 identity, encrypt it with ``passphrase``, write it 0600.

    Raises :class:`KeyFileError` if ``out`` exists (without ``force``) or cannot
    be written, and ValueError for an empty passphrase.
    """
    if not passphrase:
        raise ValueError(_("the passphrase must not be empty"))
    if out.exists() and not force:
        raise KeyFileError(_exists(out))
    identity_text, recipient = generate_identity()
    encrypted = encrypt_identity(identity_text, passphrase)
    try:
        _write_private(out, encrypted, force=force)
    except FileExistsError:
        raise KeyFileError(_exists(out)) from None
    except OSError as exc:
        raise KeyFileError(
            _("%(path)s: cannot write (%(reason)s)") % {"path": out, "reason": exc.strerror}
        ) from None

    return NewIdentity(out, recipient, recipient_fingerprint(recipient))


def _exists(path: Path) -> str:
    return _("%(path)s: already exists; refusing to overwrite (use --force)") % {"path": path}
