"""Real-browser tests: Debian's Chromium, driven by Playwright, against the app on loopback.

What a person on a phone does, in each of the four languages, with JavaScript
DISABLED: choose the language with the switcher, fill the form (Kyrgyz and
Uzbek letters included), see the errors, send it with two files, read the
receipt, sign in with it, add a follow-up. Then the envelopes are opened as
staff would open them, and the text must be exactly what was typed. Every
request the pages make is recorded: none may leave the app's origin.

A second pass, in a JavaScript-enabled context used only for measuring, walks
the same pages and checks: no horizontal scrolling at 360 px, touch targets of
at least 44 x 44 px, a large receipt, and no serious or critical axe-core
violation (axe is injected from node_modules; ``bypass_csp`` lets it in).

Screenshots of every public page at 360 and 1280 px, per language, go to
``tests/artifacts/`` (git-ignored) with the axe results, for a reviewer.

Without ``/usr/bin/chromium`` (``apt-get install chromium``) or
``node_modules/axe-core`` (``npm ci``) those tests skip, except under CI,
where they fail: CI must run them. Never ``playwright install``: the
``playwright`` package is used only as a driver for Debian's browser.

The HTML checks (strict html5lib parsing, unique ids, references that
resolve, page weight under 100 KB) need no browser and always run.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import html5lib
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from intake.models import FollowUp, Report, db
from intake.review.cli import main as review_main

from webapp import WebApp, make_app, open_stored, receipt_of, valid_form

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"

LANGS = ("ky", "ru", "uz", "en")
#: The switcher's link text for each language: each in its own name.
SWITCHER = {"ky": "Кыргызча", "ru": "Русский", "uz": "Oʻzbekcha", "en": "English"}
PHONE = 360
DESKTOP = 1280
MIN_TARGET = 44  # px, each side
MAX_PAGE_BYTES = 100 * 1024  # HTML + CSS
#: As the machine doc says: without the background-networking flags Chromium
#: tries to reach Google at start and this machine's closed network refuses it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
#: Generous limits: these tests send eight reports and some wrong codes a run.
OPEN_LIMITS = {
    "submit_rate": "1000 per hour",
    "global_submit_rate": "1000 per hour",
    "signin_failure_rate": "1000 per hour",
    "global_signin_failure_rate": "1000 per hour",
}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass(frozen=True)
class Texts:
    """What a reporter types, in one language (no leading or trailing spaces: fields strip)."""

    person_name: str
    reporter_name: str
    what_happened: str
    followup: str


TEXTS = {
    "ky": Texts(
        person_name="Нурбек Өмүрзаков",
        reporter_name="Гүлнара Жаңыбаева",
        what_happened=(
            "Кечээ тергөөчү аны коркутту, адвокатты киргизишкен жок.\n"
            "Ал ооруп жатат, дарыгер келген жок. Жаңы кабар болсо жазам."
        ),
        followup="Бүгүн аны башка камерага которушту. Үй-бүлөсүн көрүүгө уруксат жок.",
    ),
    "ru": Texts(
        person_name="Азамат Үмөтов",
        reporter_name="Айгүл Ташиева",
        what_happened=(
            "В ИВС его избили, адвоката не пускают.\n"
            "Фамилия по-кыргызски: Өмүрбеков, с буквами Ң, Ү, Ө."
        ),
        followup="Сегодня его перевели в другую камеру. Свидания не дают.",
    ),
    "uz": Texts(
        person_name="Oʻktam Gʻofurov",
        reporter_name="Gʻulomjon Oʻrinboyev",
        what_happened=(
            "Tergovchi uni qoʻrqitdi, advokatni kiritishmadi.\n"
            "Oʻgʻli bilan gaplashishga ruxsat berilmadi. Ismi: Oʻktam."
        ),
        followup="Bugun uni boshqa kameraga oʻtkazishdi. Oilasi bilan uchrashuv yoʻq.",
    ),
    "en": Texts(
        person_name="Oʻktam Gʻofurov (Өмүр Жаңыбаев)",
        reporter_name="Aigul",
        what_happened=(
            "He was beaten in the temporary holding cell in Osh.\n"
            "His lawyer, Gʻulom Oʻrinov, saw the bruises; the name in Kyrgyz is Өмүр Жаңыбаев."
        ),
        followup="Today he was moved to another cell. Family visits are refused.",
    ),
}
#: Two attachments, names in Cyrillic and Uzbek Latin, contents byte-exact.
FILES = [
    ("кат-Өмүр.txt", "text/plain", "Ңүө oʻgʻ — письмо из СИЗО\n".encode()),
    ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
]


# ---------------------------------------------------------------------------
# The live server


@dataclass
class LiveServer:
    """The app of :func:`make_app`, served on 127.0.0.1 by Werkzeug in a thread."""

    web: WebApp
    server: BaseWSGIServer
    url: str


def _serve(web: WebApp) -> Iterator[LiveServer]:
    server = make_server("127.0.0.1", 0, web.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(web=web, server=server, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with CSRF on, as deployed, and rate limits wide enough for this module."""
    web = make_app(tmp_path_factory.mktemp("live"), csrf=True, settings={"limits": OPEN_LIMITS})
    yield from _serve(web)


