"""Export bundles as intake-review reads them: manifest parsing and hostile tars."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_review_support import add_member, make_bundle, make_key, manifest_entry, sealed_report

from intake.review.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION_UNSIGNED,
    ManifestError,
    envelope_member_name,
    manifest_bytes,
    parse_manifest,
)
from intake.review.cli import main
from intake.review.sources import SourceError, open_source

GOOD_SHA = "0" * 64


def _manifest(**overrides: object) -> bytes:
    document: dict[str, object] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION_UNSIGNED,
        "created_hour": "2024-05-02T09:00Z",
        "envelopes": [
            {"id": "abc", "received_hour": "2024-05-01T13:00Z", "size": 10, "sha256": GOOD_SHA}
        ],
    }
    document.update(overrides)
    return json.dumps(document).encode()


def test_manifest_round_trip() -> None:
    entries = [manifest_entry("abc-1", b"x"), manifest_entry("def-2", b"yy")]
    manifest = parse_manifest(manifest_bytes("2024-05-02T09:00Z", entries))
    assert manifest.created_hour == "2024-05-02T09:00Z"
    assert list(manifest.entries.values()) == entries
    assert envelope_member_name("abc-1") == "envelopes/abc-1.age"
    with pytest.raises(ValueError):
        envelope_member_name("../x")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[]", "expected a JSON object"),
        (_manifest(format="tar"), "format"),
        (_manifest(version=3), "version 3 is not supported"),
        (_manifest(version=2), "chain: expected an object"),
        (_manifest(version=True), "version"),
        (_manifest(envelopes={}), "envelopes: expected a list"),
        (_manifest(envelopes=[{"id": "../x", "size": 1, "sha256": GOOD_SHA}]), ".id"),
        (_manifest(envelopes=[{"id": "a", "size": -1, "sha256": GOOD_SHA}]), ".size"),
        (_manifest(envelopes=[{"id": "a", "size": 1.5, "sha256": GOOD_SHA}]), ".size"),
        (_manifest(envelopes=[{"id": "a", "size": 1, "sha256": "ABC"}]), ".sha256"),
        (
            _manifest(envelopes=[{"id": "a", "size": 1, "sha256": GOOD_SHA, "received_hour": 5}]),
            "received_hour",
        ),
        (
            _manifest(envelopes=[{"id": "a", "size": 1, "sha256": GOOD_SHA}] * 2),
            "listed twice",
        ),
        (b'{"format": "intake.bundle", "format": "x"}', "appears twice"),
        (b'{"version": NaN}', "NaN"),
        (b"[" * 100_000, "not valid"),
        (b" " * (16 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_bad_manifests_give_one_clean_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(json_values)
def test_manifest_parser_fuzz_structured(value: object) -> None:
    document = {"format": BUNDLE_FORMAT, "version": 1, "envelopes": [value]}
    for candidate in (value, document, {"envelopes": value}):
        with contextlib.suppress(ManifestError):
            parse_manifest(json.dumps(candidate).encode())


@given(st.binary(max_size=2000))
def test_manifest_parser_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(data=st.binary(max_size=4096))
def test_bundle_reader_fuzz(tmp_path: Path, data: bytes) -> None:
    """Arbitrary bytes as a bundle: a clean SourceError or a source with problems."""
    path = tmp_path / "fuzz.tar"
    path.write_bytes(data)
    try:
        with open_source(path) as source:
            for ref in source.envelopes:
                ref.check_integrity()
    except SourceError:
        pass


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_real_bundle_fuzz(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    """A real bundle with random bytes changed: never anything but clean errors."""
    key_dir = tmp_path / "k"
    key_dir.mkdir(exist_ok=True)
    path = tmp_path / "real.tar"
    if not path.exists():
        key = make_key(key_dir)
        make_bundle(path, {"abc": sealed_report(key)})
    data = bytearray(path.read_bytes())
    for offset, value in flips:
        data[offset % len(data)] = value
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(data))
    try:
        with open_source(damaged) as source:
            for ref in source.envelopes:
                ref.check_integrity()
    except SourceError:
        pass


def test_hostile_bundle_members_are_ignored_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key(tmp_path)
    good = sealed_report(key)
    link = tarfile.TarInfo("envelopes/linked.age")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    hard = tarfile.TarInfo("envelopes/hard.age")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "envelopes/good.age"
    device = tarfile.TarInfo("envelopes/dev.age")
    device.type = tarfile.CHRTYPE
    bundle = make_bundle(
        tmp_path / "b.tar",
        {"good": good},
        extra=[
            ("../../evil.age", b"x"),
            ("/etc/evil.age", b"x"),
            ("envelopes/../../x.age", b"x"),
            ("envelopes/UPPER.age", b"x"),
            ("envelopes/sub/x.age", b"x"),
            ("\x1b]0;title\x07.age", b"x"),
            link,
            hard,
            device,
        ],
    )
    with open_source(bundle) as source:
        assert [ref.id for ref in source.envelopes] == ["good"]
        assert len(source.problems) == 9
        assert source.envelopes[0].check_integrity() is None

    out_dir = tmp_path / "out"
    code = main(["list", "-i", str(key.path), str(bundle)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Aigul Test" in captured.out
    assert "\x1b" not in captured.err
    errors = [line for line in captured.err.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 9
    assert "Traceback" not in captured.err
    assert not out_dir.exists()
    assert not (tmp_path.parent / "evil.age").exists()


def test_manifest_mismatch_is_reported_per_envelope(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key(tmp_path)
    one, two, three = (sealed_report(key, person_name=n) for n in ("One", "Two", "Three"))
    entries = [
        manifest_entry("one", one),
        manifest_entry("two", b"something else"),  # wrong size and sha256
        manifest_entry("gone", b"never shipped"),
    ]
    wrong_sha = entries[0].__class__("three", "", len(three), hashlib.sha256(b"x").hexdigest())
    manifest = manifest_bytes("2024-05-02T09:00Z", [*entries, wrong_sha])
    bundle = make_bundle(
        tmp_path / "b.tar",
        {"one": one, "two": two, "three": three, "extra": one},
        manifest=manifest,
    )
    code = main(["list", "-i", str(key.path), str(bundle)])
    captured = capsys.readouterr()
    assert code == 1
    errors = captured.err.splitlines()
    assert any(e.startswith("error: two: size") for e in errors)
    assert any(e.startswith("error: three: SHA-256 differs") for e in errors)
    assert any(
        e.startswith("error: extra: is in the bundle but not in its manifest") for e in errors
    )
    assert any("gone is in the manifest but missing" in e for e in errors)
    assert not any(e.startswith("error: one:") for e in errors)
    # The reports are still listed: staff decide what a mismatch means.
    for name in ("One", "Two", "Three"):
        assert name in captured.out


@pytest.mark.parametrize("manifest", [b"{not json", b'{"format": "other"}', None])
def test_bad_or_missing_manifest_still_lists(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    manifest: bytes | None,
) -> None:
    monkeypatch.setenv("INTAKE_REVIEW_HOME", str(tmp_path / "no-state"))
    key = make_key(tmp_path)
    envelope = sealed_report(key)
    path = tmp_path / "b.tar"
    with tarfile.open(path, "w") as archive:
        if manifest is not None:
            add_member(archive, "manifest.json", manifest)
        add_member(archive, "envelopes/abc.age", envelope)
    code = main(["list", "--json", "-i", str(key.path), str(path)])
    captured = capsys.readouterr()
    assert code == 1
    assert [row["id"] for row in json.loads(captured.out)] == ["abc"]
    # No key pinned: said once; then the manifest's problem.
    warning, error = captured.err.splitlines()
    assert warning.endswith(": not verified: no server key pinned; run intake-review trust")
    assert error.startswith("error: ") and "manifest" in error


def test_duplicate_member_and_truncated_tar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key(tmp_path)
    envelope = sealed_report(key)
    bundle = make_bundle(tmp_path / "b.tar", {"abc": envelope}, extra=[("envelopes/abc.age", b"x")])
    assert main(["list", "-i", str(key.path), str(bundle)]) == 1
    assert "appears twice" in capsys.readouterr().err

    data = bundle.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2 + 100])
    code = main(["list", "-i", str(key.path), str(cut)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err


def test_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = make_key(tmp_path)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x89PNG" + bytes(range(256)) * 10)
    assert main(["list", "-i", str(key.path), str(junk)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["list", "-i", str(key.path), str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_compressed_member_stream_is_not_trusted(tmp_path: Path) -> None:
    """A gzip bundle is refused rather than decompressed without bounds."""
    key = make_key(tmp_path)
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add_member(archive, "envelopes/abc.age", sealed_report(key))
    with pytest.raises(SourceError):
        open_source(path)
    assert io  # keep the import for the helper's readers
