"""The header walk that guards tarfile against crafted extended headers (CVE-2024-6232)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from intake.review.tarcheck import MAX_EXTENDED_BYTES, TarCheckError, check_tar_headers


def _tar(*members: tuple[str, bytes], pax: dict[str, str] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax:
                info.pax_headers = pax
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_an_ordinary_bundle_passes_and_the_stream_is_rewound() -> None:
    stream = _tar(("manifest.json", b"{}"), ("envelopes/a.age", b"x" * 1000))
    assert check_tar_headers(stream) == 2
    assert stream.tell() == 0


def test_a_long_pax_header_is_refused_before_tarfile_parses_it() -> None:
    crafted = _tar(("envelopes/a.age", b"x"), pax={"comment": "0" * (MAX_EXTENDED_BYTES * 16)})
    with pytest.raises(TarCheckError, match="extended tar header"):
        check_tar_headers(crafted)


def test_garbage_is_refused_with_a_one_line_message() -> None:
    with pytest.raises(TarCheckError) as error:
        check_tar_headers(io.BytesIO(b"not a tar at all" * 64))
    assert "\n" not in str(error.value)


def test_empty_and_truncated_files_are_not_errors_here() -> None:
    # tarfile itself reports those; the walk only guards its parser.
    assert check_tar_headers(io.BytesIO(b"")) == 0
    whole = _tar(("a", b"x" * 2048)).getvalue()
    assert check_tar_headers(io.BytesIO(whole[:1024])) == 1


def test_bundle_and_replies_readers_refuse_a_crafted_header(tmp_path: Path) -> None:
    from intake.review.replies import RepliesBundleError, read_replies_bundle
    from intake.review.sources import SourceError, open_source

    crafted = _tar(("manifest.json", b"{}"), pax={"comment": "0" * (MAX_EXTENDED_BYTES * 16)})
    path = tmp_path / "crafted.tar"
    path.write_bytes(crafted.getvalue())
    with pytest.raises(SourceError):
        open_source(path)
    with pytest.raises(RepliesBundleError):
        read_replies_bundle(path)
