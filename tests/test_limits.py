"""Rate limits on submissions: per client without storing addresses, global, shared via Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intake.models import Report, db

from webapp import WebApp, make_app, receipt_of, valid_form

REDIS_ENV = "INTAKE_TEST_REDIS_URL"
ACCEPTED = 200  # the receipt page


def _post(web: WebApp, address: str) -> Any:
    return web.client.post(
        "/",
        data=valid_form(),
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": address},
    )


def _stored(web: WebApp) -> int:
    with web.app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Report)) or 0)


def _limited_app(tmp_path: Path, **limits: Any) -> WebApp:
    return make_app(tmp_path, settings={"limits": limits})


def test_a_client_over_its_limit_gets_a_friendly_page_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    web = _limited_app(tmp_path, submit_rate="2 per hour")
    assert _post(web, "203.0.113.7").status_code == ACCEPTED
    assert _post(web, "203.0.113.7").status_code == ACCEPTED
    limited = _post(web, "203.0.113.7")
    assert limited.status_code == 429
    page = limited.get_data(as_text=True)
    assert "try again in about" in page and "minutes" in page
    assert "Nothing was saved" in page
    assert 0 < int(limited.headers["Retry-After"]) <= 3601  # the window is an hour
    assert _stored(web) == 2
    # Another client is not affected, and reading the form is never limited.
    assert _post(web, "198.51.100.9").status_code == ACCEPTED
    assert web.client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200


def test_the_global_limit_holds_across_clients(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, submit_rate="100 per hour", global_submit_rate="3 per hour")
    codes = [_post(web, f"192.0.2.{n}").status_code for n in range(1, 6)]
    assert codes == [ACCEPTED, ACCEPTED, ACCEPTED, 429, 429]
    assert _stored(web) == 3


def test_behind_tor_clients_are_told_apart_by_session(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, submit_rate="1 per hour", behind_tor=True)
    first = web.app.test_client()
    second = web.app.test_client()

    def post(client: Any) -> int:
        response = client.post("/", data=valid_form(), content_type="multipart/form-data")
        return int(response.status_code)

    assert post(first) == ACCEPTED
    assert post(first) == 429
    # Same address (the Tor daemon's), another browser session: its own allowance.
    assert post(second) == ACCEPTED


def test_the_client_key_changes_with_the_utc_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Yesterday's counts cannot be tied to today's: the secret of the key is the day's.
    web = _limited_app(tmp_path, submit_rate="1 per day")
    monkeypatch.setattr("intake.limits.utc_day", lambda: "2030-01-01")
    assert _post(web, "203.0.113.7").status_code == ACCEPTED
    assert _post(web, "203.0.113.7").status_code == 429
    monkeypatch.setattr("intake.limits.utc_day", lambda: "2030-01-02")
    assert _post(web, "203.0.113.7").status_code == ACCEPTED
    limiter = web.app.extensions["intake_limiter"]
    keys = {str(k) for k in limiter.limiter.storage.events}
    assert len([k for k in keys if "/a:" in k or ":a:" in k]) == 2, keys


def test_limit_storage_never_holds_an_address(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, submit_rate="5 per hour")
    _post(web, "203.0.113.77")
    limiter = web.app.extensions["intake_limiter"]
    storage = limiter.limiter.storage
    keys = " ".join(str(k) for k in [*storage.storage, *storage.events])
    assert "intake" in keys  # the limit really was recorded
    assert "203.0.113.77" not in keys
    assert "203-0-113-77" not in keys


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_ENV, "")
    if not url:
        pytest.skip(f"{REDIS_ENV} is unset")
    import redis

    client = redis.Redis.from_url(url)

    def clear() -> None:
        for key in client.scan_iter(match="*intake*"):
            client.delete(key)

    clear()
    yield url
    clear()
    client.close()


def test_two_app_instances_share_limits_through_redis(tmp_path: Path, redis_url: str) -> None:
    # Two workers (or hosts) with the same secret key and the same Redis.
    settings = {
        "limits": {"submit_rate": "2 per hour", "storage_url": redis_url},
        "server": {"secret_key_file": str(tmp_path / "shared-secret")},
    }
    first = make_app(tmp_path / "a", settings=settings)
    second = make_app(tmp_path / "b", settings=settings)
    assert _post(first, "203.0.113.5").status_code == ACCEPTED
    assert _post(second, "203.0.113.5").status_code == ACCEPTED
    assert _post(first, "203.0.113.5").status_code == 429
    assert _post(second, "203.0.113.5").status_code == 429
    assert _post(second, "203.0.113.6").status_code == ACCEPTED

    import redis

    client = redis.Redis.from_url(redis_url)
    keys = b" ".join(client.scan_iter(match="*intake*"))
    client.close()
    assert keys and b"203.0.113.5" not in keys


def test_follow_ups_are_limited_per_case_whatever_the_client(tmp_path: Path) -> None:
    """Signing in again, from another address, does not reset a case's allowance."""
    web = _limited_app(tmp_path, submit_rate="2 per hour", behind_tor=True)
    receipt = receipt_of(_post(web, "192.0.2.1"))

    def add_from(address: str) -> int:
        client = web.app.test_client()
        signed_in = client.post(
            "/case/sign-in", data={"receipt": receipt}, environ_base={"REMOTE_ADDR": address}
        )
        assert signed_in.status_code == 200
        response = client.post(
            "/case/add",
            data={"text": "more", "danger_now": "no"},
            content_type="multipart/form-data",
            environ_base={"REMOTE_ADDR": address},
        )
        return int(response.status_code)

    assert add_from("192.0.2.10") == 303
    assert add_from("192.0.2.11") == 303
    assert add_from("192.0.2.12") == 429  # a third browser, same case
    # Another case still has its own allowance.
    other = receipt_of(_post(web, "192.0.2.2"))
    client = web.app.test_client()
    client.post("/case/sign-in", data={"receipt": other})
    response = client.post(
        "/case/add", data={"text": "x", "danger_now": "no"}, content_type="multipart/form-data"
    )
    assert response.status_code == 303


