"""Cases in intake-review: follow-ups behind their report; the manifest's case fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519
from test_review_support import (
    Key,
    make_bundle,
    make_folder,
    make_key,
    manifest_entry,
    sealed_followup,
    sealed_report,
)

from intake.review.bundle import (
    BUNDLE_FORMAT,
    ManifestEntry,
    ManifestError,
    manifest_bytes,
    parse_manifest,
)
from intake.review.cli import main

Capsys = pytest.CaptureFixture[str]
CASE_A = "a1a1a1a1a1a1a1a1a1a1"
CASE_B = "b2b2b2b2b2b2b2b2b2b2"
CASE_C = "c3c3c3c3c3c3c3c3c3c3"  # only its follow-up is in the bundle
FU_A1, FU_A2, FU_C1 = "f0000000000000000a01", "f0000000000000000a02", "f0000000000000000c01"
LETTER = ("letter.jpg", b"\xff\xd8 handwritten letter" * 50)
GOOD_SHA = "0" * 64


def run(*argv: str) -> int:
    return main(list(argv), prompt=lambda _: "")


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path)


def case_envelopes(key: Key) -> dict[str, bytes]:
    return {
        CASE_A: sealed_report(key, person_name="Aigul Case", received_hour="2024-05-01T13:00Z"),
        # Follow-up #2 first in the bundle: ordering is by seq, not by position.
        FU_A2: sealed_followup(
            key,
            CASE_A,
            2,
            text="She says they threatened to kill her.",
            danger_now="yes",
            danger_kinds=["threat_to_life"],
            received_hour="2024-05-06T09:00Z",
        ),
        FU_A1: sealed_followup(
            key, CASE_A, 1, [LETTER], text="Moved to colony 47.", received_hour="2024-05-04T10:00Z"
        ),
        CASE_B: sealed_report(key, person_name="Bakyt Case", received_hour="2024-05-03T08:00Z"),
        FU_C1: sealed_followup(
            key, CASE_C, 1, text="A doctor finally came.", received_hour="2024-05-05T08:00Z"
        ),
    }


CASE_FIELDS: dict[str, dict[str, Any]] = {
    FU_A1: {"kind": "followup", "case_id": CASE_A, "seq": 1},
    FU_A2: {"kind": "followup", "case_id": CASE_A, "seq": 2},
    FU_C1: {"kind": "followup", "case_id": CASE_C, "seq": 1},
}


@pytest.fixture(params=["bundle", "folder"])
def source(request: pytest.FixtureRequest, tmp_path: Path, key: Key) -> Path:
    envelopes = case_envelopes(key)
    if request.param == "folder":
        return make_folder(tmp_path / "in", envelopes)
    return make_bundle(tmp_path / "bundle.tar", envelopes, case_fields=CASE_FIELDS)


# --- manifest ----------------------------------------------------------------------------


def test_manifest_case_fields_round_trip_and_defaults() -> None:
    recipient = str(x25519.Identity.generate().to_public())
    entries = [
        manifest_entry(CASE_A, b"r", reply_recipient=recipient),
        manifest_entry(FU_A1, b"f", kind="followup", case_id=CASE_A, seq=1),
        manifest_entry("old-style", b"o"),
    ]
    data = manifest_bytes("2024-05-02T09:00Z", entries)
    manifest = parse_manifest(data)
    assert list(manifest.entries.values()) == entries
    report, followup, old = manifest.entries.values()
    assert (report.kind, report.case_id, report.seq) == ("report", CASE_A, 0)
    assert report.reply_recipient == recipient
    assert (followup.kind, followup.case_id, followup.seq) == ("followup", CASE_A, 1)
    assert followup.is_followup and not report.is_followup
    assert old.case_id == "old-style" and old.reply_recipient is None
    written = json.loads(data)["envelopes"]
    assert written[0]["reply_recipient"] == recipient and "reply_recipient" not in written[1]

    # A manifest from before follow-ups (no case fields at all) reads as reports.
    legacy = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "created_hour": "",
        "envelopes": [{"id": "abc", "received_hour": "", "size": 1, "sha256": GOOD_SHA}],
    }
    entry = parse_manifest(json.dumps(legacy).encode()).entries["abc"]
    assert (entry.kind, entry.case_id, entry.seq, entry.reply_recipient) == (
        "report",
        "abc",
        0,
        None,
    )


def _with(**fields: Any) -> bytes:
    entry = {"id": "e1", "received_hour": "", "size": 1, "sha256": GOOD_SHA, **fields}
    return json.dumps(
        {"format": BUNDLE_FORMAT, "version": 1, "created_hour": "", "envelopes": [entry]}
    ).encode()


RECIPIENT = str(x25519.Identity.generate().to_public())


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"kind": "reply"}, ".kind"),
        ({"kind": 1}, ".kind"),
        ({"kind": "followup", "case_id": "../x", "seq": 1}, ".case_id"),
        ({"kind": "followup", "case_id": "-x", "seq": 1}, ".case_id"),
        ({"kind": "followup", "case_id": "A" * 5, "seq": 1}, ".case_id"),
        ({"kind": "followup", "case_id": "x" * 65, "seq": 1}, ".case_id"),
        ({"kind": "followup", "case_id": "e1", "seq": 1}, "must name its report's case"),
        ({"kind": "followup", "case_id": "c1", "seq": 0}, "seq 1 or more"),
        ({"kind": "followup", "case_id": "c1"}, "seq 1 or more"),
        ({"kind": "followup", "case_id": "c1", "seq": 1_000_001}, ".seq"),
        ({"kind": "followup", "case_id": "c1", "seq": True}, ".seq"),
        ({"kind": "followup", "case_id": "c1", "seq": 1.0}, ".seq"),
        ({"seq": -1}, ".seq"),
        ({"seq": 1}, "a report has seq 0"),
        ({"case_id": "other"}, "a report is its own case"),
        ({"reply_recipient": "age1notarecipient"}, "reply_recipient"),
        ({"reply_recipient": RECIPIENT.upper()}, "reply_recipient"),
        ({"reply_recipient": "AGE-SECRET-KEY-1XYZ"}, "reply_recipient"),
        ({"reply_recipient": 5}, "reply_recipient"),
        ({"reply_recipient": RECIPIENT + "\x1b"}, "reply_recipient"),
        (
            {"kind": "followup", "case_id": "c1", "seq": 1, "reply_recipient": RECIPIENT},
            "only a report carries one",
        ),
    ],
)
def test_manifest_case_fields_are_validated(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_with(**fields))
    assert fragment in str(caught.value) and "e1" in str(caught.value)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_manifest_bytes_refuses_what_the_parser_refuses() -> None:
    bad = [
        ManifestEntry("e1", "", 1, GOOD_SHA, kind="other"),
        ManifestEntry("e1", "", 1, GOOD_SHA, kind="followup", case_id="c1", seq=0),
        ManifestEntry("e1", "", 1, GOOD_SHA, reply_recipient="age1bad"),
        ManifestEntry("e1", "", 1, GOOD_SHA, seq=3),
    ]
    for entry in bad:
        with pytest.raises(ValueError, match="e1"):
            manifest_bytes("", [entry])
    twice = [
        ManifestEntry("f1", "", 1, GOOD_SHA, kind="followup", case_id="c1", seq=1),
        ManifestEntry("f2", "", 1, GOOD_SHA, kind="followup", case_id="c1", seq=1),
    ]
    with pytest.raises(ManifestError, match="two follow-ups with seq 1"):
        manifest_bytes("", twice)
    with pytest.raises(ManifestError, match="two follow-ups with seq 1"):
        parse_manifest(
            json.dumps(
                {
                    "format": BUNDLE_FORMAT,
                    "version": 1,
                    "envelopes": [e.to_dict() for e in twice],
                }
            ).encode()
        )


# --- list -------------------------------------------------------------------------------


def test_list_one_row_per_case_danger_from_a_followup(
    key: Key, source: Path, capsys: Capsys
) -> None:
    assert run("list", "-i", str(key.path), str(source)) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err
    lines = captured.out.splitlines()
    assert lines[0].split()[:4] == ["ID", "RECEIVED", "DANGER", "FOLLOW-UPS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert len(lines) == 4  # three cases, follow-ups are not rows of their own
    # The report said "no"; follow-up #2 says "yes": the case comes first, as danger.
    assert lines[1].split()[0] == CASE_A
    assert rows[CASE_A].split()[1:4] == ["2024-05-01T13:00Z", "YES", "+2"]
    assert "Aigul Case" in rows[CASE_A]
    assert rows[CASE_B].split()[2] == "no" and "+" not in rows[CASE_B].split()[3]
    # The orphan follow-up is a case of its own, newest activity before B.
    assert [line.split()[0] for line in lines[1:]] == [CASE_A, CASE_C, CASE_B]
    assert "+1" in rows[CASE_C] and "(no report)" in rows[CASE_C]


def test_list_json_includes_followups_in_order(key: Key, source: Path, capsys: Capsys) -> None:
    assert run("list", "--json", "-i", str(key.path), str(source)) == 0
    cases = {case["id"]: case for case in json.loads(capsys.readouterr().out)}
    a = cases[CASE_A]
    assert a["danger_now"] == "yes" and a["danger_kinds"] == ["threat_to_life"]
    assert a["person"] == "Aigul Case" and a["report_in_source"] is True
    assert a["followup_count"] == 2 and a["latest"] == "2024-05-06T09:00Z"
    assert [(f["id"], f["seq"]) for f in a["followups"]] == [(FU_A1, 1), (FU_A2, 2)]
    assert a["followups"][0]["attachments"] == 1
    assert a["followups"][1]["danger_now"] == "yes"
    assert a["followups"][1]["text"] == "She says they threatened to kill her."
    c = cases[CASE_C]
    assert c["report_in_source"] is False and c["person"] is None
    assert [f["id"] for f in c["followups"]] == [FU_C1]
    assert cases[CASE_B]["followups"] == [] and cases[CASE_B]["danger_now"] == "no"


# --- show -------------------------------------------------------------------------------


def test_show_prints_report_then_followups_in_seq_order(
    key: Key, source: Path, capsys: Capsys
) -> None:
    assert run("show", "-i", str(key.path), str(source), CASE_A) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "error" not in captured.err
    header = out.index(f"Case {CASE_A}: report and 2 follow-ups")
    report = out.index(f"Report {CASE_A}")
    first = out.index(f"Follow-up #1 to case {CASE_A} (envelope {FU_A1})")
    second = out.index(f"Follow-up #2 to case {CASE_A} (envelope {FU_A2})")
    assert header < report < first < second
    assert "!! DANGER NOW (said in the follow-up #2) !!" in out
    assert "New information: Moved to colony 47." in out
    assert out.count("check: verified") == 1 and "letter.jpg" in out
    # A follow-up's envelope id (or its prefix) selects its case.
    assert run("show", "-i", str(key.path), str(source), FU_A2) == 0
    assert f"Report {CASE_A}" in capsys.readouterr().out
    assert run("show", "-i", str(key.path), str(source), "f0000000000000000a") == 0
    assert f"Report {CASE_A}" in capsys.readouterr().out
    # A prefix shared by two cases is ambiguous.
    assert run("show", "-i", str(key.path), str(source), "f") == 2
    assert "matches 2 cases" in capsys.readouterr().err


def test_show_a_case_whose_report_is_not_in_the_source(
    key: Key, source: Path, capsys: Capsys
) -> None:
    assert run("show", "-i", str(key.path), str(source), CASE_C) == 0
    out = capsys.readouterr().out
    assert f"Case {CASE_C}: no report in this source and 1 follow-up" in out
    assert "Note: the report of this case is not in this source" in out
    assert f"Follow-up #1 to case {CASE_C}" in out and "A doctor finally came." in out
    assert "Report " not in out


def test_followup_attachment_mismatch_and_manifest_disagreement(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    from test_review_support import followup_dict, seal

    # report.json lists the letter, the envelope holds other bytes.
    altered = seal(followup_dict(CASE_A, 1, [LETTER]), [key.recipient_obj], [(LETTER[0], b"other")])
    envelopes = {CASE_A: sealed_report(key), FU_A1: altered}
    fields = {FU_A1: {"kind": "followup", "case_id": CASE_A, "seq": 7}}
    bundle = make_bundle(tmp_path / "b.tar", envelopes, case_fields=fields)
    assert run("show", "-i", str(key.path), str(bundle), CASE_A) == 1
    captured = capsys.readouterr()
    assert "SIZE MISMATCH" in captured.out
    assert f"error: {FU_A1}: the manifest says follow-up #7 to case {CASE_A}" in captured.err
    assert run("list", "-i", str(key.path), str(bundle)) == 1
    assert "the manifest says follow-up #7" in capsys.readouterr().err


def test_the_manifest_decides_a_followups_case_and_place(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    # The envelope claims follow-up #5 to case B; the server's manifest says #1 to case A.
    envelopes = {
        CASE_A: sealed_report(key),
        CASE_B: sealed_report(key),
        FU_A1: sealed_followup(key, CASE_B, 5, text="planted"),
        # Claims case A, but the manifest lists it as a report: its own case.
        FU_C1: sealed_followup(key, CASE_A, 2, text="not a follow-up of A"),
    }
    fields = {FU_A1: {"kind": "followup", "case_id": CASE_A, "seq": 1}}
    bundle = make_bundle(tmp_path / "b.tar", envelopes, case_fields=fields)
    assert run("list", "--json", "-i", str(key.path), str(bundle)) == 1
    captured = capsys.readouterr()
    cases = {case["id"]: case for case in json.loads(captured.out)}
    assert set(cases) == {CASE_A, CASE_B, FU_C1}
    assert [f["id"] for f in cases[CASE_A]["followups"]] == [FU_A1]
    assert cases[CASE_B]["followups"] == []
    assert [f["id"] for f in cases[FU_C1]["followups"]] == [FU_C1]
    assert (
        f"error: {FU_A1}: the manifest says follow-up #1 to case {CASE_A}, "
        f"the envelope says #5 to case {CASE_B}" in captured.err
    )
    assert f"error: {FU_C1}: the manifest lists a report" in captured.err

    # `show` heads the follow-up with the manifest's place, and says what the envelope claims.
    assert run("show", "-i", str(key.path), str(bundle), CASE_A) == 1
    captured = capsys.readouterr()
    assert f"Follow-up #1 to case {CASE_A} (envelope {FU_A1})" in captured.out
    assert f"Follow-up: #1 to case {CASE_A}" in captured.out
    assert "Follow-up #5" not in captured.out and "Follow-up: #5" not in captured.out
    assert f"the envelope says #5 to case {CASE_B}" in captured.err

    target = tmp_path / "out"
    assert run("extract", "-i", str(key.path), str(bundle), CASE_B, FU_A1, "--to", str(target)) == 1
    capsys.readouterr()
    assert (target / CASE_A / "followup-1" / "report.json").exists()
    assert sorted(p.name for p in (target / CASE_B).iterdir()) == ["report.json"]

    # A folder has no manifest: there the envelope's own claim is all there is.
    folder = make_folder(tmp_path / "in", envelopes)
    assert run("list", "--json", "-i", str(key.path), str(folder)) == 0
    cases = {case["id"]: case for case in json.loads(capsys.readouterr().out)}
    assert [f["id"] for f in cases[CASE_B]["followups"]] == [FU_A1]
    assert [f["id"] for f in cases[CASE_A]["followups"]] == [FU_C1]


def test_two_followups_claiming_the_same_seq(tmp_path: Path, key: Key, capsys: Capsys) -> None:
    folder = make_folder(
        tmp_path / "in",
        {
            CASE_A: sealed_report(key),
            FU_A1: sealed_followup(key, CASE_A, 1, text="one"),
            FU_A2: sealed_followup(key, CASE_A, 1, text="two"),
        },
    )
    assert run("list", "-i", str(key.path), str(folder)) == 1
    assert f"error: {CASE_A}: follow-ups {FU_A1} and {FU_A2} both say" in capsys.readouterr().err
    target = tmp_path / "out"
    assert run("extract", "-i", str(key.path), str(folder), CASE_A, "--to", str(target)) == 1
    err = capsys.readouterr().err
    assert "already exists; refusing to overwrite" in err
    assert (target / CASE_A / "followup-1" / "report.json").exists()


HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x9b31m\u202egpj.exe\u2066\x08"


def test_terminal_escapes_in_a_followup_are_neutralised(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    from test_review_support import followup_dict, seal

    # The builder strips control characters; a hostile producer does not.
    followup = followup_dict(CASE_A, 1, [("x.txt", b"x")])
    followup["text"] = f"text:{HOSTILE}"
    followup["attachments"][0]["name"] = f"name{HOSTILE}.txt"
    orphan = followup_dict(CASE_C, 1)
    orphan["text"] = f"orphan:{HOSTILE}"  # an orphan's text appears in the list row
    envelopes = {
        CASE_A: sealed_report(key),
        FU_A1: seal(followup, [key.recipient_obj], [("x.txt", b"x")]),
        FU_C1: seal(orphan, [key.recipient_obj]),
    }
    bundle = make_bundle(tmp_path / "b.tar", envelopes, case_fields=CASE_FIELDS)
    outputs = []
    for argv in (
        ["list", str(bundle)],
        ["list", "--json", str(bundle)],
        ["show", str(bundle), CASE_A, CASE_C],
        ["extract", str(bundle), CASE_A, CASE_C, "--to", str(tmp_path / "out")],
    ):
        run(argv[0], "-i", str(key.path), *argv[1:])
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    for text in outputs:
        for ch in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x08"):
            assert ch not in text
    assert "text:\\x1b[2J" in outputs[2] and "\\u202egpj.exe" in outputs[2]
    assert "orphan:\\x1b[2J" in outputs[2] and "name\\x1b[2J" in outputs[2]
    assert "orphan:\\x1b[2J" in outputs[0]
    json.loads("\n".join(x for x in outputs[1].splitlines() if not x.startswith("warning: ")))


# --- extract ----------------------------------------------------------------------------


def test_extract_writes_followups_under_the_case(
    tmp_path: Path, key: Key, source: Path, capsys: Capsys
) -> None:
    target = tmp_path / "cases"
    code = run("extract", "-i", str(key.path), str(source), CASE_A, CASE_C, "--to", str(target))
    out = capsys.readouterr().out
    assert code == 0
    case = target / CASE_A
    assert sorted(p.name for p in case.iterdir()) == ["followup-1", "followup-2", "report.json"]
    assert sorted(p.name for p in (case / "followup-1").iterdir()) == [
        "01-letter.jpg",
        "report.json",
    ]
    assert (case / "followup-1" / "01-letter.jpg").read_bytes() == LETTER[1]
    second = json.loads((case / "followup-2" / "report.json").read_text())
    assert (second["kind"], second["seq"], second["danger_now"]["answer"]) == ("followup", 2, "yes")
    assert json.loads((case / "report.json").read_text())["person"]["name"] == "Aigul Case"
    assert out.count("(verified)") == 1
    # The orphan follow-up gets its case folder, with no report in it.
    assert sorted(p.name for p in (target / CASE_C).iterdir()) == ["followup-1"]

    # A later bundle with a new follow-up adds it beside what is there already.
    later = make_bundle(
        tmp_path / "later.tar",
        {"f0000000000000000a03": sealed_followup(key, CASE_A, 3, text="three")},
        case_fields={"f0000000000000000a03": {"kind": "followup", "case_id": CASE_A, "seq": 3}},
    )
    assert run("extract", "-i", str(key.path), str(later), CASE_A, "--to", str(target)) == 0
    capsys.readouterr()
    assert (case / "followup-3" / "report.json").exists()
    assert (case / "followup-1" / "01-letter.jpg").read_bytes() == LETTER[1]


def test_extract_refuses_a_planted_case_folder_link(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    bundle = make_bundle(
        tmp_path / "b.tar", {FU_C1: sealed_followup(key, CASE_C, 1)}, case_fields=CASE_FIELDS
    )
    target = tmp_path / "out"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / CASE_C).symlink_to(outside)
    assert run("extract", "-i", str(key.path), str(bundle), CASE_C, "--to", str(target)) == 1
    assert "outside the target" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_unreadable_envelope_is_reported_only_when_chosen(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    stranger = make_key(tmp_path, "stranger.txt")
    folder = make_folder(
        tmp_path / "in",
        {CASE_A: sealed_report(key), "zz-stranger": sealed_report(stranger)},
    )
    assert run("show", "-i", str(key.path), str(folder), CASE_A) == 0
    err = capsys.readouterr().err
    assert "error" not in err and "1 envelope in the source could not be read" in err
    assert run("show", "-i", str(key.path), str(folder), "zz") == 1
    assert capsys.readouterr().err.startswith("error: zz-stranger: ")
