"""The shipped gunicorn.conf.py, run for real: no access log, no server banner.

A real gunicorn (started from the shipped config, with only the listening
socket and the worker count overridden) serves a throw-away site; a page, a
missing page and a submission go through it with a distinctive address-like
header, user agent and query string, and then its whole output is read.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
QUERY_MARKER = "query-MARKER-7Yd"
AGENT_MARKER = "agent-MARKER-p3K"
FORWARDED_FOR = "203.0.113.99"


def test_the_shipped_gunicorn_config_logs_no_request_and_names_no_server(
    tmp_path: Path, bench: ModuleType
) -> None:
    site = bench.make_site(tmp_path / "site", max_file_mib=4)
    headers = {"User-Agent": AGENT_MARKER, "X-Forwarded-For": FORWARDED_FOR}
    with bench.Server(site, timeout_s=60, config=ROOT / "gunicorn.conf.py") as server:
        status, response, _ = bench.request(server.port, "GET", f"/?q={QUERY_MARKER}", headers)
        missing, missing_response, _ = bench.request(
            server.port, "GET", f"/no-such-page?q={QUERY_MARKER}", headers
        )
        submitted = bench.measure_upload(server, 1024)
        log = server.log_file.read_text(errors="replace")

    assert (status, missing) == (200, 404)
    assert submitted.ok, submitted
    for answer in (response, missing_response):
        banner = answer.getheader("Server") or ""
        assert "gunicorn" not in banner.lower() and not any(ch.isdigit() for ch in banner)
    # The server did log (start-up lines), but no request: no path, query,
    # agent or forwarded address (the client here is loopback, as is the server).
    assert "Booting worker" in log
    for secret in (QUERY_MARKER, AGENT_MARKER, FORWARDED_FOR, "GET /", "POST /"):
        assert secret not in log, secret
