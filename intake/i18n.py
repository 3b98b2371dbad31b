"""Languages, message catalogs and name matching, without Flask.

The web app (through :mod:`intake.i18n_web`) and the offline review tool share
this module and the catalogs in ``intake/translations/<lang>/LC_MESSAGES/``:
``messages.po`` is what translators edit, ``messages.mo`` what is read at run
time (both are committed; ``make translations`` re-extracts, merges and
compiles them). Only the standard library is used here, so the review machine
needs neither Flask nor Babel.

API:

- :data:`LANGUAGES`, :data:`DEFAULT`, :data:`LANGUAGE_NAMES` (each language in
  its own name), :func:`supported` (a code, or the default);
- :func:`translator` gives a :class:`gettext.GNUTranslations` per language
  (English falls back to the msgids, which are the English text);
- :func:`N_` marks a string for extraction without translating it (the schema
  vocabularies are collected by :func:`extract_schema` instead, so
  :mod:`intake.schema` stays free of any i18n import);
- :func:`normalise_name`, :func:`transliterate`, :func:`name_key`,
  :func:`names_match` and :func:`name_contains` match personal names typed with
  substitute letters or in another script.

Name matching limits. :func:`transliterate` is a table, one Cyrillic letter at
a time (Russian, Kyrgyz and Uzbek letters, roughly ICAO 9303 plus Kyrgyz and
Uzbek additions); it knows no spelling rules, so it cannot tell a Russian
``е`` that is pronounced "ye" from one that is "e". :func:`name_key` makes up
for the commonest differences by folding both sides the same way (zh/j/dzh,
kh/h/x, ye/e, y/i, q/k, doubled letters, oʻ/o, gʻ/g), which makes it lossy on purpose:
use it to find candidates that a person then checks, never to decide that two
reports are about the same person. Not handled: ``ң`` written "ng", Uzbek
``ў`` written with Russian ``у`` ("Ўринбоев" / "Уринбоев"), names translated
rather than transliterated, and typing mistakes.
"""

from __future__ import annotations

import gettext
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "DEFAULT",
    "DOMAIN",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "N_",
    "TRANSLATIONS_DIR",
    "extract_schema",
    "name_contains",
    "name_key",
    "names_match",
    "normalise_name",
    "schema_labels",
    "supported",
    "translator",
    "transliterate",
]

LANGUAGES: Final = ("ky", "ru", "uz", "en")
DEFAULT: Final = "en"
#: Each language in its own name, as the language switcher shows it.
LANGUAGE_NAMES: Final = {"ky": "Кыргызча", "ru": "Русский", "uz": "Oʻzbekcha", "en": "English"}
DOMAIN: Final = "messages"
TRANSLATIONS_DIR: Final = Path(__file__).resolve().parent / "translations"


def N_(message: str) -> str:
    """Mark ``message`` for extraction; translate it later, where it is shown."""
    return message


def supported(code: str | None) -> str:
    """``code`` if it is one of :data:`LANGUAGES` (``"ru-RU"`` → ``"ru"``), else the default."""
    if code:
        primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
        if primary in LANGUAGES:
            return primary
    return DEFAULT


@lru_cache(maxsize=len(LANGUAGES))
def translator(lang: str) -> gettext.GNUTranslations:
    """The compiled catalog of ``lang``; unknown codes raise ``ValueError``.

    Usage: ``t = translator("ky"); t.gettext("Yes"); t.ngettext(s, p, n)``.
    A message without a translation comes back as the msgid (the English text).
    """
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; expected one of {LANGUAGES}")
    path = TRANSLATIONS_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with path.open("rb") as stream:
        return gettext.GNUTranslations(stream)


# ---------------------------------------------------------------------------
# Strings defined in intake.schema (vocabulary labels shown on the form)


def schema_labels() -> list[str]:
    """Every English vocabulary label of :mod:`intake.schema`, in order, without repeats.

    These are the msgids of the choices on the form (and of the review tool's
    value labels); translate them with ``translator(lang).gettext(label)``.
    """
    from intake import schema

    labels: dict[str, None] = {}
    for value in vars(schema).values():
        if _is_vocabulary(value):
            for _code, label in value:
                labels.setdefault(label, None)
    return list(labels)


