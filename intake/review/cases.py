"""Cases: a report and the follow-ups its reporter added later, grouped and ordered.

Every envelope holds a report or a follow-up (:func:`intake.schema.parse_envelope_json`
tells which). A report is its own case, under its envelope id; a follow-up
names its case and its place in it (``seq`` 1, 2, …). :func:`group_cases`
puts each case's follow-ups behind its report in ``seq`` order. A follow-up
whose report is not in the source (the usual thing when the report came in an
earlier export bundle) makes a case of its own with no report.

Which case a follow-up belongs to, and its place, come from the server's
manifest entry when there is one (a bundle or the archive): the server
decided them when the reporter signed in, and signed the manifest. Anyone who
knows a staff recipient can seal an envelope claiming any case, so what the
envelope says is trusted only for a folder of envelopes, which has no
manifest. Where the manifest says something else (:func:`manifest_problems`),
that is a problem to show. Whether an envelope is a report or a follow-up is
what it holds; a report is always its own case.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intake.review.bundle import KIND_FOLLOWUP, KIND_REPORT
from intake.review.lang import _
from intake.review.reports import Content
from intake.review.sources import EnvelopeRef, SelectionError
from intake.review.terminal import neutralise
from intake.schema import DANGER_KINDS, FollowUpReport, Report, codes

__all__ = [
    "Case",
    "CaseEnvelope",
    "group_cases",
    "manifest_problems",
    "select_cases",
]


@dataclass(frozen=True)
class CaseEnvelope:
    """One readable envelope of a case: its id, what it holds, problems found with it."""

    id: str
    content: Content
    problems: tuple[str, ...] = ()
    ref: EnvelopeRef | None = None

    @property
    def followup(self) -> FollowUpReport | None:
        return self.content if isinstance(self.content, FollowUpReport) else None

    @property
    def case_id(self) -> str:
        """A follow-up's case: the manifest's (bundle or archive), else the envelope's."""
        if not isinstance(self.content, FollowUpReport):
            return self.id
        expected = self.ref.expected if self.ref is not None else None
        return expected.case_id if expected is not None else self.content.case_id

    @property
    def seq(self) -> int:
        """A follow-up's place in its case: the manifest's, else the envelope's."""
        if not isinstance(self.content, FollowUpReport):
            return 0
        expected = self.ref.expected if self.ref is not None else None
        return expected.seq if expected is not None else self.content.seq