@pytest.fixture(scope="module")
def live_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An app that allows one wrong receipt an hour: the second one gets the 429 page."""
    limits = {"signin_failure_rate": "1 per hour", "global_signin_failure_rate": "1 per hour"}
    web = make_app(tmp_path_factory.mktemp("limited"), csrf=True, settings={"limits": limits})
    yield from _serve(web)


# ---------------------------------------------------------------------------
# The browser


def _missing(what: str) -> None:
    """Skip, or under CI fail: CI installs everything these tests need."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must have it: see .ci/run and the Makefile)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the session (Playwright's temporary profile)."""
    if sync_playwright is None:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    playwright: Playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def axe_source() -> Path:
    if not AXE.exists():
        _missing(f"{AXE.relative_to(ROOT)} is missing (npm ci)")
    return AXE


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class Recorded:
    """A context and every request its pages made."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)


def _context(browser: Browser, *, javascript: bool) -> Iterator[Recorded]:
    context = browser.new_context(
        java_script_enabled=javascript,
        # Only the measuring context runs script, and axe needs it past the CSP.
        bypass_csp=javascript,
        viewport={"width": PHONE, "height": 800},
        device_scale_factor=1,
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    recorded = Recorded(context=context, page=context.new_page())
    context.on("request", lambda request: recorded.requests.append(request.url))
    try:
        yield recorded
    finally:
        context.close()


@pytest.fixture
def no_js(browser: Browser) -> Iterator[Recorded]:
    """A fresh context with JavaScript disabled, as the people who report use the site."""
    yield from _context(browser, javascript=False)


@pytest.fixture
def measuring(browser: Browser) -> Iterator[Recorded]:
    """A fresh JavaScript-enabled context, for measurement and axe only."""
    yield from _context(browser, javascript=True)


# ---------------------------------------------------------------------------
# The journey through every public page

OnPage = Callable[[Page, str], None]


@dataclass
class Journey:
    """What a walk through the pages left behind."""

    receipt: str = ""
    report_ids: list[str] = field(default_factory=list)
    followup_ids: list[str] = field(default_factory=list)


def _ids(web: WebApp, model: type[Report] | type[FollowUp]) -> set[str]:
    with web.app.app_context():
        return set(db.session.scalars(select(model.id)))


def _submit(page: Page, form: str, expected_status: int) -> None:
    """Press the form's submit button and wait for the page it leads to."""
    with page.expect_navigation() as navigation:
        page.locator(f"{form} button[type=submit]").first.click()
    response = navigation.value
    assert response is not None
    if response.status != expected_status:
        errors = page.locator(".error-message, .error-summary li, h1").all_inner_texts()
        pytest.fail(f"{page.url}: {response.status}, not {expected_status}: {errors}")


