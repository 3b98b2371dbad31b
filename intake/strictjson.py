"""Strict decoding of untrusted JSON: the one parser for every document that crosses a boundary.

Sealed ``report.json`` (:mod:`intake.crypto.envelope`, :mod:`intake.schema`),
acknowledgements (:mod:`intake.retention`), export manifests
(:mod:`intake.review.bundle`) and replies (:mod:`intake.review.replies`) all
come from someone who may be hostile, so :func:`loads_strict` refuses what
:func:`json.loads` lets through: bytes that are not UTF-8, a key that appears
twice in one object (which copy wins differs between parsers), ``NaN``,
``Infinity`` and ``-Infinity`` (not JSON), nesting deep enough to exhaust the
stack, and (if asked) more than a given number of bytes.

A refusal is one line, ``"<what>: <reason>"``, that never quotes the input
beyond a duplicate key, cut short and escaped with :func:`ascii`. It is raised
as the caller's own exception type, or as :class:`StrictJSONError`, whose
attributes say which refusal it was, so that a caller can word it in another
language (the review tool does: :func:`intake.review.bundle.json_refusal`).

Stdlib only: the server and the offline review tool (no Flask, no SQLAlchemy,
no third-party packages) both import it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, Literal

__all__ = ["KEY_SHOWN_CHARS", "Refusal", "StrictJSONError", "loads_strict"]

#: Which refusal: too many bytes, not UTF-8, not JSON, nested too deeply,
#: a key twice in one object, NaN or (-)Infinity.
Refusal = Literal["size", "encoding", "syntax", "depth", "duplicate", "constant"]

#: How much of a duplicate key a message shows.
KEY_SHOWN_CHARS: Final = 40
_DETAIL_CHARS: Final = 100


class StrictJSONError(ValueError):
    """Untrusted JSON refused by :func:`loads_strict`; ``str()`` is one line, safe to print.

    ``refusal`` says which check failed; ``key`` is the duplicate key as shown
    (quoted, cut short), ``constant`` the refused name (``NaN``, ``Infinity``,
    ``-Infinity``) and ``limit`` the byte limit exceeded, each only for its
    refusal. ``what`` names the document and ``reason`` is the message without it.
    """

    def __init__(
        self,
        what: str,
        refusal: Refusal,
        reason: str,
        *,
        key: str = "",
        constant: str = "",
        limit: int | None = None,
    ) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.refusal: Refusal = refusal
        self.reason = reason
        self.key = key
        self.constant = constant
        self.limit = limit


def loads_strict(
    data: bytes | str,
    *,
    error: type[Exception] = StrictJSONError,
    what: str = "JSON",
    max_bytes: int | None = None,
) -> Any:
    """Decode untrusted JSON ``data`` (UTF-8 bytes, or text), refusing anything not plain JSON.

    Refused, each with one line ``"<what>: ..."``:

    * more than ``max_bytes`` (when given; for text, characters):
      ``larger than N bytes``;
    * bytes that are not UTF-8: ``not valid UTF-8 JSON (invalid start byte at byte 0)``;
    * a syntax error or a number too long to convert:
      ``not valid JSON (Expecting value at line 1, column 7)``;
    * nesting that exhausts the stack (RecursionError): ``not valid JSON (nested too deeply)``;
    * a key twice in one object: ``the key 'id' appears twice``;
    * ``NaN``, ``Infinity``, ``-Infinity``: ``NaN is not allowed``; a number too
      large for a float (``1e999``) counts as ``Infinity``.

    ``error`` is the exception type raised, built from that message alone
    (``error(message)``, its cause suppressed). Where a :class:`StrictJSONError`
    already is one (the default, or ``ValueError``), that is raised, with the
    attributes that say which refusal it was. Any JSON value is returned:
    checking that it is an object is the caller's part.
    """
    try:
        return _decode(data, what, max_bytes)
    except StrictJSONError as refusal:
        if issubclass(StrictJSONError, error):
            raise
        raise error(str(refusal)) from None


def _decode(data: bytes | str, what: str, max_bytes: int | None) -> Any:
    if not isinstance(data, str | bytes | bytearray | memoryview):
        raise TypeError(f"{what}: expected bytes or text, not {type(data).__name__}")
    if max_bytes is not None and len(data) > max_bytes:
        reason = f"larger than {max_bytes} bytes"
        raise StrictJSONError(what, "size", reason, limit=max_bytes)
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8 JSON ({_printable(exc.reason)} at byte {exc.start})"
            raise StrictJSONError(what, "encoding", reason) from None

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                shown = _shown_key(key)
                reason = f"the key {shown} appears twice"
                raise StrictJSONError(what, "duplicate", reason, key=shown)
            out[key] = value
        return out

    def no_constants(name: str) -> Any:
        raise StrictJSONError(what, "constant", f"{name} is not allowed", constant=name)

    def finite_float(literal: str) -> float:
        # 1e999 would decode to inf: the same thing as the refused word Infinity.
        value = float(literal)
        if not math.isfinite(value):
            no_constants("-Infinity" if value < 0 else "Infinity")
        return value

    try:
        return json.loads(
            text,
            object_pairs_hook=no_duplicate_keys,
            parse_constant=no_constants,
            parse_float=finite_float,
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as exc:
        # Built from the decoder's fixed message and position, never the input.
        detail = (
            f"{_printable(exc.msg.removesuffix(' at'))} at line {exc.lineno}, column {exc.colno}"
        )
        raise StrictJSONError(what, "syntax", f"not valid JSON ({detail})") from None
    except ValueError as exc:
        # E.g. an integer longer than sys.get_int_max_str_digits(): CPython's words,
        # up to the first colon (after it may come particulars of the input).
        detail = _printable(str(exc).partition(":")[0]) or type(exc).__name__
        raise StrictJSONError(what, "syntax", f"not valid JSON ({detail})") from None
    except RecursionError:
        raise StrictJSONError(what, "depth", "not valid JSON (nested too deeply)") from None


def _shown_key(key: str) -> str:
    """A hostile key for a one-line message: cut short, quoted, all but printable ASCII escaped.

    :func:`ascii` rather than :func:`repr`: no control, bidi or other non-ASCII
    character of the input reaches a terminal or a log as itself.
    """
    return ascii(key[:KEY_SHOWN_CHARS]) + ("…" if len(key) > KEY_SHOWN_CHARS else "")


def _printable(text: str) -> str:
    return "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in text[:_DETAIL_CHARS])
