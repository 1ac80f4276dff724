"""Draft ids: one per (principal, original), reserved from CreateReport; ids in links escaped."""

from __future__ import annotations

import re
from urllib.parse import unquote, urljoin, urlsplit

import grpc
import pytest
from google.protobuf import field_mask_pb2
from hypothesis import given
from hypothesis import strategies as st

from report_service.drafts import draft_id
from report_service.ids import check_new_report_id, is_draft_form
from report_service.v1 import report_pb2
from shared.errors import Violations
from tests.report_service.support import Client, as_dict
from tests.support import failure, snapshot

# ---------------------------------------------------------------------------
# The rule, read backwards: every draft id names exactly one principal
# ---------------------------------------------------------------------------


def _decode(report_id: str) -> tuple[str, str]:
    """(principal, `slug:<slug>` or `id:<original id>`) of a draft id, by report.proto's grammar."""
    assert report_id.endswith("-draft"), report_id
    principal, _, rest = report_id[: -len("-draft")].rpartition(":")
    if rest.startswith("~"):
        original = re.sub("%(25|3A)", lambda m: {"25": "%", "3A": ":"}[m[1]], rest[1:])
        return principal, f"id:{original}"
    return principal, f"slug:{rest}"


def _named(original_id: str) -> str:
    """What the draft id keeps of original_id: its slug in the seed's form, else all of it."""
    _, colon, rest = original_id.partition(":")
    slug = rest if colon else original_id
    return f"slug:{slug}" if ":" not in slug and not slug.startswith("~") else f"id:{original_id}"


_PIECE = st.one_of(
    st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=6),
    st.sampled_from([":", "~", "%", "%3A", "%25", "-draft", "team:", "team"]),
)
_TEXT = st.lists(_PIECE, min_size=1, max_size=8).map("".join)


@given(principal=_TEXT, original_id=_TEXT)
def test_every_draft_id_reads_back_as_its_one_principal_and_slug_or_original(
    principal, original_id
):
    made = draft_id(principal, original_id)

    assert _decode(made) == (principal, _named(original_id))
    assert is_draft_form(made)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("user", "x:bob:sales"), ("user:bob", "team:sales")),
        (("user:bob", "team:a:b"), ("user:bob:a", "team:b")),
        (("user", "bob:sales"), ("user:bob", "sales")),
        (("user:bob", "team:q1:sales"), ("user:bob", "team:sales")),
    ],
)
def test_pairs_the_old_rule_gave_one_draft_id_get_two(one, other):
    assert draft_id(*one) != draft_id(*other)


def test_one_principals_drafts_of_one_slug_in_two_namespaces_share_the_seeds_id():
    assert draft_id("user:bob", "team:sales") == draft_id("user:bob", "org:sales")
    assert draft_id("user:bob", "sales") == "user:bob:sales-draft"


# ---------------------------------------------------------------------------
# The findings, through the service
# ---------------------------------------------------------------------------


def test_an_original_cannot_take_another_principals_draft_id(alice, bob, server):
    alice.create(id="team:mkt")
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.create(id="user:bob:mkt-draft")

    error = failure(caught.value)
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["report.id"])
    assert "reserved for drafts" in error.violations[0][1]
    assert snapshot(server.database) == before
    # Bob's workflow is his own: the draft, then the seed's step 2 on its id.
    assert bob.call("EditReport", id="team:mkt").id == "user:bob:mkt-draft"
    assert bob.call("PutReportDraft", id="team:mkt").created is False
    updated = bob.call(
        "UpdateReport",
        report=report_pb2.Report(id="user:bob:mkt-draft", name="Bob's"),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )
    assert (updated.editing_id, updated.owner_id, updated.name) == ("team:mkt", "user:bob", "Bob's")


