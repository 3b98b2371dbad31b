"""intake-review in Kyrgyz, Russian, Uzbek and English, and its name search.

The output language comes from ``--lang``, ``$INTAKE_REVIEW_LANG``, the POSIX
locale, else English; labels come from the web app's catalogs, what people
typed is shown as typed, ``--json`` stays language-neutral. ``list --person``
finds a name however it was typed (substitute letters, either script).
tests/conftest.py sets INTAKE_REVIEW_LANG=en for every test; tests here that
check the other sources remove it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_review_support import (
    Key,
    followup_dict,
    make_bundle,
    make_folder,
    make_key,
    manifest_entry,
    report_dict,
    seal,
    sealed_report,
)

from intake.i18n import translator
from intake.review import lang
from intake.review.bundle import (
    GENESIS,
    ChainInfo,
    ManifestError,
    chain_hash,
    manifest_bytes,
    parse_manifest,
)
from intake.review.cli import main
from intake.review.lang import ARGPARSE_MESSAGES, FIELD_LABELS, _, choose
from intake.review.render import followup_rows, report_rows
from intake.review.replies import RepliesBundleError, read_replies_bundle
from intake.review.signature import format_public_key, format_signature
from intake.schema import SECTIONS, parse_followup, parse_report

Capsys = pytest.CaptureFixture[str]

AIGUL = "a1a1a1a1-aigul"
GULOM = "b2b2b2b2-gulom"
IVAN = "c3c3c3c3-ivan"
TYPED = "Guards came at night.\nYes, again."  # English typed text: never translated


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path)


@pytest.fixture
def folder(tmp_path: Path, key: Key) -> Path:
    return make_folder(
        tmp_path / "envelopes",
        {
            AIGUL: sealed_report(
                key,
                person_name="Айгүл Ташиева",
                facility_type="sizo",
                facility_name="Hospital",  # typed; the same words as a label: not translated
                what_happened=TYPED,
                danger_now="yes",
                received_hour="2024-05-01T13:00Z",
            ),
            GULOM: sealed_report(
                key,
                person_name="Gʻulom Oʻrinboyev",
                person_other_names="Ғулом Ўринбоев",
                received_hour="2024-05-02T13:00Z",
            ),
            IVAN: sealed_report(key, person_name="Иван Петров", received_hour="2024-05-03T13:00Z"),
        },
    )


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # whole cells in the table


def run(*argv: str) -> int:
    return main(list(argv))


def t(code: str, msgid: str) -> str:
    return translator(code).gettext(msgid)


def _no_language_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTAKE_REVIEW_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)


# --- list and show in each language ------------------------------------------------------


def test_list_in_russian(key: Key, folder: Path, capsys: Capsys) -> None:
    assert run("--lang", "ru", "list", "-i", str(key.path), str(folder)) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for word in ("НОМЕР", "ПОЛУЧЕНО", "ОПАСНОСТЬ", "ДОПОЛНЕНИЯ", "ЧЕЛОВЕК", "УЧРЕЖДЕНИЕ"):
        assert word in header
    assert "RECEIVED" not in out and "PERSON" not in out
    aigul = next(line for line in out.splitlines() if AIGUL in line)
    assert " ДА " in aigul  # danger now
    assert "Айгүл Ташиева" in aigul  # typed: as typed
    assert f"{t('ru', 'Pre-trial detention (SIZO)')}, Hospital" in aigul
    assert "Guards came at night. Yes, again." in aigul
    assert lang.current() == "en"  # the language held for that call only


@pytest.mark.parametrize(
    ("code", "words"),
    [("ky", ("КЕЛДИ", "КОРКУНУЧ", "АДАМ", "МЕКЕМЕ")), ("uz", ("QABUL QILINGAN", "XAVF", "ODAM"))],
)
def test_list_in_kyrgyz_and_uzbek(
    key: Key, folder: Path, capsys: Capsys, code: str, words: tuple[str, ...]
) -> None:
    assert run("--lang", code, "list", "-i", str(key.path), str(folder)) == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out.splitlines()[0]
    assert "Gʻulom Oʻrinboyev" in out and "Айгүл Ташиева" in out


def test_show_in_russian(key: Key, folder: Path, capsys: Capsys) -> None:
    assert run("--lang", "ru", "show", "-i", str(key.path), str(folder), AIGUL) == 0
    out = capsys.readouterr().out
    assert f"Сообщение {AIGUL}" in out
    assert "!! ОПАСНОСТЬ СЕЙЧАС !!" in out
    assert "Получено: 2024-05-01T13:00Z" in out
    assert "Задержанный: Айгүл Ташиева" in out
    assert f"{t('ru', 'Held in')}: {t('ru', 'Pre-trial detention (SIZO)')}" in out
    assert f"{t('ru', 'City or facility')}: Hospital" in out  # typed, not translated
    assert "Что случилось:\n    Guards came at night.\n    Yes, again.\n" in out
    assert f"{t('ru', 'Danger right now')}: Да" in out  # a vocabulary label
    assert f"{t('ru', 'May store this report')}: да" in out  # a yes/no value
    assert f"Язык формы: {t('ru', 'Русский (Russian)')}" in out
    assert "Вложения (0)" in out
    assert "Detained person" not in out and "Received:" not in out


@pytest.mark.parametrize(
    ("code", "lines"),
    [
        ("ky", ("Кармалган адам: Айгүл Ташиева", "Эмне болду:", "Тиркемелер (0)")),
        ("uz", ("Hibsdagi odam: Айгүл Ташиева", "Nima boʻldi:", "Ilovalar (0)")),
        ("en", ("Detained person: Айгүл Ташиева", "What happened:", "Attachments (0)")),
    ],
)
def test_show_in_each_language(
    key: Key, folder: Path, capsys: Capsys, code: str, lines: tuple[str, ...]
) -> None:
    assert run("--lang", code, "show", "-i", str(key.path), str(folder), AIGUL) == 0
    out = capsys.readouterr().out
    for line in lines:
        assert line in out
    assert f"{t(code, 'City or facility')}: Hospital" in out
    assert "    Guards came at night.\n    Yes, again.\n" in out


def test_errors_are_translated_and_untrusted_text_stays_neutralised(
    key: Key, folder: Path, capsys: Capsys
) -> None:
    hostile = "zz\x1b]0;owned\x07"
    assert run("--lang", "ru", "show", "-i", str(key.path), str(folder), hostile) == 2
    err = capsys.readouterr().err
    assert err.startswith("ошибка: нет дела или конверта, чей номер начинается с ")
    assert "\x1b" not in err and "\x07" not in err
    assert "zz\\\\x1b]0;owned\\\\x07" in err  # made visible (and quoted, as repr does)


def test_json_is_the_same_in_every_language(key: Key, folder: Path, capsys: Capsys) -> None:
    outputs = []
    for code in ("en", "ru", "ky", "uz"):
        assert run("--lang", code, "list", "--json", "-i", str(key.path), str(folder)) == 0
        outputs.append(capsys.readouterr().out)
    assert len(set(outputs)) == 1
    cases = json.loads(outputs[0])
    assert cases[0]["danger_now"] == "yes" and cases[0]["facility_type"] == "sizo"


def test_help_is_translated(capsys: Capsys) -> None:
    assert run("--lang", "uz", "list", "--help") == 0
    out = capsys.readouterr().out
    assert t("uz", "one line per case (report and follow-ups), danger now first") in out
    assert t("uz", "a JSON array instead of a table") in out


def test_argparse_words_are_translated_in_help(capsys: Capsys) -> None:
    assert run("--lang", "ru", "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith("использование: intake-review ")
    assert "\nпараметры:\n" in out and "\nпозиционные аргументы:\n" in out
    assert "показать эту справку и выйти" in out
    for english in ("usage:", "options:", "positional arguments:", "show this help"):
        assert english not in out
    assert run("--lang", "ky", "keygen", "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith("колдонуу: intake-review keygen ") and "\nпараметрлер:\n" in out
    assert lang.current() == "en"  # and argparse speaks English again afterwards
    with pytest.raises(SystemExit):
        argparse.ArgumentParser(prog="p").parse_args(["--help"])
    assert capsys.readouterr().out.startswith("usage: p ")


def test_argparse_errors_are_translated(capsys: Capsys) -> None:
    assert run("--lang", "ru", "keygen") == 2
    err = capsys.readouterr().err
    assert err.startswith("использование: intake-review keygen ")
    assert err.endswith("intake-review keygen: ошибка: не хватает обязательных аргументов: --out\n")
    assert run("--lang", "uz", "nosuch") == 2
    err = capsys.readouterr().err
    assert "intake-review: xato: argument COMMAND: notoʻgʻri qiymat: 'nosuch' (" in err
    assert "error:" not in err and "invalid choice" not in err


def test_keygen_and_trust_labels_are_translated(tmp_path: Path, capsys: Capsys) -> None:
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("a long enough passphrase of several words\n")
    out_file = tmp_path / "id.age"
    assert (
        run("--lang", "ru", "keygen", "--out", str(out_file), "--passphrase-file", str(passphrase))
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    recipient = next(line for line in lines if "age1" in line)
    fingerprint = next(line for line in lines if "SHA256:" in line)
    # The labels in Russian, their values lined up.
    assert re.fullmatch(r"получатель: +age1\w+", recipient), recipient
    assert re.fullmatch(r"отпечаток: +SHA256:\S+", fingerprint), fingerprint
    assert recipient.index("age1") == fingerprint.index("SHA256:")
    assert "recipient" not in recipient and "fingerprint" not in fingerprint

    public = format_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert run("--lang", "ky", "trust", "--state", str(tmp_path / "state"), public) == 0
    out = capsys.readouterr().out
    assert "\nманжа изи: SHA256:" in out and "fingerprint:" not in out


def test_argparse_messages_are_argparse_msgids() -> None:
    """Each msgid in lang.ARGPARSE_MESSAGES is one argparse really asks for (this Python's)."""
    source = ast.parse(Path(argparse.__file__).read_text(encoding="utf-8"))
    msgids = {
        node.args[0].value
        for node in ast.walk(source)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert set(ARGPARSE_MESSAGES) <= msgids, set(ARGPARSE_MESSAGES) - msgids
    for code in ("ky", "ru", "uz"):
        for msgid in ARGPARSE_MESSAGES:
            assert t(code, msgid) != msgid or msgid.startswith("argument "), (code, msgid)


# --- choosing the language ---------------------------------------------------------------


def test_environment_variable_selects_the_language(
    key: Key, folder: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_language_env(monkeypatch)
    monkeypatch.setenv("INTAKE_REVIEW_LANG", "ru")
    monkeypatch.setenv("LANG", "ky_KG.UTF-8")  # the variable wins over the locale
    assert run("list", "-i", str(key.path), str(folder)) == 0
    assert "ПОЛУЧЕНО" in capsys.readouterr().out


def test_locale_selects_the_language(
    key: Key, folder: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_language_env(monkeypatch)
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    assert run("list", "-i", str(key.path), str(folder)) == 0
    assert "ПОЛУЧЕНО" in capsys.readouterr().out
    monkeypatch.setenv("LC_ALL", "uz_UZ.UTF-8@latin")  # LC_ALL before LANG
    assert run("list", "-i", str(key.path), str(folder)) == 0
    assert "QABUL QILINGAN" in capsys.readouterr().out


def test_option_wins_over_environment(
    key: Key, folder: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_REVIEW_LANG", "ru")
    assert run("--lang=ky", "list", "-i", str(key.path), str(folder)) == 0
    assert "КЕЛДИ" in capsys.readouterr().out


def test_unknown_languages_fall_back_to_english(
    key: Key, folder: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_language_env(monkeypatch)
    monkeypatch.setenv("INTAKE_REVIEW_LANG", "fr")
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    assert run("list", "-i", str(key.path), str(folder)) == 0
    assert "RECEIVED" in capsys.readouterr().out
    assert run("--lang", "de", "list", "-i", str(key.path), str(folder)) == 0
    captured = capsys.readouterr()
    assert "RECEIVED" in captured.out
    assert "warning: unknown language 'de'; using en" in captured.err


def test_choose() -> None:
    assert choose(None, {}) == "en"
    assert choose(None, {"LANG": "C.UTF-8"}) == "en"
    assert choose(None, {"LANG": "POSIX"}) == "en"
    assert choose(None, {"LANG": "ky_KG.UTF-8"}) == "ky"
    assert choose(None, {"LANG": "ru_RU.UTF-8", "LC_MESSAGES": "uz_UZ"}) == "uz"
    assert choose(None, {"LANG": "ru_RU", "LC_MESSAGES": "uz_UZ", "LC_ALL": "en_GB"}) == "en"
    assert choose(None, {"LANG": "ru_RU", "INTAKE_REVIEW_LANG": "uz"}) == "uz"
    assert choose(None, {"LANG": "ru_RU", "INTAKE_REVIEW_LANG": " "}) == "ru"
    assert choose("ky", {"INTAKE_REVIEW_LANG": "uz"}) == "ky"
    assert choose("ru-RU", {}) == "ru"
    assert choose("xx", {"LANG": "ru_RU"}) == "en"


def test_without_flask_or_babel_and_with_translations_loaded() -> None:
    code = (
        "import sys\n"
        "from intake.review.cli import main\n"
        "code = main(['--lang', 'ky', '--help'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'flask', 'sqlalchemy', 'babel', 'flask_babel', 'jinja2', 'werkzeug'})\n"
        "print(bad)\n"
        "sys.exit(code or (1 if bad else 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("[]")
    description = t(
        "ky",
        "Read intake reports offline: list, show and extract sealed envelopes from an "
        "export bundle or a folder of .age files.",
    )
    assert description.split()[0] in done.stdout
    assert t("ky", "print whole cases: the report, then each follow-up") in done.stdout


# --- labels ------------------------------------------------------------------------------


def test_every_schema_label_is_marked_for_translation() -> None:
    labels = set(FIELD_LABELS)
    for specs in SECTIONS.values():
        for spec in specs:
            assert spec.label in labels, spec.label
    # In English the row labels are the msgids themselves.
    parsed = parse_report(report_dict(person_other_names="x", help_needed=["legal"]))
    followup_obj = followup_dict(AIGUL, 1, danger_now="yes", danger_kinds=["urgent_health"])
    followup = parse_followup(followup_obj | {"future": 1})  # "Ignored unknown keys" too
    for name, _value in report_rows(parsed) + followup_rows(followup, case_id=AIGUL, seq=1):
        assert name in labels, name


# --- name search ---------------------------------------------------------------------------


def _listed(key: Key, folder: Path, capsys: Capsys, name: str) -> list[str]:
    assert run("list", "--json", "--person", name, "-i", str(key.path), str(folder)) == 0
    return [case["id"] for case in json.loads(capsys.readouterr().out)]


@pytest.mark.parametrize(
    "query", ["Aigul Tashieva", "Айгул", "Ташиева", "tashieva aigul", "АЙГҮЛ", "Aygul"]
)
def test_person_search_finds_kyrgyz_name(
    key: Key, folder: Path, capsys: Capsys, query: str
) -> None:
    assert _listed(key, folder, capsys, query) == [AIGUL]


@pytest.mark.parametrize("query", ["G'ulom", "Гулом", "Gulom", "Ғулом", "O‘rinboyev", "Orinboev"])
def test_person_search_finds_uzbek_name(key: Key, folder: Path, capsys: Capsys, query: str) -> None:
    assert _listed(key, folder, capsys, query) == [GULOM]


@pytest.mark.parametrize("query", ["Петрова", "Aidana", "Tashiev Bakyt", "Oʻrin Gʻulomov"])
def test_person_search_does_not_match_other_names(
    key: Key, folder: Path, capsys: Capsys, query: str
) -> None:
    assert _listed(key, folder, capsys, query) == []


def test_person_search_table_shows_names_as_typed(key: Key, folder: Path, capsys: Capsys) -> None:
    assert run("--lang", "ky", "list", "--person", "Aigul", "-i", str(key.path), str(folder)) == 0
    out = capsys.readouterr().out
    assert "Айгүл Ташиева" in out and "Иван" not in out and "Gʻulom" not in out
    assert run("list", "--person", "Nobody", "-i", str(key.path), str(folder)) == 0
    assert capsys.readouterr().out == "no case names a person like 'Nobody'\n"
    assert run("list", "--person", "  ", "-i", str(key.path), str(folder)) == 2
    assert "--person: give a name" in capsys.readouterr().err


# --- errors raised deep inside: import, envelopes, replies bundles --------------------------


def _signed_bundle(path: Path, envelope_id: str, data: bytes, signer: Any) -> Path:
    """A version 2 bundle of one envelope, chained from the genesis and signed."""
    hour = "2024-05-01T13:00Z"
    sha = hashlib.sha256(data).hexdigest()
    head = chain_hash(
        GENESIS,
        sha,
        seq=1,
        kind="report",
        envelope_id=envelope_id,
        case_id=envelope_id,
        received_hour=hour,
    )
    entry = manifest_entry(envelope_id, data, hour, chain_seq=1, chain_hash=head)
    public = format_public_key(signer.public_key().public_bytes_raw())
    manifest = manifest_bytes(
        "2024-05-02T09:00Z", [entry], chain=ChainInfo(0, GENESIS, 1, head), signing_key=public
    )
    make_bundle(
        path,
        {envelope_id: data},
        manifest=manifest,
        extra=[("manifest.sig", format_signature(signer.sign(manifest)))],
    )
    return path


@pytest.mark.parametrize("code", ["ru", "en"])
def test_a_tampered_bundle_is_refused_in_the_chosen_language(
    key: Key, tmp_path: Path, capsys: Capsys, code: str
) -> None:
    signer = Ed25519PrivateKey.generate()
    data = sealed_report(key)
    tampered = bytes([data[0] ^ 1]) + data[1:]  # same size, other SHA-256
    bundle = tmp_path / "bundle.tar"
    # The signed manifest names the original bytes; the member is swapped for the tampered ones.
    original = _signed_bundle(tmp_path / "original.tar", AIGUL, data, signer)
    with tarfile.open(original) as source, tarfile.open(bundle, "w") as out:
        for info in source.getmembers():
            member = source.extractfile(info)
            payload = member.read() if member else b""
            if info.name.endswith(".age"):
                payload = tampered
            out.addfile(info, io.BytesIO(payload))
    state = tmp_path / "state"
    public = format_public_key(signer.public_key().public_bytes_raw())
    assert run("--lang", code, "trust", "--state", str(state), public) == 0
    capsys.readouterr()
    assert run("--lang", code, "import", "--state", str(state), str(bundle)) == 1
    lines = capsys.readouterr().err.splitlines()
    lang.use(code)
    try:
        altered = _("altered: %(problem)s") % {
            "problem": _("SHA-256 differs from the manifest (bundle damaged or altered)")
        }
        expected = _("error: %(subject)s: %(message)s") % {
            "subject": str(bundle),
            "message": f"{AIGUL}: {altered}",
        }
    finally:
        lang.use("en")
    assert expected in lines, lines
    if code == "ru":
        assert (
            f"ошибка: {bundle}: {AIGUL}: изменён: SHA-256 не совпадает с манифестом "
            "(пакет повреждён или изменён)"
        ) in lines
    else:
        assert (
            f"error: {bundle}: {AIGUL}: altered: SHA-256 differs from the manifest "
            "(bundle damaged or altered)"
        ) in lines


@pytest.mark.parametrize(
    ("code", "start"),
    [
        ("ru", "ошибка: {id}: report.json не соответствует схеме: "),
        ("en", "error: {id}: report.json does not follow the schema: "),
    ],
)
def test_a_malformed_envelope_in_list(
    key: Key, folder: Path, capsys: Capsys, code: str, start: str
) -> None:
    bad = "d4d4d4d4-bad"
    report = report_dict()
    report["version"] = 999  # no schema knows it
    (folder / f"{bad}.age").write_bytes(seal(report, [key.recipient_obj]))
    assert run("--lang", code, "list", "-i", str(key.path), str(folder)) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(start.format(id=bad)) for line in err), err


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "ru",
            "ошибка: {path}: ответы не показаны: {name}: это не пакет ответов (не tar-файл)",
        ),
        (
            "en",
            "error: {path}: replies not shown: {name}: not a replies bundle (not a tar file)",
        ),
    ],
)
def test_a_bad_replies_bundle(
    key: Key, folder: Path, tmp_path: Path, capsys: Capsys, code: str, expected: str
) -> None:
    replies = tmp_path / "replies.tar"
    replies.write_bytes(b"not a tar at all\n" * 100)
    argv = ["--lang", code, "show", "-i", str(key.path), "--replies", str(replies)]
    run(*argv, str(folder), AIGUL)
    err = capsys.readouterr().err.splitlines()
    assert expected.format(path=replies, name=replies.name) in err, err
    ru = t("ru", "%(file)s: not a replies bundle (not a tar file)")
    assert ru == "%(file)s: это не пакет ответов (не tar-файл)"


def test_server_side_messages_stay_english() -> None:
    """Without lang.use (the server's exporter and import-replies), messages are English."""
    assert lang.current() == "en"
    with pytest.raises(ManifestError, match=r"^manifest\.json: not valid UTF-8 JSON$"):
        parse_manifest(b"\xff")
    with pytest.raises(RepliesBundleError, match="not a replies bundle"):
        read_replies_bundle(Path(__file__))
