"""Latency and throughput of the public pages, beside bare Flask and Argon2id alone.

What it measures
----------------
It builds a throw-away site with the helpers of ``bench/upload_memory.py``
(config, fresh recipient, database migrated with ``flask db upgrade``), starts
``gunicorn wsgi:app`` (sync workers, one by default) on a free port of
127.0.0.1 and times, from this process:

* ``GET /``: the form page, ``--requests`` times;
* ``POST /``: the smallest valid form, no attachment, ``--post-requests``
  times. The session cookie and ``csrf_token`` of each submission come from
  GETs of the form made before the run (not timed). Every submission derives its receipt's keys with
  Argon2id over 64 MiB, twice, by design, so this figure is dominated by it.

Every request goes over a new ``http.client`` connection (no keep-alive; a
sync worker closes it anyway), one at a time, or from ``--concurrency``
threads sharing the count. Warm-up requests go first (and are not counted), so
imports, template compilation and the first database connection are not in
the figures.

Reference rows, in this same process:

* ``GET / bare Flask``: a Flask app written into the site directory as a
  module, served by gunicorn with the same settings, answering a static HTML
  body of the same byte length as the form page. The gap to the intake row is
  what intake's page costs beyond Flask and gunicorn themselves (templates,
  translations, CSRF token and session cookie, security headers).
* ``derive_receipt_keys``: :func:`intake.crypto.receipts.derive_receipt_keys`
  alone, called in this process with the same count and concurrency as the
  POST run. The gap to the POST row is everything else a submission does
  (parsing, validation, sealing, fsync, the database commit, the receipt page).

Rate limits: the app limits submissions per client and from everyone together
(``[limits] submit_rate``, default "10 per hour", and ``global_submit_rate``,
default "300 per hour"), which would cut the POST run off with 429s. The
throw-away site sets both to "100000 per hour".

How to read the table
---------------------
``n`` is the number of timed requests; ``req/s`` is ``n`` over the wall time of
the run; ``p50``/``p95``/``p99`` are latency percentiles in ms (nearest rank),
from just before the connection is opened to the last byte of the answer.
``peak MiB`` is ``VmHWM`` of the gunicorn worker (the largest, if several)
after its peak was reset just before the run (``5`` into
``/proc/<pid>/clear_refs``; marked ``*`` where the kernel refused, then it is
the peak since the worker started); for the in-process row it is this
process's.

The script exits 0 whatever the figures are (benchmarks report, they do not
gate) and 1 if something failed outright: an answer other than 200, a server
that does not start, a worker replaced during a run, a missing envelope. With
``--workers`` and ``--concurrency`` both above 1, submissions from two workers
at once can fail on the site's SQLite database (a 503, "a submission could not
be stored (IntegrityError)" in the server log): that is a failure of the app,
reported as such.

Linux only (``/proc``). Run from the project root::

    .venv/bin/python bench/page_latency.py
    .venv/bin/python bench/page_latency.py --requests 1000 --workers 2 --concurrency 4
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import math
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from intake.crypto.receipts import (
    ARGON2_MEMLIMIT,
    ARGON2_OPSLIMIT,
    derive_receipt_keys,
    new_receipt,
)

BENCH_DIR = Path(__file__).resolve().parent


def _load_upload_memory() -> ModuleType:
    """``bench/upload_memory.py``, loaded by path as the tests load it (one implementation)."""
    name = "bench_upload_memory"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / "upload_memory.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load bench/upload_memory.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # mypy sees bench/ as a source root, so it types the helpers
    import upload_memory as um
else:
    um = _load_upload_memory()

MIB = 1 << 20
#: High enough that no run is cut off by a 429 (see the module docstring).
LIMITS: dict[str, str | int] = {
    "submit_rate": "100000 per hour",
    "global_submit_rate": "100000 per hour",
}
BARE_MODULE = "bare_page_app"
BARE_APP = '''"""A bare Flask app serving one static HTML page (page_latency.py's reference)."""

from pathlib import Path

from flask import Flask, Response

BODY = Path(__file__).with_name("bare_page.html").read_bytes()
app = Flask(__name__)


@app.get("/")
def page() -> Response:
    return Response(BODY, mimetype="text/html")
'''


class BenchFailure(Exception):
    """Something failed outright: the run has no figures worth printing."""


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


@dataclass
class Row:
    """One measured run: one line of the table."""

    name: str
    latencies_s: list[float]
    wall_s: float
    peak_kib: int | None
    peak_was_reset: bool = True

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the latencies, in ms."""
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(percent / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    def format(self) -> str:
        count = len(self.latencies_s)
        rate = count / self.wall_s if self.wall_s > 0 else float("inf")
        if self.peak_kib is None:
            peak = "-"
        else:
            peak = f"{self.peak_kib / 1024:.1f}" + ("" if self.peak_was_reset else "*")
        return (
            f"{self.name:<36} {count:>5} {rate:>8.1f} {self.percentile_ms(50):>8.1f} "
            f"{self.percentile_ms(95):>8.1f} {self.percentile_ms(99):>8.1f} {peak:>9}"
        )


TABLE_HEADER = (
    f"{'measurement':<36} {'n':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'peak MiB':>9}"
)


def timed_calls(
    count: int, concurrency: int, call: Callable[[], float]
) -> tuple[list[float], float]:
    """Run ``call`` ``count`` times from ``concurrency`` threads: (its latencies, wall seconds).

    ``call`` returns the latency it measured itself (so untimed preparation,
    such as fetching a csrf token, can stay out of it) and raises on failure.
    """
    if concurrency <= 1:
        started = time.perf_counter()
        latencies = [call() for _ in range(count)]
        return latencies, time.perf_counter() - started
    lock = threading.Lock()
    remaining = [count]

    def worker() -> list[float]:
        mine: list[float] = []
        while True:
            with lock:
                if remaining[0] == 0:
                    return mine
                remaining[0] -= 1
            mine.append(call())

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        started = time.perf_counter()
        futures = [pool.submit(worker) for _ in range(concurrency)]
        results = [future.result() for future in futures]
        wall = time.perf_counter() - started
    return [latency for result in results for latency in result], wall


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """What one GET / answered: body and header sizes."""

    body_bytes: int
    header_bytes: int


def get_page(port: int) -> Page:
    """GET / once, untimed; its sizes."""
    status, response, body = um.request(port, "GET", "/")
    if status != 200:
        raise BenchFailure(f"GET / answered {status}")
    headers = sum(len(name) + len(value) + 4 for name, value in response.getheaders())
    return Page(len(body), headers)


def get_once(port: int) -> float:
    """GET / over a new connection; its latency in seconds."""
    started = time.perf_counter()
    status, _, _ = um.request(port, "GET", "/")
    latency = time.perf_counter() - started
    if status != 200:
        raise BenchFailure(f"GET / answered {status}")
    return latency


def form_body(token: str) -> tuple[bytes, str]:
    """The smallest valid form, no attachment, as multipart: (body, Content-Type)."""
    boundary = f"----intake-bench-{secrets.token_hex(16)}"
    parts: list[str] = []
    for name, value in {**um.FORM_FIELDS, "csrf_token": token}.items():
        for item in [value] if isinstance(value, str) else value:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{item}\r\n'
            )
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"


def post_once(port: int, cookie: str, token: str) -> float:
    """POST the form of one session over a new connection; its latency in seconds."""
    body, content_type = form_body(token)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        started = time.perf_counter()
        conn.request(
            "POST", "/", body=body, headers={"Content-Type": content_type, "Cookie": cookie}
        )
        response = conn.getresponse()
        response.read()
        latency = time.perf_counter() - started
    finally:
        conn.close()
    if response.status != 200:  # 200 is the receipt page; 400 invalid, 429 rate-limited
        raise BenchFailure(f"POST / answered {response.status}")
    return latency


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------


def _reset_workers(server: um.Server) -> tuple[list[int], bool]:
    pids = server.worker_pids()
    reset = all([um.reset_peak(pid) for pid in pids])
    return pids, reset


def _worker_peak(server: um.Server, before: list[int]) -> int:
    """The largest worker ``VmHWM``; a failure if a worker was replaced meanwhile."""
    after = server.worker_pids()
    if sorted(after) != sorted(before):
        raise BenchFailure(f"gunicorn workers changed during the run: {before} -> {after}")
    return max(um.status_kib(pid, "VmHWM") for pid in after)


def run_server(
    name: str, server: um.Server, count: int, concurrency: int, call: Callable[[int], float]
) -> Row:
    """Time ``call(port)`` ``count`` times against ``server``; the worker's peak RSS."""
    pids, reset = _reset_workers(server)
    latencies, wall = timed_calls(count, concurrency, lambda: call(server.port))
    return Row(name, latencies, wall, _worker_peak(server, pids), reset)


def run_derive(count: int, concurrency: int) -> Row:
    """``derive_receipt_keys`` alone, in this process, as a submission calls it."""
    pepper = secrets.token_bytes(32)

    def once() -> float:
        digits = new_receipt().replace("-", "")
        started = time.perf_counter()
        derive_receipt_keys(digits, pepper)
        return time.perf_counter() - started

    once()  # warm-up: the first call loads libsodium's code paths
    reset = um.reset_peak("self")
    latencies, wall = timed_calls(count, concurrency, once)
    return Row(
        "derive_receipt_keys (in-process)",
        latencies,
        wall,
        um.status_kib("self", "VmHWM"),
        reset,
    )


def bare_html(length: int) -> bytes:
    """A plain HTML page of exactly ``length`` bytes."""
    head = b'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>bare</title>'
    head += b"</head><body><p>"
    tail = b"</p></body></html>\n"
    filler = length - len(head) - len(tail)
    if filler < 0:
        return b"x" * length
    words = b"lorem ipsum dolor sit amet " * (filler // 27 + 1)
    return head + words[:filler] + tail


def _envelope_count(site: um.Site) -> int:
    return len(list(site.envelopes.glob("*.age"))) if site.envelopes.is_dir() else 0


@dataclass
class Options:
    requests: int
    post_requests: int
    workers: int
    concurrency: int


def run(options: Options, directory: Path) -> int:
    try:
        site = um.make_site(directory / "site", max_file_mib=1, limits=LIMITS)
    except subprocess.CalledProcessError as exc:
        print(f"FAILED: flask db upgrade: {exc.stderr.decode(errors='replace')}", file=sys.stderr)
        return 1
    print(
        f"intake page latency bench: {os.cpu_count()} CPUs, {options.workers} sync worker(s), "
        f"concurrency {options.concurrency}, new connection per request; "
        f"Argon2id opslimit={ARGON2_OPSLIMIT} memlimit={ARGON2_MEMLIMIT // MIB} MiB"
    )
    print(f"site in {site.directory}")
    rows: list[Row] = []
    warm_gets = 10 * options.workers
    server = um.Server(site, workers=options.workers)
    try:
        with server:
            form_page = get_page(server.port)
            for _ in range(warm_gets):
                get_once(server.port)
            for _ in range(options.workers):
                post_once(server.port, *um.fetch_form(server.port))
            rows.append(
                run_server(
                    "GET / intake (gunicorn)",
                    server,
                    options.requests,
                    options.concurrency,
                    get_once,
                )
            )
            # One session (cookie, csrf_token) per submission, fetched before the run.
            forms = [um.fetch_form(server.port) for _ in range(options.post_requests)]
            rows.append(
                run_server(
                    "POST / intake, no attachment",
                    server,
                    options.post_requests,
                    options.concurrency,
                    lambda port: post_once(port, *forms.pop()),
                )
            )
            envelopes = _envelope_count(site)
            if envelopes != options.workers + options.post_requests:
                raise BenchFailure(
                    f"{envelopes} envelopes for "
                    f"{options.workers + options.post_requests} submissions"
                )
        rows.append(run_derive(options.post_requests, options.concurrency))

        (site.directory / "bare_page.html").write_bytes(bare_html(form_page.body_bytes))
        (site.directory / f"{BARE_MODULE}.py").write_text(BARE_APP)
        server = um.Server(site, app=f"{BARE_MODULE}:app", workers=options.workers)
        with server:
            bare_page = get_page(server.port)
            for _ in range(warm_gets):
                get_once(server.port)
            rows.insert(
                1,
                run_server(
                    "GET / bare Flask (gunicorn)",
                    server,
                    options.requests,
                    options.concurrency,
                    get_once,
                ),
            )
    except (BenchFailure, RuntimeError, OSError, http.client.HTTPException) as exc:
        message, log = str(exc), server.log()
        if log and log not in message:
            message += f"\n{log}"
        print(f"FAILED: {message}", file=sys.stderr)
        return 1

    print()
    print(TABLE_HEADER)
    for row in rows:
        print(row.format())
    print()
    if not all(row.peak_was_reset for row in rows):
        print("* peak not reset (the kernel refused clear_refs): the peak since the start")
    get_intake, get_bare, post, derive = rows
    print(
        f"GET / bodies: intake {form_page.body_bytes} bytes + {form_page.header_bytes} bytes "
        f"of headers, bare Flask {bare_page.body_bytes} + {bare_page.header_bytes}"
    )
    print(
        "intake's form page beyond bare Flask+gunicorn: "
        f"{get_intake.percentile_ms(50) - get_bare.percentile_ms(50):+.1f} ms at p50"
    )
    print(
        "a submission beyond derive_receipt_keys: "
        f"{post.percentile_ms(50) - derive.percentile_ms(50):+.1f} ms at p50 "
        "(parse, validate, seal, fsync, commit, receipt page)"
    )
    if options.concurrency > 1:
        print(f"with {options.concurrency} clients at once, latencies include queueing")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, default=300, help="timed GET / requests per server (default 300)"
    )
    parser.add_argument(
        "--post-requests",
        type=int,
        default=20,
        help="timed POST / submissions, and derive_receipt_keys calls (default 20)",
    )
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers (default 1)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="client threads sharing the requests (default 1: one at a time)",
    )
    parser.add_argument(
        "--keep-dir",
        type=Path,
        default=None,
        help="work in this directory and keep it (site, database, envelopes, server log)",
    )
    args = parser.parse_args(argv)
    for option in ("requests", "post_requests", "workers", "concurrency"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if not Path("/proc/self/status").exists():
        parser.error("this benchmark reads /proc: Linux only")
    options = Options(args.requests, args.post_requests, args.workers, args.concurrency)
    if args.keep_dir is not None:
        args.keep_dir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="page-latency-", dir=args.keep_dir))
        return run(options, directory)
    with tempfile.TemporaryDirectory(prefix="page-latency-") as name:
        return run(options, Path(name))


if __name__ == "__main__":
    sys.exit(main())
