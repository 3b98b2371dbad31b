"""Receipts: format, normalisation, and the keys the server derives (never the receipt)."""

from __future__ import annotations

import pyrage
import pytest
from pyrage import x25519

from intake.crypto import receipts


def test_a_receipt_is_twenty_digits_in_five_groups() -> None:
    seen = {receipts.new_receipt() for _ in range(200)}
    assert len(seen) == 200
    for receipt in seen:
        groups = receipt.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4, 4]
        assert all(g.isascii() and g.isdigit() for g in groups)


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("1234-5678-9012-3456-7890", "12345678901234567890"),
        ("1234 5678 9012 3456 7890", "12345678901234567890"),
        (" 12345678901234567890 ", "12345678901234567890"),
        ("١٢٣٤-٥٦٧٨-٩٠١٢-٣٤٥٦-٧٨٩٠", "12345678901234567890"),  # Arabic-Indic digits
        ("１２３４５６７８９０１２３４５６７８９０", "12345678901234567890"),  # full width
        ("1234-5678-9012-3456", None),  # one group short
        ("1234-5678-9012-3456-78901", None),
        ("1234-5678-9012-3456-789O", None),  # a letter O
        ("", None),
    ],
)
def test_typed_receipts_normalise(typed: str, digits: str | None) -> None:
    assert receipts.normalise_receipt(typed) == digits


def test_derived_keys_are_stable_and_depend_on_receipt_and_pepper() -> None:
    pepper = b"p" * 32
    first = receipts.derive_receipt_keys("12345678901234567890", pepper)
    again = receipts.derive_receipt_keys("12345678901234567890", pepper)
    other = receipts.derive_receipt_keys("12345678901234567891", pepper)
    other_pepper = receipts.derive_receipt_keys("12345678901234567890", b"q" * 32)
    assert (first.lookup_key, first.reply_recipient) == (again.lookup_key, again.reply_recipient)
    assert first.lookup_key != other.lookup_key != other_pepper.lookup_key
    assert first.reply_recipient not in (other.reply_recipient, other_pepper.reply_recipient)
    assert len(first.lookup_key) == 64 and "1234567890" not in first.lookup_key
    assert first.reply_recipient.startswith("age1")


def test_the_reply_key_opens_what_is_sealed_to_its_recipient() -> None:
    pepper = b"s" * 32
    keys = receipts.derive_receipt_keys("99990000111122223333", pepper)
    sealed = pyrage.encrypt(b"reply text", [x25519.Recipient.from_str(keys.reply_recipient)])
    identity = receipts.reply_identity("99990000111122223333", pepper)
    assert pyrage.decrypt(sealed, [identity]) == b"reply text"
    wrong = receipts.reply_identity("99990000111122223334", pepper)
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(sealed, [wrong])


def test_a_guess_costs_argon2id_over_64_mib() -> None:
    # What one guess costs in time is measured in bench/receipt_cost.py.
    assert receipts.ARGON2_MEMLIMIT >= 64 * 1024 * 1024
    assert receipts.ARGON2_OPSLIMIT >= 2


def test_derivations_queue_instead_of_piling_up_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many sign-ins arrive at once, at most two Argon2id runs hold 64 MiB each."""
    import threading

    running = 0
    most = 0
    guard = threading.Lock()
    real_kdf = receipts.argon2id.kdf

    def counting_kdf(*args: object, **kwargs: object) -> bytes:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        try:
            return real_kdf(*args, **kwargs)  # type: ignore[no-any-return]
        finally:
            with guard:
                running -= 1

    monkeypatch.setattr(receipts.argon2id, "kdf", counting_kdf)
    threads = [
        threading.Thread(target=receipts.lookup_key, args=(f"{n:020d}", b"p" * 32))
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= most <= receipts.MAX_CONCURRENT_DERIVATIONS
