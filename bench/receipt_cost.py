"""What one receipt guess costs: time and memory of the Argon2id derivations.

Run: ``.venv/bin/python bench/receipt_cost.py``. Prints, for the parameters in
:mod:`intake.crypto.receipts`, the time of one lookup-key derivation and of a
whole sign-in (lookup key and reply key), beside a raw SHA-256 of the same
input as the reference for "no key stretching at all".
"""

from __future__ import annotations

import hashlib
import resource
import statistics
import time

from intake.crypto import receipts

RUNS = 10
DIGITS = "12345678901234567890"
PEPPER = b"bench-pepper-0123456789abcdefghij"


def _time(function: object, runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = [
        ("sha256 (reference)", _time(lambda: hashlib.sha256(DIGITS.encode()).digest(), 1000)),
        ("lookup key (1 x Argon2id)", _time(lambda: receipts.lookup_key(DIGITS, PEPPER))),
        ("sign-in (2 x Argon2id)", _time(lambda: receipts.derive_receipt_keys(DIGITS, PEPPER))),
    ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"Argon2id opslimit={receipts.ARGON2_OPSLIMIT} "
        f"memlimit={receipts.ARGON2_MEMLIMIT // (1 << 20)} MiB"
    )
    print(f"{'what':<28} {'median ms':>10} {'min ms':>8}")
    for name, samples in rows:
        print(f"{name:<28} {statistics.median(samples) * 1000:>10.2f} {min(samples) * 1000:>8.2f}")
    print(f"peak RSS growth: {(peak - before) / 1024:.1f} MiB")
    guesses_per_core_year = 365 * 24 * 3600 / statistics.median(rows[1][1])
    print(f"guesses per core-year: {guesses_per_core_year:.2e} of 1e20 receipts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