@dataclass(frozen=True)
class Case:
    """A report (None if it is not in the source) and its follow-ups in ``seq`` order."""

    id: str
    report: CaseEnvelope | None
    followups: tuple[CaseEnvelope, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def envelopes(self) -> tuple[CaseEnvelope, ...]:
        return ((self.report,) if self.report else ()) + self.followups

    @property
    def report_content(self) -> Report | None:
        if self.report is None or not isinstance(self.report.content, Report):
            return None
        return self.report.content

    @property
    def danger_now(self) -> str:
        """ "yes" if the report or any follow-up says so; otherwise the latest answer."""
        answers = [envelope.content.danger_now for envelope in self.envelopes]
        if "yes" in answers:
            return "yes"
        return answers[-1] if answers else "dont_know"

    @property
    def danger_source(self) -> str:
        """Which envelope first said "danger now": "report", "follow-up #2", or ""."""
        for envelope in self.envelopes:
            if envelope.content.danger_now == "yes":
                return f"follow-up #{envelope.seq}" if envelope.followup else "report"
        return ""

    @property
    def danger_kinds(self) -> tuple[str, ...]:
        """Every kind of danger the report or a follow-up named, in vocabulary order."""
        named = {kind for envelope in self.envelopes for kind in envelope.content.danger_kinds}
        return tuple(code for code in codes(DANGER_KINDS) if code in named)

    @property
    def received_hour(self) -> str:
        """When the case began: the report's hour, or the first follow-up's."""
        envelopes = self.envelopes
        return envelopes[0].content.received_hour if envelopes else ""

    @property
    def latest_hour(self) -> str:
        """The hour of the newest envelope (hours sort as text)."""
        return max((e.content.received_hour for e in self.envelopes), default="")


def manifest_problems(ref: EnvelopeRef, content: Content) -> list[str]:
    """Where the bundle's manifest disagrees with what the envelope holds."""
    entry = ref.expected
    if entry is None:
        return []
    if isinstance(content, FollowUpReport):
        if entry.kind != KIND_FOLLOWUP:
            return [
                _("the manifest lists a %(kind)s, the envelope holds a follow-up (bundle altered?)")
                % {"kind": entry.kind}
            ]
        if (entry.case_id, entry.seq) != (content.case_id, content.seq):
            return [
                _(
                    "the manifest says follow-up #%(listed_seq)d to case %(listed_case)s, the "
                    "envelope says #%(seq)d to case %(case)s (bundle altered?)"
                )
                % {
                    "listed_seq": entry.seq,
                    "listed_case": entry.case_id,
                    "seq": content.seq,
                    "case": content.case_id,
                }
            ]
        return []
    if entry.kind != KIND_REPORT:
        return [
            _(
                "the manifest lists a follow-up to case %(case)s, the envelope holds a report "
                "(bundle altered?)"
            )
            % {"case": entry.case_id}
        ]
    return []


def group_cases(envelopes: Iterable[CaseEnvelope]) -> list[Case]:
    """Group envelopes into cases, sorted by case id; follow-ups by ``seq`` (then id)."""
    reports: dict[str, CaseEnvelope] = {}
    followups: dict[str, list[CaseEnvelope]] = {}
    for envelope in envelopes:
        if envelope.followup is None:
            reports[envelope.id] = envelope
        else:
            followups.setdefault(envelope.case_id, []).append(envelope)
    cases: list[Case] = []
    for case_id in sorted(set(reports) | set(followups)):
        ordered = sorted(followups.get(case_id, []), key=lambda e: (e.seq, e.id))
        problems: list[str] = []
        for before, after in itertools.pairwise(ordered):
            if before.seq == after.seq:
                problems.append(
                    _("follow-ups %(first)s and %(second)s both say they are #%(seq)d")
                    % {"first": before.id, "second": after.id, "seq": after.seq}
                )
        cases.append(Case(case_id, reports.get(case_id), tuple(ordered), tuple(problems)))
    return cases


def select_cases(
    cases: Sequence[Case], wanted: Sequence[str], unreadable: Iterable[str] = ()
) -> tuple[list[Case], list[str]]:
    """The cases named by case ids, envelope ids or unique prefixes of either, in order.

    An envelope id (or prefix) of a follow-up selects its case. Envelopes that
    could not be read (``unreadable``) can be selected too: they come back in
    the second list, so the caller can report why. Raises :class:`SelectionError`
    for a prefix that matches nothing, or more than one case.
    """
    targets: dict[str, Case | str] = {}
    for case in cases:
        targets[case.id] = case
        for envelope in case.envelopes:
            targets.setdefault(envelope.id, case)
    for envelope_id in unreadable:
        targets.setdefault(envelope_id, envelope_id)
    chosen: list[Case] = []
    failed: list[str] = []
    for prefix in wanted:
        if prefix in targets:
            matches = [targets[prefix]]
        else:
            found = {_key(t): t for k, t in targets.items() if prefix and k.startswith(prefix)}
            matches = list(found.values())
        if not matches:
            raise SelectionError(
                _("no case or envelope id starts with %(prefix)s") % {"prefix": _quoted(prefix)}
            )
        if len(matches) > 1:
            raise SelectionError(
                _("%(prefix)s matches %(count)d cases; give more characters")
                % {"prefix": _quoted(prefix), "count": len(matches)}
            )
        match = matches[0]
        if isinstance(match, Case):
            if all(case.id != match.id for case in chosen):
                chosen.append(match)
        elif match not in failed:
            failed.append(match)
    return chosen, failed


def _quoted(text: str) -> str:
    """Untrusted ``text`` neutralised and quoted, as ``repr`` would: ``'abc'``."""
    return repr(neutralise(text))


def _key(target: Case | str) -> str:
    return f"case:{target.id}" if isinstance(target, Case) else f"envelope:{target}"
