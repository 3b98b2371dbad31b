"""The language of ``intake-review``'s output, from the web app's gettext catalogs.

The review tool shows its tables, labels, messages and help in Kyrgyz,
Russian, Uzbek or English, read from the same compiled catalogs as the web
app (``intake/translations/<lang>/LC_MESSAGES/messages.mo``) through
:func:`intake.i18n.translator`, the standard library's :mod:`gettext` only:
no Flask, no Babel on the offline machine.

Which language: :func:`choose` takes ``--lang``, else ``$INTAKE_REVIEW_LANG``,
else the POSIX locale (the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
that is set), else English. :func:`use` makes a language current for the
process (the CLI is single-threaded); until then everything is English, so
code that renders without going through the CLI stays deterministic.

What is translated: strings written in this package, marked with :func:`_`,
:func:`ngettext` or :func:`N_` so ``pybabel extract`` finds them, the
English labels of :mod:`intake.schema` (field labels, vocabulary labels),
which are msgids (:func:`label`, :data:`FIELD_LABELS`), and argparse's own
words ("usage:", "options", its error messages: :data:`ARGPARSE_MESSAGES`,
:func:`argparse_in_language`). What never is: text from an envelope, a
manifest or a reply (what people typed), and machine output (``--json``
gives codes).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from gettext import GNUTranslations
from typing import Final

from intake.i18n import DEFAULT, LANGUAGES, N_, supported, translator
from intake.schema import Vocabulary, label_for

__all__ = [
    "ARGPARSE_MESSAGES",
    "ENV",
    "FIELD_LABELS",
    "N_",
    "_",
    "argparse_in_language",
    "choose",
    "current",
    "label",
    "labels",
    "ngettext",
    "use",
]

ENV: Final = "INTAKE_REVIEW_LANG"
#: POSIX locale variables, in the order that decides the message language.
LOCALE_VARIABLES: Final = ("LC_ALL", "LC_MESSAGES", "LANG")

#: The field labels of :data:`intake.schema.SECTIONS` and the other row labels
#: of :func:`.render.report_rows` / :func:`.render.followup_rows`: msgids for the review tool.
#: Listed here (schema.py stays free of i18n) so extraction finds them;
#: tests/test_review_i18n.py checks the list is complete.
FIELD_LABELS: Final = (
    N_("Received"),
    N_("Form language"),
    N_("Danger right now"),
    N_("Kind of danger"),
    N_("About the danger"),
    N_("Reporter is"),
    N_("Relationship (other)"),
    N_("Reporter's name or pseudonym"),
    N_("Detained person"),
    N_("Other spellings"),
    N_("Age"),
    N_("Sex"),
    N_("Occupation / why targeted"),
    N_("Health and medication"),
    N_("Held in"),
    N_("City or facility"),
    N_("Arrested on"),
    N_("Charges / article"),
    N_("Court"),
    N_("Case number"),
    N_("Next hearing"),
    N_("Lawyer access"),
    N_("Family visits"),
    N_("Visits (lawyer, family, doctor)"),
    N_("What happened"),
    N_("Acts (HURIDOCS)"),
    N_("When"),
    N_("Who did it"),
    N_("Names or ranks"),
    N_("Witnesses"),
    N_("Visible injuries"),
    N_("Medical care asked for or given"),
    N_("Already told"),
    N_("Their response"),
    N_("May store this report"),
    N_("Who may see it"),
    N_("Detained person knows and agrees"),
    N_("Action wanted"),
    N_("May use reporter's name"),
    N_("Publicity could make it worse"),
    N_("Officials warned or threatened reporter"),
    N_("Reporter's phone"),
    N_("Do not contact"),
    N_("Safe channel"),
    N_("Safe times"),
    N_("If someone else answers"),
    N_("Preferred language"),
    N_("Help needed now"),
    N_("Ignored unknown keys"),
    N_("Follow-up"),
    N_("New information"),
)

#: argparse's own msgids that ``intake-review`` can print: its help ("usage: ",
#: the section headings, the -h line) and the errors its arguments can cause.
#: argparse looks each up, when it prints, through its module-global ``_`` and
#: ``ngettext``, which :func:`argparse_in_language` points at this module.
#: Listed here, word for word as in Lib/argparse.py, so extraction finds them;
#: tests/test_review_i18n.py checks each is still one of argparse's msgids.
#: Left out: messages about mistakes in the parser's own definition (never
#: shown to staff) and ones no argument of this tool can cause (nargs=N,
#: mutually exclusive groups, FileType, type= conversions).
ARGPARSE_MESSAGES: Final = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("ignored explicit argument %r"),
)


class _Current:
    """The language in use; English until :func:`use` says otherwise."""

    code: str = DEFAULT
    catalog: GNUTranslations | None = None


def use(code: str) -> str:
    """Make ``code`` (one of :data:`intake.i18n.LANGUAGES`) current; returns the previous one."""
    if code not in LANGUAGES:
        raise ValueError(f"unsupported language {code!r}; expected one of {LANGUAGES}")
    previous = _Current.code
    _Current.code = code
    _Current.catalog = translator(code)
    return previous


def current() -> str:
    """The code of the language in use."""
    return _Current.code


def _locale_language(environ: Mapping[str, str]) -> str | None:
    """The language of the POSIX locale: the first set of LC_ALL, LC_MESSAGES, LANG."""
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            # "ru_RU.UTF-8", "uz_UZ@latin", "C.UTF-8", "POSIX"
            return value.split(".", 1)[0].split("@", 1)[0]
    return None


def choose(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The language to use: ``--lang``, else ``$INTAKE_REVIEW_LANG``, else the locale, else en.

    The first source that is set decides; a code this tool does not know
    ("fr", "C") gives English rather than falling through to the next source,
    so ``--lang`` and the variable always win over the locale.
    """
    env = os.environ if environ is None else environ
    for value in (option, env.get(ENV, "").strip() or None, _locale_language(env)):
        if value:
            return supported(value)
    return DEFAULT


def _(message: str) -> str:
    """``message`` (an English msgid) in the current language."""
    catalog = _Current.catalog
    return catalog.gettext(message) if catalog is not None else message


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or a plural form for ``count``, in the current language."""
    catalog = _Current.catalog
    if catalog is not None:
        return catalog.ngettext(singular, plural, count)
    return singular if count == 1 else plural


@contextmanager
def argparse_in_language() -> Iterator[None]:
    """While inside, argparse says its own words in the current language.

    argparse (3.11 to 3.13) translates by calling the ``_`` and ``ngettext``
    it imported from :mod:`gettext` into its own module, at the time it
    formats help or an error; pointing those two names at :func:`_` and
    :func:`ngettext` here routes them through the review tool's catalog. The
    previous functions come back on leaving, so nothing else in the process
    is affected.
    """
    names = vars(argparse)
    saved = {"_": names["_"], "ngettext": names["ngettext"]}
    names.update({"_": _, "ngettext": ngettext})
    try:
        yield
    finally:
        names.update(saved)


def label(vocabulary: Vocabulary, code: str | None) -> str:
    """The translated label of a vocabulary code (an unknown code is shown as it is)."""
    english = label_for(vocabulary, code)
    known = code is not None and english != code
    return _(english) if known else english


def labels(vocabulary: Vocabulary, chosen: tuple[str, ...] | list[str]) -> str:
    """Several codes' labels in the current language, "; "-separated."""
    return "; ".join(label(vocabulary, code) for code in chosen)
