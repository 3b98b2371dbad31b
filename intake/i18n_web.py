"""The web side of the languages: Flask-Babel, the language switcher, gettext helpers.

Which language a page is in, first match wins:

1. ``?lang=ky`` on any GET: the answer is a redirect to the same address
   without ``lang``, setting the cookie ``lang`` (HttpOnly, SameSite=Strict,
   Secure on https). The cookie has no expiry date, so it goes when the
   browser is closed: a remembered language on a shared or seized phone would
   tell that this site was used, and in which language.
2. the ``lang`` cookie;
3. the best match of the browser's Accept-Language;
4. English.

The form is posted to the page's own address, so a re-render after
validation errors is in the same language, and so is every other page.

:func:`gettext`, :func:`ngettext`, :func:`lazy_gettext` and :func:`translate`
work in any Flask app: where Flask-Babel is not set up (a test's bare app, or
no app at all) they give the English text, formatted the same way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask, current_app, has_app_context, has_request_context, request
from flask import redirect as _redirect
from flask_babel import Babel  # type: ignore[import-untyped]
from flask_babel import get_locale as _get_locale
from flask_babel import gettext as _babel_gettext
from flask_babel import ngettext as _babel_ngettext
from flask_babel.speaklater import LazyString  # type: ignore[import-untyped]
from werkzeug.wrappers.response import Response

from intake.i18n import DEFAULT, LANGUAGES, TRANSLATIONS_DIR, supported

__all__ = [
    "COOKIE",
    "current_language",
    "gettext",
    "init_i18n",
    "lazy_gettext",
    "lazy_translate",
    "ngettext",
    "select_locale",
    "translate",
]

COOKIE = "lang"
PARAMETER = "lang"


def _babel_ready() -> bool:
    return has_app_context() and "babel" in current_app.extensions


def select_locale() -> str:
    """The language of the current request (see the module docstring)."""
    if not has_request_context():
        return DEFAULT
    asked = request.args.get(PARAMETER)
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    # Not Werkzeug's best_match: it prefers an exact "ru" at q=0.8 over
    # "ky-KG" at q=1, and a Kyrgyz phone sends "ky-KG,ru-RU;q=0.9".
    for value, quality in request.accept_languages:
        primary = value.replace("_", "-").split("-", 1)[0].lower()
        if quality > 0 and primary in LANGUAGES:
            return primary
    return DEFAULT


def current_language() -> str:
    """The code of the language this request is answered in (``"en"`` without Babel)."""
    if not _babel_ready():
        return DEFAULT
    return supported(str(_get_locale() or DEFAULT))


def gettext(msgid: str, **variables: Any) -> str:
    """``msgid`` in the current language, ``%``-formatted with ``variables`` if any."""
    if _babel_ready():
        return str(_babel_gettext(msgid, **variables))
    return msgid % variables if variables else msgid


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """The plural form for ``num`` in the current language; ``%(num)d`` is available."""
    if _babel_ready():
        return str(_babel_ngettext(singular, plural, num, **variables))
    variables.setdefault("num", num)
    return (singular if num == 1 else plural) % variables


def translate(msgid: str) -> str:
    """:func:`gettext` for a msgid held in a variable (marked elsewhere with ``N_``)."""
    return gettext(msgid)


def lazy_gettext(msgid: str, **variables: Any) -> LazyString:
    """A string that is translated each time it is used (for module-level text)."""
    return LazyString(gettext, msgid, **variables)


def lazy_translate(msgid: str) -> LazyString:
    """:func:`lazy_gettext` for a msgid held in a variable (not picked up by extraction)."""
    return LazyString(gettext, msgid)


def _switch_language() -> Response | None:
    """Answer ``?lang=xx``: remember the language, then go back to the same page without it."""
    if PARAMETER not in request.args or request.method not in ("GET", "HEAD"):
        return None
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != PARAMETER]
    # Only a page of this site: an unknown path goes to the form, and the path
    # is percent-encoded, so no tab, backslash or control character can turn
    # it into "//other.host" once the browser tidies it up.
    if request.url_rule is None:
        path = request.script_root + "/"
    else:
        path = request.script_root + "/" + quote(request.path.lstrip("/\\"), safe="/")
    location = path + ("?" + urlencode(rest) if rest else "")
    if urlsplit(location).netloc or not location.startswith("/") or location.startswith("//"):
        location = request.script_root + "/"
    response = _redirect(location, code=303)
    code = request.args.get(PARAMETER)
    if code in LANGUAGES:
        response.set_cookie(
            COOKIE,
            code,
            path=(request.script_root or "/"),
            httponly=True,
            samesite="Strict",
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE") or request.is_secure),
        )
    return response


def _template_globals() -> dict[str, Any]:
    return {"current_lang": current_language()}


def init_i18n(app: Flask) -> None:
    """Set up Flask-Babel with :func:`select_locale`, the switcher and ``current_lang``."""
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=DEFAULT,
        default_translation_directories=str(TRANSLATIONS_DIR),
    )
    # First, before anything else runs for the request (rate limits, views).
    app.before_request_funcs.setdefault(None, []).insert(0, _switch_language)
    app.context_processor(_template_globals)
