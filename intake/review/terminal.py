"""Make hostile text safe to print on a terminal.

Everything inside an envelope or a bundle was written by someone who may want
to attack the reader: escape sequences can rewrite the screen, retitle the
window, write to the clipboard (OSC 52) or hide text; bidi overrides can make
``gpj.exe`` read as ``exe.jpg``. :func:`neutralise` is the single gate every
such string passes before it reaches stdout or stderr.
"""

from __future__ import annotations

import unicodedata

__all__ = ["display_width", "neutralise", "truncate"]

# Unicode categories never printed as-is: controls (C0, DEL, C1), format
# characters (bidi embeddings/overrides/isolates, zero-width, soft hyphen...),
# lone surrogates (a JSON "\ud800" decodes to one and would crash the encoder)
# and the line/paragraph separators some terminals treat as newlines.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _placeholder(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(text: str, *, multiline: bool = False) -> str:
    """Return ``text`` with every control or format character made visible.

    Each unsafe character becomes a visible escape (``\\x1b``, ``\\u202e``), so
    nothing reaches the terminal that it would interpret, and the reader still
    sees that something was there. With ``multiline``, ``\\n`` (and ``\\r\\n``)
    and tabs are kept; otherwise they become spaces, for one-line output.
    """
    if multiline:
        text = text.replace("\r\n", "\n")
    out: list[str] = []
    for ch in text:
        if ch == "\n" or ch == "\t":
            out.append(ch if multiline else " ")
        elif " " <= ch < "\x7f":
            out.append(ch)
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(_placeholder(ch))
        else:
            out.append(ch)
    return "".join(out)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide CJK counts two, combining marks zero)."""
    return sum(_char_width(ch) for ch in text)


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to at most ``width`` columns, ending with "…" when cut."""
    if display_width(text) <= width:
        return text
    if width <= 0:
        return ""
    out: list[str] = []
    used = 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"