def test_follow_ups_count_against_the_global_budget(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, submit_rate="100 per hour", global_submit_rate="2 per hour")
    receipt = receipt_of(_post(web, "192.0.2.1"))  # uses one of the two
    client = web.app.test_client()
    client.post("/case/sign-in", data={"receipt": receipt})
    codes = [
        client.post(
            "/case/add", data={"text": "x", "danger_now": "no"}, content_type="multipart/form-data"
        ).status_code
        for _ in range(2)
    ]
    assert codes == [303, 429]


def test_the_staff_sign_in_limit_page_speaks_of_signing_in(tmp_path: Path) -> None:
    web = make_app(tmp_path, settings={"staff": {"signin_failure_rate_per_client": "1 per hour"}})
    wrong = {"name": "nobody", "passphrase": "not it", "code": "000000"}
    assert web.client.post("/staff/sign-in", data=wrong).status_code == 400
    limited = web.client.post("/staff/sign-in", data=wrong)
    assert limited.status_code == 429
    page = limited.get_data(as_text=True)
    assert "Too many tries to sign in." in page and "try again in about" in page
    assert "reports" not in page and "Nothing was saved" not in page


@pytest.mark.parametrize(
    ("path", "signing_in"),
    [("/case/sign-in", True), ("/staff/sign-in", True), ("/", False), ("/case/add", False)],
)
def test_the_wait_message_says_what_was_limited(
    tmp_path: Path, path: str, signing_in: bool
) -> None:
    from intake.views import _wait_message

    web = make_app(tmp_path)
    with web.app.test_request_context(path, method="POST"):
        message = _wait_message(600) or ""
    assert message.startswith("Too many tries to sign in.") is signing_in
    assert ("accepts only a few reports at a time" in message) is not signing_in
    assert message.endswith("in about 10 minutes.")