def _check(page: Page, name: str, value: str) -> None:
    page.locator(f"input[name='{name}'][value='{value}']").check()


def _files() -> list[Any]:
    return [{"name": n, "mimeType": m, "buffer": b} for n, m, b in FILES]


def walk(
    live: LiveServer,
    page: Page,
    lang: str,
    on_page: OnPage,
    *,
    tick_the_box: bool = True,
) -> Journey:
    """Every public page, as a reporter reaches them, calling ``on_page`` at each.

    ``tick_the_box=False`` (needs JavaScript to lift the checkbox's ``required``)
    also visits the page shown when the receipt was not confirmed.
    """
    texts = TEXTS[lang]
    journey = Journey()
    reports_before = _ids(live.web, Report)
    followups_before = _ids(live.web, FollowUp)

    page.goto(live.url + "/")
    with page.expect_navigation():
        page.locator(".language-switcher").get_by_role(
            "link", name=SWITCHER[lang], exact=True
        ).click()
    assert page.locator("html").get_attribute("lang") == lang
    assert page.url == live.url + "/", "the switcher comes back to the same page"
    on_page(page, "form")
    # Keyboard: the first stops are the skip link, then the way out.
    focused = []
    for _stop in range(2):
        page.keyboard.press("Tab")
        focused.append(page.locator(":focus").first.get_attribute("class"))
    assert focused == ["skip-link", "leave-quickly"], focused

    # Everything the browser itself requires, but not what only the server checks:
    # the place's name and a way to be reached.
    _check(page, "relationship", "relative")
    page.fill("#person_name", texts.person_name)
    _check(page, "facility_type", "sizo")
    page.fill("#what_happened", texts.what_happened)
    _check(page, "acts", "beaten")
    _check(page, "date_precision", "month")
    page.fill("#incident_date", "2024-05")
    _check(page, "danger_now", "yes")
    _check(page, "danger_kinds", "threat_to_life")
    page.locator("details.more > summary").click()
    page.fill("#reporter_name", texts.reporter_name)
    page.check("#consent_store")
    for name, value in (
        ("consent_share", "this_org"),
        ("detainee_consent", "impossible"),
        ("action_wanted", "nothing_until_we_talk"),
        ("use_reporter_name", "no"),
        ("publicity_risk", "dont_know"),
        ("officials_warned", "no"),
        ("preferred_language", lang if lang != "en" else "ru"),
    ):
        _check(page, name, value)
    _submit(page, "#report-form", 400)
    assert page.locator("html").get_attribute("lang") == lang, "errors keep the language"
    summary_links = page.locator(".error-summary a")
    assert summary_links.count() >= 2
    for link in summary_links.all():
        href = link.get_attribute("href")
        assert href and href.startswith("#")
        assert page.locator(href).count() == 1, f"the summary links to {href}"
    assert page.input_value("#what_happened") == texts.what_happened, "typed text comes back"
    on_page(page, "form-errors")

    page.fill("#facility_name", "СИЗО-1, Бишкек")
    page.check("#no_contact")
    page.set_input_files("#attachments", _files())
    _submit(page, "#report-form", 200)
    assert page.locator("html").get_attribute("lang") == lang
    groups = page.locator(".receipt .receipt-group").all_inner_texts()
    assert len(groups) == 5 and all(re.fullmatch(r"\d{4}", g) for g in groups), groups
    journey.receipt = "-".join(groups)
    on_page(page, "receipt")

    if tick_the_box:
        page.check("#written_down")
        _submit(page, "main form", 200)
    else:
        page.evaluate("document.getElementById('written_down').removeAttribute('required')")
        _submit(page, "main form", 400)
        on_page(page, "receipt-unconfirmed")
        with page.expect_navigation():
            page.locator("main a.button").click()
    on_page(page, "submitted")

    page.goto(live.url + "/case/")
    assert page.locator("html").get_attribute("lang") == lang, "the cookie keeps the language"
    on_page(page, "signin")
    page.fill("#receipt", "1111 2222 3333 4444 5555")
    _submit(page, "main form", 400)
    on_page(page, "signin-errors")
    page.fill("#receipt", journey.receipt)
    _submit(page, "main form", 200)
    assert page.locator("#text").count() == 1, "signed in: the follow-up form is there"
    on_page(page, "case")

    # This page answered a POST: its switcher must lead to a page that takes a GET
    # (the follow-up straight from the sign-in answer: test_a_follow_up_right_after_sign_in).
    with page.expect_navigation() as navigation:
        page.locator(f".language-switcher a[hreflang={lang}]").click()
    assert navigation.value is not None and navigation.value.status == 200
    assert page.url == live.url + "/case/"
    page.fill("#text", texts.followup)
    _check(page, "danger_now", "no")
    page.set_input_files("#attachments", _files()[:1])
    _submit(page, "main form[enctype]", 200)
    assert page.url.endswith("/case/?added=1")
    assert page.locator("[role=status]").count() == 1
    on_page(page, "case-added")

    response = page.goto(live.url + "/no-such-page")
    assert response is not None and response.status == 404
    assert page.locator("html").get_attribute("lang") == lang
    on_page(page, "error-404")

    journey.report_ids = sorted(_ids(live.web, Report) - reports_before)
    journey.followup_ids = sorted(_ids(live.web, FollowUp) - followups_before)
    return journey