def test_create_report_answers_the_same_whether_or_not_another_principal_has_that_draft(alice, bob):
    alice.create(id="team:mkt")

    def attempt():
        with pytest.raises(grpc.RpcError) as caught:
            alice.create(id="user:bob:mkt-draft")
        return failure(caught.value)

    without = attempt()
    bob.call("EditReport", id="team:mkt")
    with_draft = attempt()

    assert with_draft == without
    assert without.code == grpc.StatusCode.INVALID_ARGUMENT


def test_principals_and_slugs_with_colons_get_drafts_of_their_own(server, alice):
    user, user_bob = Client.of(server, "user"), Client.of(server, "user:bob")
    alice.create(id="x:bob:sales")
    alice.create(id="team:sales")

    users = user.call("EditReport", id="x:bob:sales")
    bobs = user_bob.call("EditReport", id="team:sales")

    assert bobs.id == "user:bob:sales-draft"
    assert users.id != bobs.id
    for client, draft in ((user, users), (user_bob, bobs)):
        changed = client.call(
            "UpdateReport",
            report=report_pb2.Report(id=draft.id, name=f"by {draft.owner_id}"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        )
        assert (changed.editing_id, changed.owner_id) == (draft.editing_id, draft.owner_id)


# ---------------------------------------------------------------------------
# Links: each id one correct path segment
# ---------------------------------------------------------------------------

# RFC 3986 segment: unreserved, sub-delims, `:`, `@`, or a percent-encoded octet.
_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-F]{2})+")


@pytest.mark.parametrize(
    "original_id",
    ["team:a b?c#d/e%f", "team:ünïcødé 名前", "org:50%/x?y=1#top", "team:%2F..%2F"],
)
def test_links_carry_each_id_as_one_escaped_path_segment(john, original_id):
    john.create(id=original_id)

    draft = john.call("EditReport", id=original_id)

    links = as_dict(draft)["links"]
    hrefs = {name: link["href"] for name, link in links.items()}
    expected = {"self": draft.id, "original": original_id, "commitDraft": original_id}
    for name, href in hrefs.items():
        tail = "/draft/_commit" if name == "commitDraft" else ""
        assert href.startswith("/api/reports/") and href.endswith(tail), href
        segment = href[len("/api/reports/") : len(href) - len(tail)]
        assert _SEGMENT.fullmatch(segment), href
        assert unquote(segment) == expected[name]


@pytest.mark.parametrize("report_id", [".", ".."])
def test_ids_that_are_dot_segments_are_refused_as_no_link_can_name_them(john, server, report_id):
    # `/api/reports/..` resolves to `/api/`; `%2E%2E` is the same segment (RFC 3986 2.3, 6.2.2)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        john.create(id=report_id)

    error = failure(caught.value)
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["report.id"])
    assert snapshot(server.database) == before


@pytest.mark.parametrize("report_id", ["...", "team:..", "./x", ".hidden"])
def test_ids_with_dots_that_are_not_dot_segments_are_links_of_their_own(john, report_id):
    href = as_dict(john.create(id=report_id))["links"]["self"]["href"]

    resolved = urlsplit(urljoin("https://host/api/reports/other", href)).path
    assert unquote(resolved.removeprefix("/api/reports/")) == report_id


def test_the_seeds_links_keep_their_colons(john):
    john.create(id="team:sales-dashboard")

    links = as_dict(john.call("EditReport", id="team:sales-dashboard"))["links"]

    assert links["self"] == {"href": "/api/reports/user:john.doe:sales-dashboard-draft"}


# ---------------------------------------------------------------------------
# The grammar
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "report_id", ["team:sales-dashboard", "a", "x" * 512, "team:a b?c#d/e%f", "team:名前-draftless"]
)
def test_ids_in_the_grammar_are_accepted(report_id):
    violations = Violations()

    check_new_report_id(violations, "report.id", report_id)
    assert not violations, list(violations)


def test_an_id_ending_in_draft_without_a_colon_is_an_ordinary_original(john):
    assert john.create(id="weekly-draft").id == "weekly-draft"
