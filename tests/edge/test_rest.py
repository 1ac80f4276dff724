"""REST/JSON through the edge at the seeds' paths: the report workflow exactly as the seed's
"Workflow Example" reads, the cohort seed's request table, ids that need escaping, responses
in the proto JSON mapping, and errors as JSON google.rpc.Status with their HTTP codes."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import grpc
import httpx
import pytest

from draft_edge import descriptors
from tests.edge.support import auth
from tests.support import watch_log

REPORT_DOMAIN = "report-service"
VISUALS = [{"type": "bar", "title": "Revenue by region", "query": "q-1"}]
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def path_id(report_id: str) -> str:
    """A report id as one path segment: every character but the unreserved escaped."""
    return quote(report_id, safe="")


def error_info(body: dict) -> dict:
    (info,) = [d for d in body["details"] if d["@type"] == ERROR_INFO]
    return info


def create_report(http: httpx.Client, report_id: str, **fields) -> dict:
    report = {"id": report_id, "type": "dashboard", "name": "Sales Dashboard", **fields}
    created = http.post("/api/reports", json=report, headers=auth("user:ann"))
    assert created.status_code == 200, created.text
    return created.json()


# ---------------------------------------------------------------------------
# The report seed
# ---------------------------------------------------------------------------


def test_the_seeds_report_workflow_example_step_by_step_over_http(edge):
    john = auth("user:john.doe")
    with edge.client() as http:
        create_report(http, "team:sales-dashboard")  # the report the seed's example edits

        # 1. Create draft
        draft = http.post("/api/reports/team:sales-dashboard/_edit", headers=john)
        assert draft.status_code == 200, draft.text
        assert draft.json()["id"] == "user:john.doe:sales-dashboard-draft"  # "Returns: ..."
        assert draft.json()["editingId"] == "team:sales-dashboard"
        assert draft.json()["ownerId"] == "user:john.doe"  # the caller, not the original's owner
        assert (draft.json()["type"], draft.json()["name"]) == ("dashboard", "Sales Dashboard")
        assert draft.json()["defn"] == {}
        assert draft.json()["createdAt"].endswith("Z")

        # 2. Make changes to draft
        changed = http.put(
            "/api/reports/user:john.doe:sales-dashboard-draft",
            json={"defn": {"visuals": VISUALS}},
            headers=john,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["defn"] == {"visuals": VISUALS}

        # 3. Commit draft: the original now has the changes
        committed = http.post("/api/reports/team:sales-dashboard/draft/_commit", headers=john)
        assert committed.status_code == 200, committed.text
        original = committed.json()
        assert original["id"] == "team:sales-dashboard"
        assert original["defn"] == {"visuals": VISUALS}
        assert original["defnUpdatedAt"] == original["updatedAt"]
        assert http.get("/api/reports/team:sales-dashboard", headers=john).json() == original
        gone = http.get("/api/reports/team:sales-dashboard/draft", headers=john)
        assert gone.status_code == 404
        assert error_info(gone.json())["reason"] == "DRAFT_NOT_FOUND"

        # OR: Discard draft: changes are lost, original unchanged
        http.post("/api/reports/team:sales-dashboard/_edit", headers=john)
        http.put(
            "/api/reports/user:john.doe:sales-dashboard-draft",
            json={"defn": {"visuals": []}},
            headers=john,
        )
        discarded = http.delete("/api/reports/team:sales-dashboard/draft", headers=john)
        assert discarded.status_code == 200  # the seed's 204 cannot be expressed: README
        assert discarded.json() == {}
        assert http.get("/api/reports/team:sales-dashboard", headers=john).json() == original
        assert http.get("/api/reports/team:sales-dashboard/draft", headers=john).status_code == 404


def test_get_and_put_draft_take_the_seeds_body_and_print_defaults_in_camel_case(edge):
    jane = auth("user:jane")
    with edge.client() as http:
        create_report(http, "team:ops-board", templateId="template-1")
        body = {  # the seed's PUT /api/reports/{id}/draft request body, as it reads
            "defn": {"visuals": []},
            "templateId": "template-123",
            "datasourceId": "mysql-prod",
            "queryId": None,
            "settings": {},
        }
        created = http.put("/api/reports/team:ops-board/draft", json=body, headers=jane)
        assert created.status_code == 200, created.text  # not the seed's 201: README
        assert created.json()["created"] is True
        draft = created.json()["report"]
        assert draft["id"] == "user:jane:ops-board-draft"
        assert (draft["templateId"], draft["datasourceId"]) == ("template-123", "mysql-prod")
        assert "queryId" not in draft  # null: unset, as the original's
        # Fields at their defaults are printed, with the proto JSON mapping's camelCase names.
        assert draft["enableFilter"] is False
        assert draft["datasets"] == []
        assert draft["snapshot"] == {"enabled": False, "schedule": "", "retainCount": 0}
        replaced = http.put(
            "/api/reports/team:ops-board/draft", json={"defn": {"a": 1}}, headers=jane
        )
        assert replaced.json()["created"] is False
        fetched = http.get("/api/reports/team:ops-board/draft", headers=jane)
        assert fetched.status_code == 200
        assert fetched.json() == replaced.json()["report"]
        assert fetched.json()["defn"] == {"a": 1}


@pytest.mark.parametrize(
    "original",
    [
        "team:q1:sales",  # a `:` after the first: in the last segment of the draft's id too
        "team:q1/sales 50%?#é",  # `/`, space, `%`, `?`, `#`, non-ASCII: percent-escaped
        "plain",
    ],
)
def test_ids_with_colons_and_escapes_reach_every_report_path(edge, original):
    sub = f"user:{uuid.uuid4().hex[:8]}"
    headers = auth(sub)
    with edge.client() as http:
        create_report(http, original)
        for written in {path_id(original), quote(original, safe=":")}:  # `:` escaped or not
            assert http.get(f"/api/reports/{written}", headers=headers).json()["id"] == original
        draft = http.post(f"/api/reports/{path_id(original)}/_edit", headers=headers).json()
        assert draft["editingId"] == original
        assert draft["id"].startswith(f"{sub}:")  # e.g. user:x:~team%3Aq1%3Asales-draft
        # The draft's own id, colons and `%` in its last segment, at GET and PUT /api/reports/{id}
        for written in {path_id(draft["id"]), quote(draft["id"], safe=":")}:
            fetched = http.get(f"/api/reports/{written}", headers=headers)
            assert fetched.status_code == 200, fetched.text
            assert fetched.json()["id"] == draft["id"]
        updated = http.put(
            f"/api/reports/{path_id(draft['id'])}", json={"name": "Renamed"}, headers=headers
        )
        assert updated.json()["name"] == "Renamed"
        settings = http.put(
            f"/api/reports/{path_id(draft['id'])}/user-settings",
            json={"zoom": 2},
            headers=headers,
        )
        assert settings.status_code == 200, settings.text
        assert settings.json()["settings"] == {"zoom": 2}
        committed = http.post(f"/api/reports/{path_id(original)}/draft/_commit", headers=headers)
        assert committed.json()["name"] == "Renamed"
        activities = http.get(f"/api/reports/{path_id(original)}/activities", headers=headers)
        assert [a["type"] for a in activities.json()["activities"]] == ["reportUpdated"]
        assert http.delete(f"/api/reports/{path_id(original)}", headers=headers).json() == {}
        assert http.get(f"/api/reports/{path_id(original)}", headers=headers).status_code == 404


# ---------------------------------------------------------------------------
# The cohort seed
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(edge) -> dict[str, str]:
    """Reference data for the cohort requests, created over REST; name -> id."""
    admin = auth("user:admin", ("catalog:write", "cohort:read"))
    found = {}
    with edge.client() as http:
        for path, name in (
            ("/cohort/departments", "Sales"),
            ("/cohort/departments", "Finance"),
            ("/cohort/simulations", "Onboarding Call"),
            ("/cohort/profiles", "Account Executive"),
        ):
            created = http.post(path, json={"name": name}, headers=admin)
            assert created.status_code == 200, created.text
            found[name] = created.json()["id"]
        flag = http.post(
            "/cohort/flags",
            json={"key": "priority", "type": "FLAG_TYPE_SINGLE_SELECT",
                  "options": [{"value": "high", "label": "High"}]},
            headers=admin,
        )  # fmt: skip
        assert flag.status_code == 200, flag.text
        found["priority=high"] = flag.json()["options"][0]["id"]
        listed = http.get("/cohort/departments", params={"pageSize": 10}, headers=admin)
        assert {d["name"] for d in listed.json()["departments"]} == {"Sales", "Finance"}
    return found


def test_the_cohort_seeds_request_table_as_json_with_an_idempotent_retry(edge, catalog):
    headers = auth(f"user:{uuid.uuid4().hex[:8]}", ("cohort:read", "cohort:write"))
    request = {  # the seed's PatchCohortDraftApiRequest, in its own snake_case names
        "name": "Q3 onboarding",
        "description": "New hires of the quarter",
        "flag_ids": [catalog["priority=high"]],
        "active": True,
        "departments": ["sales", " Finance "],
        "simulations": ["Onboarding Call"],
        "profile_ids": [catalog["Account Executive"]],
        "simulation_positions": [{"simulation": "Onboarding Call", "title": "Caller"}],
        "simulation_availability": [
            {
                "simulation": "Onboarding Call",
                "start_time": "2026-07-01T09:00:00Z",
                "end_time": "2026-07-01T17:00:00Z",
            }
        ],
        "profile_personas": [{"profile": "Account Executive", "persona": "Hunter"}],
        "idempotency_key": "seed-k-1",
    }
    with edge.client() as http:
        first = http.post("/cohort/draft", json=request, headers=headers)
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["success"] is True
        assert answer["idempotencyKey"] == "seed-k-1"
        assert uuid.UUID(answer["draftId"])
        form = answer["formState"]
        assert form["state"] == "DRAFT_STATE_ACTIVE"
        assert form["name"]["value"] == "Q3 onboarding"
        assert form["active"] is True
        assert {d["name"] for d in form["departments"]} == {"Sales", "Finance"}
        assert [p["title"] for p in form["simulationPositions"]] == ["Caller"]
        assert form["simulationAvailability"][0]["startTime"] == "2026-07-01T09:00:00Z"
        assert [p["persona"] for p in form["profilePersonas"]] == ["Hunter"]
        assert {f["value"] for f in form["flags"]} == {"high", "true"}

        retried = http.post("/cohort/draft", json=request, headers=headers)
        assert retried.json() == answer  # the first response again, nothing applied twice
        listed = http.get("/cohort/drafts", headers=headers).json()["drafts"]
        assert [d["draftId"] for d in listed] == [answer["draftId"]]

        # The same request in the proto JSON mapping's camelCase names, patching the draft
        camel = http.post(
            "/cohort/draft",
            json={"draftId": answer["draftId"], "departmentIds": [catalog["Sales"]],
                  "pendingIds": [catalog["Sales"]], "idempotencyKey": "seed-k-2"},
            headers=headers,
        )  # fmt: skip
        assert camel.status_code == 200, camel.text
        departments = camel.json()["formState"]["departments"]
        assert departments == [{"id": catalog["Sales"], "name": "Sales", "pending": True}]
        # The legacy alias of draft_id, as the seed lists it
        legacy = http.post(
            "/cohort/draft",
            json={"input_draft_id": answer["draftId"], "description": "Renamed"},
            headers=headers,
        )
        assert legacy.json()["draftId"] == answer["draftId"]
        fetched = http.get(f"/cohort/draft/{answer['draftId']}", headers=headers).json()
        assert fetched["description"]["value"] == "Renamed"
        assert fetched["revision"] == "3"  # int64: a JSON string, as the mapping says
        assert http.delete(f"/cohort/draft/{answer['draftId']}", headers=headers).json() == {}
        assert http.get(f"/cohort/draft/{answer['draftId']}", headers=headers).status_code == 404


def test_a_soft_proposal_over_http_leaves_the_form_until_its_ack_accepts_it(edge, catalog):
    headers = auth(f"user:{uuid.uuid4().hex[:8]}", ("cohort:read", "cohort:write"))
    with edge.client() as http:
        live = http.post("/cohort/draft", json={"name": "Live"}, headers=headers).json()
        draft_id = live["draftId"]
        staged = http.post(
            "/cohort/draft",
            json={"draft_id": draft_id, "soft": True, "name": "Proposed",
                  "idempotency_key": "soft-1"},
            headers=headers,
        )  # fmt: skip
        assert staged.status_code == 200, staged.text
        assert staged.json()["formState"]["state"] == "DRAFT_STATE_DORMANT"
        assert staged.json()["formState"]["name"]["value"] == "Proposed"
        form = http.get(f"/cohort/draft/{draft_id}", headers=headers).json()
        assert form["name"]["value"] == "Live"
        assert [p["idempotencyKey"] for p in form["proposals"]] == ["soft-1"]

        ack = http.post(
            "/cohort/draft", json={"idempotency_key": "soft-1", "accept": True}, headers=headers
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["draftId"] == draft_id
        form = http.get(f"/cohort/draft/{draft_id}", headers=headers).json()
        assert form["name"]["value"] == "Proposed"
        assert form["proposals"] == []
        opposite = http.post(
            "/cohort/draft", json={"idempotency_key": "soft-1", "accept": False}, headers=headers
        )
        assert opposite.status_code == 400  # FAILED_PRECONDITION: Google's mapping says 400
        assert opposite.json()["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def _failed(answer: httpx.Response, http_status: int, code: grpc.StatusCode) -> dict:
    assert answer.status_code == http_status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["code"] == code.value[0]
    assert body["message"]
    return body


def test_invalid_argument_is_400_with_the_bad_request_naming_each_field(edge):
    with edge.client() as http:
        answer = http.post(
            "/api/reports",
            json={"id": "team:bad", "type": "dashboard", "name": ""},
            headers=auth(),
        )
        body = _failed(answer, 400, grpc.StatusCode.INVALID_ARGUMENT)
        (bad,) = [d for d in body["details"] if d["@type"] == BAD_REQUEST]
        assert [v["field"] for v in bad["fieldViolations"]] == ["report.name"]
        assert error_info(body)["domain"] == REPORT_DOMAIN
        assert http.get("/api/reports/team:bad", headers=auth()).status_code == 404  # unchanged


def test_failed_precondition_is_400_with_its_reason(edge):
    headers = auth("user:fp")
    with edge.client() as http:
        create_report(http, "team:fp")
        draft = http.post("/api/reports/team:fp/_edit", headers=headers).json()
        answer = http.post(f"/api/reports/{path_id(draft['id'])}/_edit", headers=headers)
        body = _failed(answer, 400, grpc.StatusCode.FAILED_PRECONDITION)
        assert error_info(body)["reason"] == "REPORT_IS_DRAFT"


def test_no_token_is_401_and_the_token_is_what_the_service_sees(edge):
    with edge.client() as http:
        body = _failed(http.get("/api/reports"), 401, grpc.StatusCode.UNAUTHENTICATED)
        assert error_info(body)["domain"] == REPORT_DOMAIN
        forged = {"authorization": "Bearer " + auth()["authorization"].split()[1][:-4] + "AAAA"}
        _failed(http.get("/api/reports", headers=forged), 401, grpc.StatusCode.UNAUTHENTICATED)
        # The bearer token reaches the service unchanged: its subject owns what it creates.
        created = http.post(
            "/api/reports",
            json={"id": "team:owned", "type": "dashboard", "name": "Owned"},
            headers=auth("user:owner-7"),
        )
        assert created.json()["ownerId"] == "user:owner-7"


def test_a_missing_permission_is_403(edge):
    with edge.client() as http:
        answer = http.put(
            "/api/reports/team:any/draft", json={}, headers=auth("user:r", ("report:read",))
        )
        body = _failed(answer, 403, grpc.StatusCode.PERMISSION_DENIED)
        assert error_info(body)["domain"] == REPORT_DOMAIN


def test_not_found_is_404_with_its_reason_and_the_id(edge):
    with edge.client() as http:
        answer = http.get("/api/reports/team:nowhere", headers=auth())
        info = error_info(_failed(answer, 404, grpc.StatusCode.NOT_FOUND))
        assert info["reason"] == "REPORT_NOT_FOUND"


def test_already_exists_is_409_with_its_reason(edge):
    with edge.client() as http:
        create_report(http, "team:twice")
        answer = http.post(
            "/api/reports",
            json={"id": "team:twice", "type": "dashboard", "name": "Again"},
            headers=auth(),
        )
        info = error_info(_failed(answer, 409, grpc.StatusCode.ALREADY_EXISTS))
        assert info["reason"] == "REPORT_ALREADY_EXISTS"


def test_a_request_over_the_services_message_limit_is_429(edge):
    big = {"id": "team:big", "type": "dashboard", "name": "Big", "defn": {"x": "a" * (5 << 20)}}
    with edge.client() as http:
        answer = http.post("/api/reports", json=big, headers=auth())
        _failed(answer, 429, grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert http.get("/api/reports/team:big", headers=auth()).status_code == 404


def test_a_deadline_the_client_sets_is_504(edge):
    with edge.client() as http:
        answer = http.get("/api/reports", headers={**auth(), "grpc-timeout": "1n"})
        _failed(answer, 504, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.parametrize(
    ("method", "path", "content", "said"),
    [
        ("POST", "/api/reports", b'{"report": ', "Unexpected end of string"),
        ("GET", "/api/reports?colour=red", None, "colour"),
        ("GET", "/api/nowhere", None, "/api/nowhere"),
        ("PATCH", "/api/reports/x", None, "/api/reports/x"),
    ],
)
def test_what_the_edge_itself_refuses_is_a_json_status_too(edge, method, path, content, said):
    with edge.client() as http:
        answer = http.request(method, path, content=content, headers=auth())
        not_found = answer.status_code == 404
        code = grpc.StatusCode.NOT_FOUND if not_found else grpc.StatusCode.INVALID_ARGUMENT
        assert answer.status_code in (400, 404)
        assert said in _failed(answer, answer.status_code, code)["message"]


# ---------------------------------------------------------------------------
# Every RPC
# ---------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")
PROBE_ID = "team:probe/é:x"
# A watch stays open while what it watches exists: query parameters that make each end at
# once (NOT_FOUND), so that its response is complete. WatchReport's probe id names nothing.
_ENDS_AT_ONCE = {"WatchCohortDrafts": {"draftId": "00000000-0000-0000-0000-000000000000"}}


@pytest.mark.parametrize(
    ("rpc", "binding"),
    [(rpc, binding) for rpc in descriptors.rpcs() for binding in rpc.http],
    ids=lambda value: getattr(value, "method", None) or f"{value.verb} {value.template}",
)
def test_every_rpcs_annotated_path_reaches_that_rpc(edge, rpc, binding):
    path = _VARIABLE.sub(path_id(PROBE_ID), binding.template)
    content = b"{}" if binding.body else None
    with watch_log("shared.access") as access, edge.client() as http:
        params = _ENDS_AT_ONCE.get(rpc.method) if rpc.server_streaming else None
        answer = http.request(binding.verb, path, params=params, content=content, headers=auth())
        access.wait_for(f"method={rpc.path} ")
    assert answer.headers["content-type"] == "application/json"
    answer.json()  # a response, or the service's own error, in JSON
