"""ListReportActivities, and each user's own view settings (GetUserReportSettings/Update...)."""

from __future__ import annotations

from report_service.v1 import report_pb2
from tests.report_service.support import as_dict, struct

ORIGINAL = "team:sales-dashboard"


def _commit_renamed(client, name: str) -> None:
    draft = client.call("EditReport", id=ORIGINAL)
    client.call("UpdateReport", report=report_pb2.Report(id=draft.id, name=name))
    client.call("CommitReportDraft", id=ORIGINAL)


def test_list_report_activities_returns_them_newest_first_page_by_page(john):
    john.create()
    for name in ("First", "Second", "Third"):
        _commit_renamed(john, name)

    first = john.call("ListReportActivities", report_id=ORIGINAL, page_size=2)
    second = john.call(
        "ListReportActivities", report_id=ORIGINAL, page_size=2, page_token=first.next_page_token
    )

    names = [a.details["name"] for a in (*first.activities, *second.activities)]
    assert names == ["Third", "Second", "First"]
    assert second.next_page_token == ""
    assert len({a.id for a in (*first.activities, *second.activities)}) == 3


def test_a_report_without_commits_and_a_draft_have_no_activities(john):
    john.create()
    draft = john.call("EditReport", id=ORIGINAL)

    for report_id in (ORIGINAL, draft.id):
        response = john.call("ListReportActivities", report_id=report_id)
        assert list(response.activities) == [] and response.next_page_token == ""


def test_user_settings_are_empty_until_set_and_private_to_each_user(john, alice, bob):
    john.create()

    empty = alice.call("GetUserReportSettings", report_id=ORIGINAL)
    saved = alice.call(
        "UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"collapsed": ["p1"]})
    )
    replaced = alice.call(
        "UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"zoom": 2})
    )

    assert as_dict(empty) == {"reportId": ORIGINAL, "userId": "user:alice", "settings": {}}
    assert as_dict(saved)["settings"] == {"collapsed": ["p1"]}
    assert alice.call("GetUserReportSettings", report_id=ORIGINAL) == replaced
    assert as_dict(replaced)["settings"] == {"zoom": 2}
    assert as_dict(bob.call("GetUserReportSettings", report_id=ORIGINAL))["settings"] == {}


def test_a_user_may_keep_settings_for_their_own_draft(john):
    john.create()
    draft = john.call("EditReport", id=ORIGINAL)

    john.call("UpdateUserReportSettings", report_id=draft.id, settings=struct({"zoom": 1}))

    settings = john.call("GetUserReportSettings", report_id=draft.id)
    assert as_dict(settings)["settings"] == {"zoom": 1}
