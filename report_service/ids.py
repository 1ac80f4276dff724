"""Report ids: their grammar, the id of a principal's draft, and an id as a URL path segment."""

from __future__ import annotations

from urllib.parse import quote

from report_service.models import ID_MAX_LENGTH
from shared.errors import Violations

# ---------------------------------------------------------------------------
# The grammar (report.proto, Report.id)
# ---------------------------------------------------------------------------


def check_report_id(violations: Violations, field: str, value: object) -> None:
    """A report id as a request gives it: 1-512 printable characters, no space at either end.

    Printable as str.isprintable() says: letters, marks, numbers, punctuation, symbols and the
    ASCII space; no control, format (bidi overrides, zero-width), private-use, surrogate or
    unassigned characters, and no other spaces or line breaks. Every draft id is one too, as
    principals are printable and without spaces (shared.v1 auth.proto).
    """
    if not isinstance(value, str):
        violations.add(field, f"must be a string, got {type(value).__name__}")
    elif not 1 <= len(value) <= ID_MAX_LENGTH:
        violations.add(field, f"must be 1-{ID_MAX_LENGTH} characters long, got {len(value)}")
    elif not value.isprintable():
        position, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        violations.add(
            field,
            f"must hold printable characters only (letters, marks, numbers, punctuation, "
            f"symbols, space), got U+{ord(char):04X} at position {position}",
        )
    elif value != value.strip(" "):
        violations.add(field, "must not begin or end with a space")


def check_new_report_id(violations: Violations, field: str, value: object) -> None:
    """check_report_id, not of the form reserved for drafts, and not `.` or `..` (CreateReport).

    `.` and `..` are dot-segments: a link `/api/reports/..` resolves to `/api/`, and no
    escape helps, as `%2E` is the same character in a URL (RFC 3986 2.3, 6.2.2).
    """
    before = len(violations)
    check_report_id(violations, field, value)
    if len(violations) != before or not isinstance(value, str):
        return
    if is_draft_form(value):
        violations.add(
            field,
            f"ids that contain `:` and end in `{DRAFT_SUFFIX}` are reserved for drafts "
            "(EditReport creates yours): choose another id",
        )
    elif value in _DOT_SEGMENTS:
        violations.add(field, f"must not be {value!r}: a link to it would name another path")


# ---------------------------------------------------------------------------
# Draft ids
# ---------------------------------------------------------------------------

# The seed's form `<principal>:<slug>-draft` (`team:sales-dashboard` edited by `user:john.doe`
# → `user:john.doe:sales-dashboard-draft`; SPEC §6: slug = the id after its first `:`, or all
# of it) is kept wherever the slug has no `:`. A slug with a `:` would let `user` editing
# `x:bob:sales` take the id of `user:bob` editing `team:sales`, so such originals are spelt
# out whole. What the seed's form still shares is one principal's drafts of `team:x` and
# `org:x` (DRAFT_ID_TAKEN, which depends on the caller's own drafts only). CreateReport
# refuses the whole form, so no original can take a draft's id.
DRAFT_SUFFIX = "-draft"
_LONG_FORM = "~"
_DOT_SEGMENTS = (".", "..")


def is_draft_form(report_id: str) -> bool:
    """True for an id of the form every draft id has (a `:`, and `-draft` at the end).

    The whole form is reserved, not only the ids some principal's draft would have: the rule
    stays one line long, and CreateReport's answer cannot depend on who drafts what.
    """
    return report_id.endswith(DRAFT_SUFFIX) and ":" in report_id


def _escape(original_id: str) -> str:
    return original_id.replace("%", "%25").replace(":", "%3A")


def draft_id(principal: str, original_id: str) -> str:
    """principal's draft id of original_id; two principals' drafts never share one.

    `<principal>:<slug>-draft`, slug being original_id after its first `:` (or all of it),
    when slug has no `:` and does not start with `~` (the seed's form); any other original →
    `<principal>:~<original_id>-draft`, with `%` and `:` of original_id percent-encoded
    (`team:q1:sales` → `user:jane:~team%3Aq1%3Asales-draft`). The part after the principal
    holds no `:`, so the last `:` ends the principal, and a leading `~` tells the two forms
    apart: each draft id reads back as exactly one principal and one slug or original
    (tests/report_service/test_draft_ids.py decodes them).
    """
    _, colon, rest = original_id.partition(":")
    slug = rest if colon else original_id
    if ":" not in slug and not slug.startswith(_LONG_FORM):
        return f"{principal}:{slug}{DRAFT_SUFFIX}"
    return f"{principal}:{_LONG_FORM}{_escape(original_id)}{DRAFT_SUFFIX}"


# ---------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------

# RFC 3986 pchar: unreserved, sub-delims, `:` and `@` stand for themselves in a path segment
# (the seed's links keep `:` as it is); everything else, `/ ? # % [ ]`, space and non-ASCII
# included, is percent-encoded (UTF-8).
_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@"


def path_segment(report_id: str) -> str:
    """report_id as one path segment of a URL."""
    return quote(report_id, safe=_PATH_SEGMENT_SAFE)
