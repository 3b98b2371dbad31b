"""Languages: complete catalogs, the switcher, pages in the chosen language, name matching.

Catalog tests read the .po files the translators edit and the .mo files the app
reads; extraction runs in-process with babel.cfg, so a new user-visible string
without a translation fails here.
"""

from __future__ import annotations

import gettext
import io
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from intake import i18n
from intake.forms import MESSAGES
from intake.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    name_contains,
    name_key,
    names_match,
    normalise_name,
    supported,
    translator,
    transliterate,
)
from intake.models import Report, db
from intake.schema import FACILITY_TYPES, label_for

from webapp import WebApp, make_app, open_stored, valid_form

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "intake" / "translations"
TRANSLATED = ("ky", "ru", "uz")  # en is the source language: its msgstr may stay empty
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
}
PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]|%[sdifr]|\{\w*\}")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _catalog(lang: str) -> Catalog:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as stream:
        return read_po(stream, locale=lang)


def _messages(lang: str) -> list[Message]:
    return [m for m in _catalog(lang) if m.id]


def _strings(message: Message) -> list[str]:
    if isinstance(message.string, tuple | list):
        return [s or "" for s in message.string]
    return [message.string or ""]


def _all_translations(lang: str) -> list[str]:
    return [s for m in _messages(lang) for s in _strings(m)]


