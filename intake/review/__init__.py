"""The offline review tool, ``intake-review``.

Runs on an offline machine that has never seen the server: it imports only the
standard library, pyrage, :mod:`intake.crypto` and :mod:`intake.schema` (never
Flask or SQLAlchemy), so ``pip install intake`` without extras is enough.

Modules: :mod:`.bundle` (export bundle format, shared with the server's
exporter), :mod:`.sources` (envelopes from a bundle or a folder),
:mod:`.reports` (untrusted report.json → what we show), :mod:`.terminal`
(neutralising hostile text), :mod:`.render`, :mod:`.extract`,
:mod:`.identities` and :mod:`.cli`.
"""
