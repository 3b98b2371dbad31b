"""The terminal neutraliser and the text/JSON renderers of intake-review."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_review_support import report_dict

from intake.review.cases import Case, CaseEnvelope
from intake.review.render import render_json, render_table, safe_json
from intake.review.terminal import display_width, neutralise, truncate
from intake.schema import parse_report

UNSAFE = (
    ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200b", "\u200e", "\u200f", "\u061c", "\ufeff", "\u2028", "\u2029", "\ud800"]
)


def _is_unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


@pytest.mark.parametrize("ch", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_unsafe_character_becomes_a_visible_escape(ch: str) -> None:
    shown = neutralise(f"a{ch}b")
    assert ch not in shown
    assert shown.startswith("a\\") and shown.endswith("b")
    assert shown == neutralise(f"a{ch}b", multiline=True)


def test_escape_sequences_are_defused() -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x9b31m\u202egpj.exe"
    shown = neutralise(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\u202e" not in shown
    assert shown.startswith("\\x1b[2J\\x1b]0;owned\\x07")
    assert "\\u202egpj.exe" in shown


def test_newlines_kept_only_in_multiline_text() -> None:
    assert neutralise("one\r\ntwo\nthree\tx", multiline=True) == "one\ntwo\nthree\tx"
    assert neutralise("one\ntwo\tx") == "one two x"
    assert neutralise("lone\rreturn", multiline=True) == "lone\\x0dreturn"


def test_ordinary_text_of_every_script_is_untouched() -> None:
    text = "Ңң Үү Өө — Айгүл, oʻzbek gʻ, «кавычки», 日本, émigré 👩‍⚖️"
    # The emoji's zero-width joiner is a format character and is made visible.
    assert neutralise(text) == text.replace("\u200d", "\\u200d")


@given(st.text())
def test_neutralised_text_is_always_safe(text: str) -> None:
    for multiline in (False, True):
        shown = neutralise(text, multiline=multiline)
        allowed = {"\n", "\t"} if multiline else set()
        assert not any(_is_unsafe(ch) and ch not in allowed for ch in shown)
        shown.encode("utf-8")  # no lone surrogate survives


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_truncate_fits_width(text: str, width: int) -> None:
    clean = neutralise(text)
    cut = truncate(clean, width)
    assert display_width(cut) <= max(width, 0)
    if display_width(clean) <= width:
        assert cut == clean


@given(st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c, max_size=4)))
def test_safe_json_stays_valid_and_lossless(value: object) -> None:
    text = safe_json(value)
    assert json.loads(text) == value
    assert not any(_is_unsafe(ch) and ch not in "\n" for ch in text)


def _listed(envelope_id: str, **fields: object) -> Case:
    report = parse_report(report_dict(**fields))  # type: ignore[arg-type]
    return Case(envelope_id, CaseEnvelope(envelope_id, report))


def test_table_orders_danger_first_then_newest_and_fits() -> None:
    items = [
        _listed("old-calm", received_hour="2024-01-01T10:00Z"),
        _listed("new-calm", received_hour="2024-06-01T10:00Z"),
        _listed("old-danger", received_hour="2023-01-01T10:00Z", danger_now="yes"),
        _listed("long", received_hour="2024-02-01T10:00Z", what_happened="word " * 500),
    ]
    table = render_table(items, width=100)
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["old-danger", "new-calm", "long", "old-calm"]
    assert all(display_width(line) <= 100 for line in lines)
    assert "…" in table
    order = [row["id"] for row in json.loads(render_json(items))]
    assert order == ["old-danger", "new-calm", "long", "old-calm"]