def _extracted() -> set[str]:
    """Every msgid the sources use, found the way `make translations` finds them."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


# ---------------------------------------------------------------------------
# Catalogs


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_is_translated_and_not_fuzzy(lang: str) -> None:
    catalog = _catalog(lang)
    assert not catalog.fuzzy, f"{lang}: the catalog header is marked fuzzy"
    problems = []
    for message in _messages(lang):
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if not all(s.strip() for s in _strings(message)):
            problems.append(f"untranslated: {message.id!r}")
    assert not problems, f"{lang}:\n" + "\n".join(problems)
    assert len(_messages(lang)) == len(_messages("en"))


def test_english_catalog_is_the_source() -> None:
    # en msgstr stay empty (the msgid is the text); a fuzzy guess there would show wrong English.
    for message in _messages("en"):
        assert not any(_strings(message)), message.id
    t = translator("en")
    for message in _messages("en"):
        if isinstance(message.id, tuple):
            assert t.ngettext(message.id[0], message.id[1], 1) == message.id[0]
            assert t.ngettext(message.id[0], message.id[1], 5) == message.id[1]
        else:
            assert t.gettext(message.id) == message.id


@pytest.mark.parametrize("lang", TRANSLATED)
def test_placeholders_match(lang: str) -> None:
    problems = []
    for message in _messages(lang):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = Counter(PLACEHOLDER.findall(ids[-1]))
        assert all(Counter(PLACEHOLDER.findall(i)) == wanted for i in ids), ids
        for string in _strings(message):
            if Counter(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"{ids[0]!r} → {string!r}")
    assert not problems, f"{lang}:\n" + "\n".join(problems)


def test_every_used_string_is_in_every_catalog() -> None:
    used = _extracted()
    # Sanity: the extraction sees templates, Python, and the schema vocabularies.
    assert "Send securely" in used  # submit.html
    assert MESSAGES["person_name"] in used  # forms.py, N_
    assert "Page not found" in used  # views, lazy_gettext
    assert label_for(FACILITY_TYPES, "sizo") in used  # schema.py, extract_schema
    for lang in (*TRANSLATED, "en"):
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in _messages(lang)}
        missing = sorted(used - ids)
        assert not missing, f"{lang} lacks (run `make translations`, then translate): {missing}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalog_is_up_to_date(lang: str) -> None:
    """The committed .mo says what the .po says (compiled in memory and compared)."""
    buffer = io.BytesIO()
    write_mo(buffer, _catalog(lang))
    buffer.seek(0)
    expected = gettext.GNUTranslations(buffer)._catalog  # type: ignore[attr-defined]
    actual = translator(lang)._catalog  # type: ignore[attr-defined]
    expected.pop("", None)
    actual.pop("", None)
    assert actual == expected, f"{lang}: messages.mo is stale, run `make translations`"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_markup_in_translations(lang: str) -> None:
    # Templates trust translated text (Flask-Babel marks it safe): keep HTML out.
    for string in _all_translations(lang):
        assert not set(string) & set("<>&"), string


def _mixed_script_words(text: str) -> list[str]:
    words = re.findall(r"[\w\u02bb\u02bc]+", text)
    return [w for w in words if CYRILLIC.search(w) and LATIN.search(w)]


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_word_mixes_cyrillic_and_latin_letters(lang: str) -> None:
    # Catches Latin look-alikes (a, e, o, p, c, x, y...) typed inside Cyrillic words.
    mixed = [w for s in _all_translations(lang) for w in _mixed_script_words(s)]
    assert not mixed, mixed


def test_kyrgyz_uses_its_own_letters() -> None:
    text = " ".join(_all_translations("ky"))
    for letter in "ңүө":
        assert text.count(letter) >= 5, letter
    assert unicodedata.is_normalized("NFC", text)


def test_uzbek_uses_the_okina_not_apostrophes() -> None:
    text = " ".join(_all_translations("uz"))
    assert not re.search(r"o'|g'|o’|g’|o‘|g‘", text, re.IGNORECASE)
    assert not set(text) & set("'’‘`"), "use ʻ (U+02BB) for oʻ gʻ and ʼ (U+02BC) for the tutuq"
    assert text.count("oʻ") >= 20 and text.count("gʻ") >= 5


def test_russian_and_kyrgyz_facility_terms() -> None:
    for lang in ("ru", "ky"):
        t = translator(lang)
        assert "СИЗО" in t.gettext("Pre-trial detention (SIZO)")
        assert "ИВС" in t.gettext("Temporary police detention (IVS)")
        assert "ГКНБ" in t.gettext("Security service (GKNB) detention")
    sizo = translator("uz").gettext("Pre-trial detention (SIZO)")
    assert sizo == "Tergov hibsxonasi (SIZO)"


# ---------------------------------------------------------------------------
# intake.i18n without Flask


def test_translator_reads_the_compiled_catalogs() -> None:
    assert translator("ru").gettext("Yes") == "Да"
    assert translator("ky").gettext("No") == "Жок"
    assert translator("uz").gettext("No") == "Yoʻq"
    assert translator("en").gettext("Yes") == "Yes"  # falls back to the msgid
    assert isinstance(translator("en"), gettext.GNUTranslations)
    wait = "Please try again in about %(num)d minutes."
    plural = next(
        m.id for m in _messages("ru") if isinstance(m.id, tuple) and m.id[1].endswith(wait)
    )
    forms = [translator("ru").ngettext(plural[0], plural[1], n) % {"num": n} for n in (1, 3, 5)]
    assert forms[0].endswith("1 минуту.") and forms[1].endswith("3 минуты.")
    assert forms[2].endswith("5 минут.")
    with pytest.raises(ValueError, match="unsupported language"):
        translator("fr")


def test_supported_language_codes() -> None:
    assert supported("ru-RU") == "ru"
    assert supported("uz_Latn") == "uz"
    assert supported("KY") == "ky"
    assert supported("fr") == supported(None) == supported("") == "en"
    assert i18n.DEFAULT == "en" and set(LANGUAGE_NAMES) == set(LANGUAGES)


def test_i18n_module_does_not_import_flask() -> None:
    source = (ROOT / "intake" / "i18n.py").read_text()
    assert not re.search(r"^\s*(from|import) (flask|babel|jinja2)", source, re.MULTILINE)


# ---------------------------------------------------------------------------
# Names


def test_normalise_name_kyrgyz_substitute_letters() -> None:
    assert normalise_name("Айгүл") == normalise_name("Айгул") == "айгул"
    assert normalise_name("ӨМҮРОВА  Айгүл") == normalise_name("Омурова айгул")
    assert normalise_name("Жаңыл") == normalise_name("ЖАНЫЛ")
    assert normalise_name("Ң Ү Ө ң ү ө") == "н у о н у о"


@pytest.mark.parametrize("mark", ["ʻ", "‘", "’", "'", "`", "ʼ"])
def test_normalise_name_uzbek_okina_variants(mark: str) -> None:
    assert normalise_name(f"G{mark}ulom O{mark}rinboyev") == "gʻulom oʻrinboyev"


def test_normalise_name_spaces_punctuation_and_compatibility_forms() -> None:
    assert normalise_name("  Tashieva,\tAigul!  ") == "tashieva aigul"
    assert normalise_name("Abdul-Aziz (Aziz)") == "abdul aziz aziz"
    assert normalise_name("Ａｉｇｕｌ") == "aigul"  # full-width letters, NFKC
    assert normalise_name("Айгу\u0308л") == normalise_name("Айгӱл")  # combining mark, NFC
    assert normalise_name("") == ""


def test_transliterate_cyrillic_to_latin() -> None:
    assert transliterate("Айгүл Ташиева") == "Aygul Tashieva"
    assert transliterate("Жапаров") == "Zhaparov"
    assert transliterate("ЖАПАРОВ") == "ZHAPAROV"
    assert transliterate("Ўринбоев Ғулом") == "Oʻrinboev Gʻulom"
    assert transliterate("Қодиров, СИЗО-1") == "Qodirov, SIZO-1"
    assert transliterate("Aigul 2024") == "Aigul 2024"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Aigul Tashieva", "Айгүл Ташиева"),
        ("Айгул Ташиева", "Айгүл Ташиева"),
        ("Aygul Tashiyeva", "Айгүл Ташиева"),
        ("Japarov", "Жапаров"),
        ("Dzhaparov", "Жапаров"),
        ("Omurbekov", "Өмүрбеков"),
        ("Ömürbekov", "Өмүрбеков"),
        ("Janyl", "Жаңыл"),
        ("O'rinboyev", "Oʻrinboyev"),
        ("Oʻrinboev", "Ўринбоев"),
        ("G‘ulom", "Ғулом"),
        ("Gulom", "Ғулом"),
        ("Xolmatov", "Холматов"),
        ("Kodirov", "Қодиров"),
        ("Aliyev", "Алиев"),
    ],
)
def test_name_key_matches_spellings(typed: str, stored: str) -> None:
    assert name_key(typed) == name_key(stored)


def test_names_match_and_search() -> None:
    assert names_match("Ташиева Айгүл", "Aigul Tashieva")  # word order
    assert names_match("Abdul-Aziz", "Abdulaziz")
    assert not names_match("Айгүл Ташиева", "Айдана Ташиева")
    assert not names_match("", "")
    assert name_contains("Айгүл Ташиева", "tash")
    assert name_contains("Айгүл Ташиева", "aig tash")
    assert not name_contains("Айгүл Ташиева", "ivanov")
    assert not name_contains("Айгүл Ташиева", "  ")


# ---------------------------------------------------------------------------
# The web app


@pytest.fixture
def web(tmp_path: Path) -> WebApp:
    return make_app(tmp_path)


def _page(web: WebApp, path: str = "/", **kwargs: Any) -> tuple[int, str]:
    response = web.client.get(path, **kwargs)
    return response.status_code, response.get_data(as_text=True)


def _t(lang: str, msgid: str) -> str:
    from markupsafe import escape

    return str(escape(translator(lang).gettext(msgid)))


def test_switching_language_sets_a_cookie_and_redirects_back(web: WebApp) -> None:
    response = web.client.get("/?lang=ky")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=ky;")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http in tests
    assert "Expires" not in cookie and "Max-Age" not in cookie  # gone when the browser closes
    status, page = _page(web)  # the test client keeps the cookie
    assert status == 200
    assert '<html lang="ky">' in page
    assert _t("ky", "Send securely") in page
    assert _t("ky", "Pre-trial detention (SIZO)") in page  # a schema vocabulary label
    assert _t("ky", "Report what happened to a detained person") in page
    assert 'hreflang="ky" aria-current="true">Кыргызча</a>' in page


def test_the_switcher_lists_each_language_in_its_own_name(web: WebApp) -> None:
    _status, page = _page(web)
    for code, name in LANGUAGE_NAMES.items():
        assert f'<a href="?lang={code}" lang="{code}" hreflang="{code}"' in page
        assert f">{name}</a>" in page
    assert page.count('aria-current="true"') == 1
    assert '<html lang="en">' in page


def test_switching_keeps_other_query_values_and_stays_on_this_site(web: WebApp) -> None:
    response = web.client.get("/submitted?x=1&lang=ru")
    assert response.headers["Location"] == "/submitted?x=1"
    response = web.client.get("//evil.example/?lang=ru")
    assert not response.headers["Location"].startswith("//")
    response = web.client.get("/?lang=fr")
    assert response.status_code == 303 and "Set-Cookie" not in response.headers


def test_cookie_is_secure_on_https(web: WebApp) -> None:
    response = web.client.get("/?lang=uz", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("ky-KG,ru-RU;q=0.9", "ky"),  # not the exact "ru" over "ky-KG"
        ("uz-Latn-UZ,uz;q=0.9", "uz"),
        ("fr-FR,de;q=0.5", "en"),
        ("ru;q=0", "en"),
    ],
)
def test_accept_language_picks_the_default(web: WebApp, header: str, lang: str) -> None:
    _status, page = _page(web, headers={"Accept-Language": header})
    assert f'<html lang="{lang}">' in page


def test_cookie_wins_over_accept_language_and_bad_cookies_are_ignored(web: WebApp) -> None:
    web.client.set_cookie("lang", "uz")
    _status, page = _page(web, headers={"Accept-Language": "ru"})
    assert '<html lang="uz">' in page and _t("uz", "Send securely") in page
    web.client.set_cookie("lang", "../../etc")
    _status, page = _page(web, headers={"Accept-Language": "ru"})
    assert '<html lang="ru">' in page


def test_validation_errors_come_back_in_the_same_language(web: WebApp) -> None:
    web.client.set_cookie("lang", "ky")
    data = valid_form(person_name="", what_happened="Typed with care: Айгүл.")
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert '<html lang="ky">' in page
    assert _t("ky", MESSAGES["person_name"]) in page
    assert _t("ky", "Please check these answers") in page
    assert "Typed with care: Айгүл." in page
    assert MESSAGES["person_name"].replace("'", "&#39;") not in page


def test_validation_errors_in_russian_from_accept_language(web: WebApp) -> None:
    data = valid_form(facility_name="", person_name="x" * 500)
    response = web.client.post(
        "/", data=data, content_type="multipart/form-data", headers={"Accept-Language": "ru"}
    )
    page = response.get_data(as_text=True)
    assert '<html lang="ru">' in page
    assert _t("ru", MESSAGES["facility_name"]) in page
    assert "не больше 200 знаков" in page  # %(max)d filled in after translation


def test_error_pages_are_translated(web: WebApp) -> None:
    web.client.set_cookie("lang", "ru")
    status, page = _page(web, "/no-such-page")
    assert status == 404
    assert _t("ru", "Page not found") in page and "Ошибка 404" in page
    assert '<html lang="ru">' in page


def test_wait_message_uses_plural_forms(web: WebApp) -> None:
    from intake.views import _wait_message

    with web.app.test_request_context("/", headers={"Cookie": "lang=ru"}):
        assert (_wait_message(60) or "").endswith("через 1 минуту.")
        assert (_wait_message(180) or "").endswith("через 3 минуты.")
        assert (_wait_message(3600) or "").endswith("через 60 минут.")
    with web.app.test_request_context("/"):
        assert (_wait_message(60) or "").endswith("in about 1 minute.")
        assert (_wait_message(120) or "").endswith("in about 2 minutes.")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_report_records_the_language_it_was_written_in(web: WebApp, lang: str) -> None:
    web.client.set_cookie("lang", lang)
    response = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    assert response.status_code in (200, 303)
    with web.app.app_context():
        rows = list(db.session.scalars(select(Report)))
    assert len(rows) == 1
    opened = open_stored(web, rows[0].id, {})
    assert opened.report["language"] == lang


@pytest.mark.parametrize(
    "path",
    [
        "/%09/evil.example?lang=ru",  # a tab the browser drops: //evil.example
        "/%0A/evil.example?lang=en",
        "//evil.example?lang=ru",
        "/\\evil.example?lang=ru",
        "/%5C%5Cevil.example?lang=ky",
        "/no-such-page/../..//evil.example?lang=uz",
    ],
)
def test_the_language_switch_never_leaves_the_site(tmp_path: Path, path: str) -> None:
    web = make_app(tmp_path)
    response = web.client.get(path)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert urlsplit(location).netloc == ""
    assert location == "/"  # an unknown page: back to the form