def _is_vocabulary(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(
            isinstance(pair, tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
            for pair in value
        )
    )


def extract_schema(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """A Babel extraction method yielding :func:`schema_labels` (see ``babel.cfg``).

    The labels are plain tuples in :mod:`intake.schema`, not gettext calls, so
    the Python extractor cannot see them.
    """
    source = fileobj.read().decode("utf-8")
    for label in schema_labels():
        quoted = f'"{label}"'
        lineno = source[: source.find(quoted)].count("\n") + 1 if quoted in source else 0
        yield lineno, None, label, ["Choice on the report form"]


# ---------------------------------------------------------------------------
# Names

#: Typed in place of the Uzbek okina (U+02BB): turned, left and right single
#: quotes, apostrophe, grave accent, modifier apostrophe, acute accent, prime.
_OKINA_VARIANTS: Final = "ʻ‘’'`ʼ´′ʽ"
_OKINA: Final = "ʻ"

#: Letters people type instead of the Kyrgyz ones (after casefolding).
_KYRGYZ_SUBSTITUTES: Final = str.maketrans({"ң": "н", "ү": "у", "ө": "о"})

_CYRILLIC_TO_LATIN: Final[dict[str, str]] = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    # Kyrgyz
    "ң": "n",
    "ө": "o",
    "ү": "u",
    # Uzbek Cyrillic
    "ў": "oʻ",
    "ғ": "gʻ",
    "қ": "q",
    "ҳ": "h",
    # Kazakh and Ukrainian letters that turn up in names
    "і": "i",
    "ї": "yi",
    "є": "ye",
    "ә": "a",
    "ұ": "u",
    "һ": "h",
}

#: Latin letters with marks, as Turkish-style or Kazakh Latin spellings write them.
_LATIN_LETTERS: Final = str.maketrans(
    {"ş": "sh", "ç": "ch", "ğ": "g", "ı": "i", "ñ": "n", "ä": "a", "ö": "o", "ü": "u"}
)

#: Applied in order to both sides by name_key: the usual spelling differences.
_FOLDS: Final = (
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("kh", "h"),
    ("x", "h"),
    ("q", "k"),
    ("w", "v"),
    ("ye", "e"),
    ("y", "i"),
)
_REPEATS: Final = re.compile(r"(\w)\1+")


def normalise_name(text: str) -> str:
    """``text`` in a canonical form for comparing names, in its own script.

    NFKC, casefold, Kyrgyz ``ң ү ө`` → ``н у о`` (what people type without a
    Kyrgyz keyboard), every apostrophe-like mark → ``ʻ`` (U+02BB, the Uzbek
    okina), hyphens and other punctuation and symbols dropped (a hyphen
    becomes a space), runs of spaces collapsed. ``"ӨМҮРОВА  Айгүл"`` and
    ``"Омурова айгул"`` give the same result; so do ``"Gʻulom"`` and
    ``"G'ulom"``.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_KYRGYZ_SUBSTITUTES)
    out: list[str] = []
    for char in text:
        if char in _OKINA_VARIANTS:
            out.append(_OKINA)
            continue
        category = unicodedata.category(char)
        if category[0] in "LN" or category in ("Mn", "Mc"):
            out.append(char)
        elif category[0] == "Z" or char.isspace() or category == "Pd":
            out.append(" ")
        # Other punctuation, symbols and control characters are dropped.
    return " ".join("".join(out).split())


def transliterate(text: str) -> str:
    """Cyrillic letters (Russian, Kyrgyz, Uzbek) → Latin, one letter at a time.

    ``"Айгүл Ташиева"`` → ``"Aygul Tashieva"`` (:func:`name_key` folds ``y``
    and ``i`` together, so it still matches "Aigul"). Anything not Cyrillic is
    kept. See the module docstring for what a table cannot do.
    """
    out: list[str] = []
    for i, char in enumerate(text):
        lower = char.lower()
        latin = _CYRILLIC_TO_LATIN.get(lower)
        if latin is None:
            out.append(char)
        elif char == lower:
            out.append(latin)
        elif text[i + 1 : i + 2].isupper() or text[i - 1 : i].isupper():
            out.append(latin.upper())  # ЖАПАРОВ → ZHAPAROV
        else:
            out.append(latin[:1].upper() + latin[1:])  # Жапаров → Zhaparov
    return "".join(out)


def name_key(text: str) -> str:
    """A lossy Latin key: two spellings of one name should give the same key.

    :func:`normalise_name`, then :func:`transliterate`, then Latin letters
    with marks spelled out, the usual variants folded (see :data:`_FOLDS`),
    the okina dropped and doubled letters made single. ``name_key("Айгүл
    Ташиева") == name_key("Aigul Tashieva") == name_key("Айгул Ташиева")``.
    """
    text = transliterate(normalise_name(text)).translate(_LATIN_LETTERS)
    text = "".join(
        char
        for char in unicodedata.normalize("NFKD", text)
        if not unicodedata.combining(char) and char != _OKINA
    )
    for variant, canonical in _FOLDS:
        text = text.replace(variant, canonical)
    return _REPEATS.sub(r"\1", text)


def names_match(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` may be the same name (word order ignored)."""
    key_a, key_b = name_key(a).split(), name_key(b).split()
    if not key_a or not key_b:
        return False
    return "".join(key_a) == "".join(key_b) or sorted(key_a) == sorted(key_b)


def name_contains(name: str, query: str) -> bool:
    """True if every word of ``query`` starts a word of ``name`` (for search boxes)."""
    words = name_key(name).split()
    wanted = name_key(query).split()
    return bool(wanted) and all(any(w.startswith(q) for w in words) for q in wanted)
