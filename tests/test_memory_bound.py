"""Memory stays bounded: a large upload does not grow the server worker by more than 64 MiB.

A real gunicorn server (one sync worker) takes one streamed 256 MiB upload; the
worker's peak RSS during the request, minus its RSS just before, must stay
under the spec's 64 MiB. Memory is not time, so asserting on it is allowed.

The server, the streamed upload and the measurement are those of
``bench/upload_memory.py`` (one implementation), loaded here by path.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SIZE_MIB = 256

pytestmark = pytest.mark.slow


def test_a_256_mib_upload_grows_the_worker_by_less_than_64_mib(
    tmp_path: Path, bench: ModuleType
) -> None:
    size = SIZE_MIB * bench.MIB

    site = bench.make_site(tmp_path / "site", max_file_mib=SIZE_MIB + 1)
    with bench.Server(site) as server:
        result = bench.measure_upload(server, size)
        log = server.log()

    assert result.ok, f"upload failed: {result!r}\n{log}"
    assert result.envelope is not None and result.envelope.is_file()
    assert bench.check_envelope(site, result.envelope, size, bench.payload_sha256(size)) == ""
    # Every submission costs the receipt's Argon2id (64 MiB, freed at once);
    # the attachment must add less than the limit on top of that.
    assert result.attachment_growth_mib < bench.LIMIT_MIB, (
        f"worker grew by {result.growth_mib:.1f} MiB during a {SIZE_MIB} MiB upload, "
        f"{result.attachment_growth_mib:.1f} MiB more than for a 1 KiB one "
        f"(RSS {result.baseline_kib} KiB before, peak {result.peak_kib} KiB; "
        f"peak reset: {result.peak_was_reset})"
    )