def visit_429(live: LiveServer, page: Page, lang: str, on_page: OnPage) -> None:
    """Wrong receipts until the rate limit answers with its page."""
    page.goto(live.url + f"/case/?lang={lang}")
    for _attempt in range(3):
        page.fill("#receipt", "9999-9999-9999-9999-9999")
        with page.expect_navigation() as navigation:
            page.locator("main form button[type=submit]").click()
        response = navigation.value
        assert response is not None
        if response.status == 429:
            break
    else:
        pytest.fail("no 429 page after three wrong receipts")
    assert page.locator("html").get_attribute("lang") == lang
    on_page(page, "error-429")


# ---------------------------------------------------------------------------
# With JavaScript disabled: the whole journey, what was stored, screenshots


def _screenshots(artifacts: Path, lang: str) -> OnPage:
    def take(page: Page, name: str) -> None:
        for width in (PHONE, DESKTOP):
            page.set_viewport_size({"width": width, "height": 800})
            page.screenshot(path=str(artifacts / f"{lang}-{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": PHONE, "height": 800})

    return take


def _same_origin(live: LiveServer, urls: list[str]) -> list[str]:
    origin = urlsplit(live.url)
    return [u for u in urls if (urlsplit(u).scheme, urlsplit(u).netloc) != origin[:2]]


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_report_receipt_and_follow_up_without_javascript(
    live: LiveServer,
    live_limited: LiveServer,
    no_js: Recorded,
    artifacts: Path,
    lang: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shoot = _screenshots(artifacts, lang)
    journey = walk(live, no_js.page, lang, shoot)
    visit_429(live_limited, no_js.page, lang, shoot)

    elsewhere = _same_origin(live, [u for u in no_js.requests if live_limited.url not in u])
    assert not elsewhere, f"requests to another origin: {elsewhere}"
    assert len(no_js.requests) > 10

    texts = TEXTS[lang]
    assert len(journey.report_ids) == 1
    sinks: dict[str, io.BytesIO] = {}
    report = open_stored(live.web, journey.report_ids[0], sinks).report
    assert report["language"] == lang
    assert report["incident"]["what_happened"] == texts.what_happened
    assert report["person"]["name"] == texts.person_name
    assert report["reporter"]["name"] == texts.reporter_name
    assert report["detention"]["facility_name"] == "СИЗО-1, Бишкек"
    assert [a["name"] for a in report["attachments"]] == [n for n, _m, _b in FILES]
    assert [sinks[a["member"]].getvalue() for a in report["attachments"]] == [
        b for _n, _m, b in FILES
    ]

    assert len(journey.followup_ids) == 1
    sinks = {}
    followup = open_stored(live.web, journey.followup_ids[0], sinks).report
    assert followup["kind"] == "followup"
    assert followup["case_id"] == journey.report_ids[0]
    assert followup["language"] == lang
    assert followup["text"] == texts.followup
    assert followup["danger_now"]["answer"] == "no"
    assert [sinks[a["member"]].getvalue() for a in followup["attachments"]] == [FILES[0][2]]

    # As staff would: export a bundle, then read the case with intake-review.
    bundle = tmp_path / "bundle.tar"
    exported = live.web.app.test_cli_runner().invoke(args=["export", "--all", "--out", str(bundle)])
    assert exported.exit_code == 0, exported.output
    capsys.readouterr()
    case_id = journey.report_ids[0]
    shown = review_main(["show", "-i", str(live.web.identity_file), str(bundle), case_id])
    out = capsys.readouterr().out
    assert shown == 0, out
    for typed in (texts.what_happened, texts.person_name, texts.followup, "СИЗО-1, Бишкек"):
        for line in typed.splitlines():  # a long answer is printed indented, line by line
            assert line in out, line


@pytest.mark.slow
def test_a_follow_up_right_after_sign_in(live: LiveServer, no_js: Recorded) -> None:
    """The case page that sign-in answers carries a CSRF token the new session accepts."""
    page = no_js.page
    page.goto(live.url + "/?lang=en")
    page.fill("#person_name", "Aigul")
    for name, value in (
        ("relationship", "relative"),
        ("facility_type", "unknown"),
        ("date_precision", "unknown"),
        ("danger_now", "no"),
        ("consent_share", "this_org"),
        ("detainee_consent", "impossible"),
        ("action_wanted", "nothing_until_we_talk"),
        ("use_reporter_name", "no"),
        ("publicity_risk", "dont_know"),
        ("officials_warned", "no"),
        ("preferred_language", "ru"),
    ):
        _check(page, name, value)
    page.fill("#what_happened", "A short report.")
    page.check("#consent_store")
    page.check("#no_contact")
    _submit(page, "#report-form", 200)
    receipt = "-".join(page.locator(".receipt .receipt-group").all_inner_texts())
    page.goto(live.url + "/case/")
    page.fill("#receipt", receipt)
    _submit(page, "main form", 200)
    page.fill("#text", "Something new.")
    _check(page, "danger_now", "no")
    _submit(page, "main form[enctype]", 200)


#: What a keyboard user answers: text typed, the radio chosen in each group, boxes ticked.
KEYBOARD_TEXT = {"person_name": "Aigul", "what_happened": "Typed with the keyboard alone."}
KEYBOARD_RADIOS = {
    "relationship": "relative",
    "facility_type": "unknown",
    "date_precision": "unknown",
    "danger_now": "no",
    "consent_share": "this_org",
    "detainee_consent": "impossible",
    "action_wanted": "nothing_until_we_talk",
    "use_reporter_name": "no",
    "publicity_risk": "dont_know",
    "officials_warned": "no",
    "preferred_language": "ru",
}
KEYBOARD_TICKS = {"consent_store", "no_contact", "written_down"}


@dataclass(frozen=True)
class Focused:
    """The element that has the keyboard focus."""

    tag: str
    type: str
    name: str
    id: str
    value: str


def _focused(page: Page) -> Focused:
    for tag in ("input", "textarea", "select", "button", "a"):
        element = page.locator(f"{tag}:focus")
        if element.count():
            return Focused(
                tag,
                element.get_attribute("type") or "",
                element.get_attribute("name") or "",
                element.get_attribute("id") or "",
                element.get_attribute("value") or "",
            )
    return Focused("", "", "", "", "")


def _answer_by_keyboard(page: Page, form: str, answered: set[str]) -> list[Focused]:
    """Tab through ``form``'s page answering with keys only, until its submit button.

    Returns every element that took the focus from Tab, in order.
    """
    visited: list[Focused] = []
    for _ in range(300):
        page.keyboard.press("Tab")
        here = _focused(page)
        visited.append(here)
        if page.locator(f"{form} button[type=submit]:focus").count():
            return visited
        if here.name in answered:
            continue
        if here.name in KEYBOARD_TEXT and here.tag in ("input", "textarea"):
            page.keyboard.type(KEYBOARD_TEXT[here.name])
        elif here.type == "radio" and here.name in KEYBOARD_RADIOS:
            # Tab lands on the group's first radio; arrows move along it and choose.
            wanted = KEYBOARD_RADIOS[here.name]
            for _step in range(20):
                if _focused(page).value == wanted:
                    break
                page.keyboard.press("ArrowDown")
            page.keyboard.press("Space")  # choose it (already chosen after an arrow)
            chosen = page.locator(f"{form} input[name='{here.name}']:checked")
            assert chosen.get_attribute("value") == wanted, here.name
        elif here.type == "checkbox" and here.name in KEYBOARD_TICKS:
            page.keyboard.press("Space")
        else:
            continue
        answered.add(here.name)
    pytest.fail(f"Tab never reached the submit button of {form}: {visited[-10:]}")


@pytest.mark.slow
def test_the_form_works_with_the_keyboard_alone(live: LiveServer, no_js: Recorded) -> None:
    page = no_js.page
    before = _ids(live.web, Report)
    page.goto(live.url + "/?lang=en")
    answered: set[str] = set()
    visited = _answer_by_keyboard(page, "#report-form", answered)
    assert answered == set(KEYBOARD_TEXT) | set(KEYBOARD_RADIOS) | {"consent_store", "no_contact"}

    # The honeypot is never reached, and the focus moves down the page: the
    # controls Tab reached come in the order they stand in the document.
    assert "website" not in {f.name for f in visited}
    in_page = [
        element.get_attribute("id") or ""
        for element in page.locator("#report-form input, #report-form textarea").all()
    ]
    reached = [f.id for f in visited if f.id in in_page]
    positions = [in_page.index(element_id) for element_id in dict.fromkeys(reached)]
    assert positions == sorted(positions), reached
    # Every group of visible controls gets the focus (radios: one per group).
    visible = {
        element.get_attribute("name") or ""
        for element in page.locator("#report-form input, #report-form textarea").all()
        if element.is_visible()
    }
    assert visible - {f.name for f in visited} == {"website"}  # off-screen, out of Tab order

    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    assert navigation.value is not None and navigation.value.status == 200
    _answer_by_keyboard(page, "main form", answered)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/submitted")

    [report_id] = _ids(live.web, Report) - before
    report = open_stored(live.web, report_id, {}).report
    assert report["incident"]["what_happened"] == KEYBOARD_TEXT["what_happened"]
    assert report["person"]["name"] == KEYBOARD_TEXT["person_name"]


# ---------------------------------------------------------------------------
# JavaScript enabled, for measuring only: layout at 360 px, touch targets, axe

#: Each element a finger must hit, with its box; a radio or checkbox counts
#: together with its label (tapping either works).
_TARGETS_JS = """
() => {
  const visible = el => {
    if (el.closest('[aria-hidden="true"], .visually-hidden, .skip-link, .honeypot')) return false;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const union = rects => {
    const left = Math.min(...rects.map(r => r.left)), top = Math.min(...rects.map(r => r.top));
    const right = Math.max(...rects.map(r => r.right));
    const bottom = Math.max(...rects.map(r => r.bottom));
    return {width: right - left, height: bottom - top};
  };
  const name = el => (el.id ? '#' + el.id : el.tagName.toLowerCase() +
      (el.className ? '.' + String(el.className).split(' ').join('.') : '')) +
      ' "' + (el.textContent || el.value || '').trim().slice(0, 40) + '"';
  const out = [];
  const seen = new Set();
  for (const el of document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary, label')) {
    if (!visible(el) || seen.has(el)) continue;
    let parts = [el];
    const input = el.tagName === 'LABEL' ? el.control : el;
    if (input && (input.type === 'radio' || input.type === 'checkbox')) {
      parts = [input, ...input.labels].filter(visible);
      parts.forEach(p => seen.add(p));
    } else if (el.tagName === 'LABEL') {
      continue;  // the label of a text field: the field itself is the target
    }
    const box = union(parts.map(p => p.getBoundingClientRect()));
    out.push({name: name(parts[0]), width: box.width, height: box.height});
  }
  return out;
}
"""


@dataclass
class Findings:
    """Problems over all pages of one language, reported together."""

    problems: list[str] = field(default_factory=list)
    axe: dict[str, Any] = field(default_factory=dict)
    advice: dict[str, Any] = field(default_factory=dict)


def _measure(axe: Path, findings: Findings) -> OnPage:
    def measure(page: Page, name: str) -> None:
        page.set_viewport_size({"width": PHONE, "height": 800})
        duplicates = page.evaluate(
            "() => { const ids = [...document.querySelectorAll('[id]')].map(e => e.id);"
            " return ids.filter((id, i) => ids.indexOf(id) !== i); }"
        )
        if duplicates:
            findings.problems.append(f"{name}: duplicate ids {duplicates}")
        leave = page.locator("a.leave-quickly")
        if leave.count() != 1 or leave.get_attribute("rel") != "noreferrer":
            findings.problems.append(f"{name}: no 'leave quickly' link with rel=noreferrer")
        width = page.evaluate("document.scrollingElement.scrollWidth")
        if width > PHONE:
            findings.problems.append(f"{name}: scrolls sideways at {PHONE} px ({width} px wide)")
        for target in page.evaluate(_TARGETS_JS):
            if target["width"] < MIN_TARGET - 0.5 or target["height"] < MIN_TARGET - 0.5:
                findings.problems.append(
                    f"{name}: touch target {target['name']} is "
                    f"{target['width']:.0f}x{target['height']:.0f} px"
                )
        if name == "receipt":
            size = page.evaluate(
                "parseFloat(getComputedStyle(document.querySelector('.receipt')).fontSize)"
            )
            if size < 28:
                findings.problems.append(f"receipt: code text is {size} px, not large")

        page.add_script_tag(path=str(axe))
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
        )
        assert len(result["passes"]) >= 5, f"{name}: axe did not run its rules"
        # Best practices (landmarks, headings): recorded for the reviewer, not asserted.
        advice = page.evaluate(
            "() => axe.run(document, {runOnly: {type: 'tag', values: ['best-practice']}})"
        )
        findings.advice[name] = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in advice["violations"]
        ]
        violations = [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:10],
            }
            for v in result["violations"]
        ]
        findings.axe[name] = violations
        for v in violations:
            if v["impact"] in ("serious", "critical"):
                findings.problems.append(
                    f"{name}: axe {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
                )

    return measure


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_every_page_fits_a_phone_and_passes_axe(
    live: LiveServer,
    live_limited: LiveServer,
    measuring: Recorded,
    axe_source: Path,
    artifacts: Path,
    lang: str,
) -> None:
    findings = Findings()
    measure = _measure(axe_source, findings)
    walk(live, measuring.page, lang, measure, tick_the_box=False)
    visit_429(live_limited, measuring.page, lang, measure)
    (artifacts / f"axe-{lang}.json").write_text(
        json.dumps(
            {"violations": findings.axe, "best_practice": findings.advice},
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    assert not findings.problems, f"{lang}:\n" + "\n".join(findings.problems)


# ---------------------------------------------------------------------------
# HTML: strict parsing, unique ids, references that resolve, weight (no browser)


def _public_pages(
    client: FlaskClient, lang: str, paths: dict[str, str]
) -> dict[str, tuple[int, str]]:
    """Every public page in ``lang``: name -> (status, HTML); ``paths`` gets each address."""
    client.set_cookie("lang", lang)
    pages: dict[str, tuple[int, str]] = {}

    def keep(name: str, response: Any) -> Any:
        pages[name] = (response.status_code, response.get_data(as_text=True))
        paths[name] = response.request.path
        return response

    keep("form", client.get("/"))
    keep("form-errors", client.post("/", data=valid_form(facility_name="", no_contact="")))
    receipt = receipt_of(keep("receipt", client.post("/", data=valid_form())))
    keep("receipt-unconfirmed", client.post("/submitted", data={}))
    keep("submitted", client.get("/submitted"))
    keep("signin", client.get("/case/"))
    keep("signin-errors", client.post("/case/sign-in", data={"receipt": "1"}))
    keep("case", client.post("/case/sign-in", data={"receipt": receipt}))
    keep("case-errors", client.post("/case/add", data={"text": ""}))
    keep("case-again", client.get("/case/?added=1"))
    keep("error-404", client.get("/no-such-page"))
    keep("error-405", client.put("/"))
    return pages


class _Ids:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.references: list[tuple[str, str]] = []
        #: Elements that jump the focus order (it must follow the page).
        self.positive_tabindex: list[str] = []


def _collect(document: Any, found: _Ids) -> None:
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.rsplit("}", 1)[-1]
        if element.get("id") is not None:
            found.ids[element.get("id")] += 1
        if tag == "label" and element.get("for"):
            found.references.append(("label for", element.get("for")))
        for attribute in ("aria-describedby", "aria-labelledby", "aria-controls"):
            for ref in (element.get(attribute) or "").split():
                found.references.append((attribute, ref))
        if int(element.get("tabindex") or 0) > 0:
            found.positive_tabindex.append(tag)
        href = element.get("href") or ""
        if tag == "a" and href.startswith("#") and len(href) > 1:
            found.references.append(("href", href[1:]))


@pytest.mark.parametrize("lang", LANGS)
def test_public_pages_are_valid_html_with_unique_ids_and_are_light(
    tmp_path: Path, lang: str
) -> None:
    web = make_app(tmp_path, settings={"limits": OPEN_LIMITS})
    paths: dict[str, str] = {}
    pages = _public_pages(web.client, lang, paths)
    css_bytes: dict[str, int] = {}
    weights: dict[str, int] = {}
    problems = []
    for name, (status, html) in pages.items():
        assert status < 500, f"{name}: {status}"
        parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
        try:
            document = parser.parse(html)
        except html5lib.html5parser.ParseError as error:
            line = html.splitlines()[max(0, parser.errors[-1][0][0] - 1)] if parser.errors else ""
            problems.append(f"{name}: not valid HTML: {error} near {line.strip()[:120]!r}")
            continue
        found = _Ids()
        _collect(document, found)
        problems += [f"{name}: duplicate id {i!r}" for i, n in found.ids.items() if n > 1]
        problems += [f"{name}: tabindex > 0 on <{t}>" for t in found.positive_tabindex]
        problems += [
            f"{name}: {attr} points at missing id {ref!r}"
            for attr, ref in found.references
            if ref not in found.ids
        ]
        assert document.find(".//main") is not None, f"{name}: no <main>"
        assert document.get("lang") == lang, f"{name}: <html lang> is not {lang}"
        weight = len(html.encode())
        for link in document.iter("link"):
            if link.get("rel") == "stylesheet":
                href = link.get("href")
                if href not in css_bytes:
                    css_bytes[href] = len(web.client.get(href).get_data())
                weight += css_bytes[href]
        for link in document.iterfind(".//nav[@class='language-switcher']//a"):
            target = urljoin(paths[name], link.get("href"))
            if link.get("hreflang") == lang:
                answer = web.client.get(target, follow_redirects=True).status_code
                # A GET error page may answer the same error in the new language.
                if answer >= 400 and not (answer == status and status in (404,)):
                    problems.append(f"{name}: the switcher's {target} answers {answer}")
        weights[name] = weight
        if weight >= MAX_PAGE_BYTES:
            problems.append(f"{name}: {weight} bytes of HTML and CSS (limit {MAX_PAGE_BYTES})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"page-weights-{lang}.json").write_text(json.dumps(weights, indent=1))
    assert not problems, f"{lang}:\n" + "\n".join(problems)
