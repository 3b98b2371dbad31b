"""intake.strictjson: the one strict decoder for untrusted JSON."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from intake.strictjson import KEY_SHOWN_CHARS, StrictJSONError, loads_strict


class DocError(ValueError):
    """A caller's own exception type."""


def test_plain_json_is_accepted_from_bytes_and_text() -> None:
    data = '{"a": [1, 2.5, "ключ", null, true], "b": {"c": {}}}'
    expected = {"a": [1, 2.5, "ключ", None, True], "b": {"c": {}}}
    assert loads_strict(data.encode()) == expected
    assert loads_strict(data) == expected
    assert loads_strict(bytearray(b"[]"), max_bytes=2) == []
    # The same key in two different objects is not a duplicate.
    assert loads_strict(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


def test_invalid_utf8() -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(b'{"a": "\xff"}', what="doc")
    assert str(caught.value) == "doc: not valid UTF-8 JSON (invalid start byte at byte 7)"
    assert caught.value.refusal == "encoding"


def test_json_autodetected_encodings_are_refused() -> None:
    # json.loads(bytes) would accept UTF-16 and a UTF-8 BOM; only plain UTF-8 is JSON here.
    with pytest.raises(StrictJSONError, match=r"^JSON: not valid UTF-8 JSON \("):
        loads_strict('{"a": 1}'.encode("utf-16"))
    with pytest.raises(StrictJSONError, match=r"^JSON: not valid JSON \(Unexpected UTF-8 BOM"):
        loads_strict(b'\xef\xbb\xbf{"a": 1}')


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "Expecting property name enclosed in double quotes at line 1, column 2"),
        (b'{"a": 1} x', "Extra data at line 1, column 10"),
        (b'\n"abc', "Unterminated string starting at line 2, column 1"),
        (b'["\x01"]', "Invalid control character at line 1, column 3"),
        (b"", "Expecting value at line 1, column 1"),
        (b"9" * 5000, "Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_invalid_json(data: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(data, what="doc")
    assert str(caught.value) == f"doc: not valid JSON ({reason})"
    assert caught.value.refusal == "syntax"


def test_duplicate_key_is_named() -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(b'{"x": {"id": 1, "id": 2}}', what="doc")
    assert str(caught.value) == "doc: the key 'id' appears twice"
    assert caught.value.refusal == "duplicate"
    assert caught.value.key == "'id'"


def test_duplicate_key_is_cut_and_escaped() -> None:
    key = "\\u001b]0;owned\\u0007\\u202e" + "k" * 100
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(f'{{"{key}": 1, "{key}": 2}}')
    message = str(caught.value)
    shown = "'\\x1b]0;owned\\x07\\u202e" + "k" * (KEY_SHOWN_CHARS - 11) + "'…"
    assert message == f"JSON: the key {shown} appears twice"
    assert message.isprintable()
    assert not re.search(r"[\x00-\x1f\x7f\u202e]", message)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity(constant: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(f'{{"a": [{constant}]}}', what="doc")
    assert str(caught.value) == f"doc: {constant} is not allowed"
    assert caught.value.refusal == "constant"
    assert caught.value.constant == constant


@pytest.mark.parametrize(("literal", "constant"), [("1e999", "Infinity"), ("-1e400", "-Infinity")])
def test_numbers_too_large_for_a_float_count_as_infinity(literal: str, constant: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(f'{{"size": {literal}}}', what="doc")
    assert str(caught.value) == f"doc: {constant} is not allowed"
    assert loads_strict('{"size": 1.5e300}') == {"size": 1.5e300}


def test_deep_nesting() -> None:
    for data in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        with pytest.raises(StrictJSONError) as caught:
            loads_strict(data, what="doc")
        assert str(caught.value) == "doc: not valid JSON (nested too deeply)"
        assert caught.value.refusal == "depth"


def test_size_limit() -> None:
    assert loads_strict(b"[1]", max_bytes=3) == [1]
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(b"[1] ", what="doc", max_bytes=3)
    assert str(caught.value) == "doc: larger than 3 bytes"
    assert caught.value.refusal == "size"
    assert caught.value.limit == 3
    # Checked before decoding: an oversized document is not even read.
    with pytest.raises(StrictJSONError, match=r"^doc: larger than 3 bytes$"):
        loads_strict(b"\xff" * 4, what="doc", max_bytes=3)


def test_the_callers_exception_type_and_name() -> None:
    with pytest.raises(DocError) as caught:
        loads_strict(b'{"a": 1, "a": 2}', error=DocError, what="ack.json")
    assert type(caught.value) is DocError
    assert str(caught.value) == "ack.json: the key 'a' appears twice"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(DocError, match=r"^ack\.json: not valid JSON \(nested too deeply\)$"):
        loads_strict(b"[" * 100_000, error=DocError, what="ack.json")


def test_value_error_is_the_default() -> None:
    with pytest.raises(ValueError, match=r"^JSON: NaN is not allowed$") as caught:
        loads_strict(b"NaN", error=ValueError)
    assert isinstance(caught.value, StrictJSONError)


def test_not_bytes_or_text_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match=r"^doc: expected bytes or text, not int$"):
        loads_strict(5, what="doc")  # type: ignore[arg-type]


def test_stdlib_only() -> None:
    code = (
        "import sys; import intake.strictjson; "
        "print(sorted(m for m in sys.modules if m.startswith('intake')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['intake', 'intake.strictjson']"
