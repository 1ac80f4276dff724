"""The write RPCs of both services as racers: a fresh world per round, each write's request and
a probe that says whether its effect is visible afterwards.

Which writes race each other is not listed here: tests/reliability/test_concurrency.py runs
each racer alone on a fresh world and diffs the store, and two racers race when the rows they
changed refer to a common id of the world (the footprint); the rows changed are also where the
test holds a lock to force an interleaving. What a pair may answer is not listed either: it is
what the two calls answer, and which effects stay visible, when run one after the other in
either order on fresh worlds (the serial oracle).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from cohort_service.v1 import catalog_pb2, catalog_service_pb2, draft_pb2, draft_service_pb2
from report_service.v1 import report_pb2, report_service_pb2
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of
from tests.support import bearer

ALICE = "user:alice"
TOKEN_REUSE_SECONDS = 300  # bearer() tokens live 600 s
BOB = "user:bob"


@dataclass
class World:
    """ids: what the racers address and what the footprint maps rows to; refs: other ids."""

    tag: str
    ids: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


class Caller:
    """Any RPC of a service, by name, as a principal."""

    def __init__(self, channel: grpc.Channel, service: str) -> None:
        self.channel = channel
        self.methods = {method.name: method for method in methods_of(DEFINITIONS[service])}
        self.tokens: dict[str, tuple[float, list]] = {}

    def __call__(self, principal: str, rpc: str, request, timeout: float = 30):
        minted, metadata = self.tokens.get(principal, (0.0, []))
        if time.monotonic() - minted > TOKEN_REUSE_SECONDS:  # long runs outlast a token
            self.tokens[principal] = (minted, metadata) = (time.monotonic(), bearer(principal))
        return invoke(self.channel, self.methods[rpc], request, metadata, timeout=timeout)

    def read(self, principal: str, rpc: str, request):
        """The response, or None when NOT_FOUND."""
        try:
            return self(principal, rpc, request)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise


Probe = Callable[[Caller, World, object], bool]


@dataclass(frozen=True)
class Racer:
    """One way of calling a write RPC: as principal, the request built on a world, and whether
    its effect is visible afterwards (given the call's response)."""

    rpc: str
    principal: str
    build: Callable[[World], object]
    probe: Probe


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


# ---------------------------------------------------------------------------
# report-service
# ---------------------------------------------------------------------------

_R = report_service_pb2


def _report_world(call: Caller, tag: str) -> World:
    world = World(tag)
    original = f"team:race-{tag}"
    call(
        ALICE,
        "CreateReport",
        _R.CreateReportRequest(
            report=report_pb2.Report(
                id=original,
                type="dashboard",
                name="Original",
                defn=_struct({"v": "original"}),
                datasets=[report_pb2.ReportDataset(dataset_id="orders", alias="o")],
            )
        ),
    )
    draft = call(ALICE, "EditReport", _R.EditReportRequest(id=original)).id
    call(ALICE, "UpdateReport", _update(draft, defn=_struct({"v": "draft"})))
    for report_id in (original, draft):
        call(
            ALICE,
            "UpdateUserReportSettings",
            _R.UpdateUserReportSettingsRequest(report_id=report_id, settings=_struct({"z": 0})),
        )
    # The original moves on after the draft was made: a rebase has work to do, a rollback a
    # revision to go back to.
    moved = call(ALICE, "UpdateReport", _update(original, name="Moved on"))
    first = call(
        ALICE, "ListReportRevisions", _R.ListReportRevisionsRequest(report_id=original)
    ).revisions[-1]
    world.ids.update(original=original, draft=draft, new=f"team:new-{tag}")
    world.refs.update(etag=moved.etag, first_revision=first.revision_id)
    return world


def _request_id(world: World) -> str:
    """The world's own request_id: every request built on the world repeats it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"race:{world.tag}"))


def _update(report_id: str, **fields) -> report_service_pb2.UpdateReportRequest:
    return _R.UpdateReportRequest(
        report=report_pb2.Report(id=report_id, **fields),
        update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
    )


def _defns(call: Caller, world: World) -> list[dict]:
    """The defn of the original and of alice's draft, of those that exist."""
    found = [
        call.read(ALICE, "GetReport", _R.GetReportRequest(id=world.ids["original"])),
        call.read(ALICE, "GetReportDraft", _R.GetReportDraftRequest(id=world.ids["original"])),
    ]
    return [dict(report.defn) for report in found if report is not None]


def _gone(rpc: str, request_of: Callable[[World], object], principal: str = ALICE) -> Probe:
    return lambda call, world, _: call.read(principal, rpc, request_of(world)) is None


def _settings_are(key: str, value: int) -> Probe:
    def probe(call: Caller, world: World, _) -> bool:
        settings = call.read(
            ALICE,
            "GetUserReportSettings",
            _R.GetUserReportSettingsRequest(report_id=world.ids[key]),
        )
        return settings is not None and dict(settings.settings) == {"z": value}

    return probe


REPORT_RACERS: dict[str, Racer] = {
    "CreateReport": Racer(
        "CreateReport",
        ALICE,
        lambda w: _R.CreateReportRequest(
            report=report_pb2.Report(id=w.ids["new"], type="table", name="New")
        ),
        lambda call, w, _: (
            call.read(ALICE, "GetReport", _R.GetReportRequest(id=w.ids["new"])) is not None
        ),
    ),
    "UpdateReport of the original": Racer(
        "UpdateReport",
        ALICE,
        lambda w: _update(
            w.ids["original"],
            name="Updated",
            datasets=[report_pb2.ReportDataset(dataset_id="updated")],
        ),
        lambda call, w, _: (
            getattr(
                call.read(ALICE, "GetReport", _R.GetReportRequest(id=w.ids["original"])),
                "name",
                None,
            )
            == "Updated"
        ),
    ),
    "UpdateReport of the draft": Racer(
        "UpdateReport",
        ALICE,
        lambda w: _update(w.ids["draft"], defn=_struct({"v": "updated draft"})),
        lambda call, w, _: {"v": "updated draft"} in _defns(call, w),
    ),
    "DeleteReport of the original": Racer(
        "DeleteReport",
        ALICE,
        lambda w: _R.DeleteReportRequest(id=w.ids["original"]),
        _gone("GetReport", lambda w: _R.GetReportRequest(id=w.ids["original"])),
    ),
    "DeleteReport of the draft": Racer(
        "DeleteReport",
        ALICE,
        lambda w: _R.DeleteReportRequest(id=w.ids["draft"]),
        _gone("GetReport", lambda w: _R.GetReportRequest(id=w.ids["draft"])),
    ),
    "EditReport of another principal": Racer(
        "EditReport",
        BOB,
        lambda w: _R.EditReportRequest(id=w.ids["original"]),
        lambda call, w, _: (
            call.read(BOB, "GetReportDraft", _R.GetReportDraftRequest(id=w.ids["original"]))
            is not None
        ),
    ),
    "PutReportDraft": Racer(
        "PutReportDraft",
        ALICE,
        lambda w: _R.PutReportDraftRequest(
            id=w.ids["original"], draft=report_pb2.ReportDraftInput(defn=_struct({"v": "put"}))
        ),
        lambda call, w, _: {"v": "put"} in _defns(call, w),
    ),
    "PutReportDraft of another principal": Racer(
        "PutReportDraft",
        BOB,
        lambda w: _R.PutReportDraftRequest(
            id=w.ids["original"], draft=report_pb2.ReportDraftInput(defn=_struct({"v": "bob"}))
        ),
        lambda call, w, _: (
            getattr(
                call.read(BOB, "GetReportDraft", _R.GetReportDraftRequest(id=w.ids["original"])),
                "defn",
                None,
            )
            == _struct({"v": "bob"})
        ),
    ),
    "DiscardReportDraft": Racer(
        "DiscardReportDraft",
        ALICE,
        lambda w: _R.DiscardReportDraftRequest(id=w.ids["original"]),
        _gone("GetReportDraft", lambda w: _R.GetReportDraftRequest(id=w.ids["original"])),
    ),
    "CommitReportDraft": Racer(
        "CommitReportDraft",
        ALICE,
        lambda w: _R.CommitReportDraftRequest(id=w.ids["original"]),
        lambda call, w, published: (
            (now := call.read(ALICE, "GetReport", _R.GetReportRequest(id=w.ids["original"])))
            is not None
            and now.defn == published.defn
        ),
    ),
    # Concurrent repeats: raced with itself, both answer the first commit (and are OK).
    "CommitReportDraft with a request_id": Racer(
        "CommitReportDraft",
        ALICE,
        lambda w: _R.CommitReportDraftRequest(id=w.ids["original"], request_id=_request_id(w)),
        lambda call, w, published: (
            (now := call.read(ALICE, "GetReport", _R.GetReportRequest(id=w.ids["original"])))
            is not None
            and now.defn == published.defn
        ),
    ),
    "UpdateUserReportSettings of the original": Racer(
        "UpdateUserReportSettings",
        ALICE,
        lambda w: _R.UpdateUserReportSettingsRequest(
            report_id=w.ids["original"], settings=_struct({"z": 1})
        ),
        _settings_are("original", 1),
    ),
    "UpdateUserReportSettings of the draft": Racer(
        "UpdateUserReportSettings",
        ALICE,
        lambda w: _R.UpdateUserReportSettingsRequest(
            report_id=w.ids["draft"], settings=_struct({"z": 2})
        ),
        _settings_are("draft", 2),
    ),
    # With the etag the world's original has: of two such writes, at most one goes through.
    "UpdateReport of the original with its etag": Racer(
        "UpdateReport",
        ALICE,
        lambda w: _R.UpdateReportRequest(
            report=report_pb2.Report(id=w.ids["original"], name="Guarded", etag=w.refs["etag"]),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        lambda call, w, _: _original(call, w, "name") == "Guarded",
    ),
    "CommitReportDraft with the original's etag": Racer(
        "CommitReportDraft",
        ALICE,
        lambda w: _R.CommitReportDraftRequest(id=w.ids["original"], etag=w.refs["etag"]),
        lambda call, w, published: _original(call, w, "etag") == published.etag,
    ),
    "RollbackReport": Racer(
        "RollbackReport",
        ALICE,
        lambda w: _R.RollbackReportRequest(
            id=w.ids["original"], revision_id=w.refs["first_revision"]
        ),
        lambda call, w, rolled_back: _original(call, w, "etag") == rolled_back.etag,
    ),
    "RebaseReportDraft": Racer(
        "RebaseReportDraft",
        ALICE,
        lambda w: _R.RebaseReportDraftRequest(id=w.ids["original"]),
        lambda call, w, rebased: (
            getattr(
                call.read(ALICE, "GetReportDraft", _R.GetReportDraftRequest(id=w.ids["original"])),
                "etag",
                None,
            )
            == rebased.draft.etag
        ),
    ),
}


def _original(call: Caller, world: World, field_name: str):
    found = call.read(ALICE, "GetReport", _R.GetReportRequest(id=world.ids["original"]))
    return getattr(found, field_name, None)


# ---------------------------------------------------------------------------
# cohort-service
# ---------------------------------------------------------------------------

_D = draft_service_pb2
_C = catalog_service_pb2


def _cohort_world(call: Caller, tag: str) -> World:
    """Alice's active draft (with a pending soft patch) and a dormant one a soft patch made."""
    world = World(tag)
    active = call(
        ALICE,
        "PatchCohortDraft",
        _D.PatchCohortDraftRequest(name=f"Active {tag}", description="before"),
    ).draft_id
    staged = call(
        ALICE,
        "PatchCohortDraft",
        _D.PatchCohortDraftRequest(
            draft_id=active, description="proposed", soft=True, idempotency_key=f"k2-{tag}"
        ),
    )
    world.refs["active_etag"] = staged.form_state.etag
    dormant = call(
        ALICE,
        "PatchCohortDraft",
        _D.PatchCohortDraftRequest(name=f"Proposed {tag}", soft=True, idempotency_key=f"k1-{tag}"),
    ).draft_id
    world.ids.update(
        active=active,
        dormant=dormant,
        k1=f"k1-{tag}",
        k2=f"k2-{tag}",
        k3=f"k3-{tag}",
        create_key=f"create-{tag}",
        department=f"Department {tag}",
        simulation=f"Simulation {tag}",
        profile=f"Profile {tag}",
        flag=f"flag_{tag}",
    )
    return world


def _draft(call: Caller, world: World, key: str) -> draft_pb2.DraftFormState | None:
    return call.read(ALICE, "GetCohortDraft", _D.GetCohortDraftRequest(draft_id=world.ids[key]))


def _shows(draft_key: str, text_field: str, value: str) -> Probe:
    def probe(call: Caller, world: World, _) -> bool:
        draft = _draft(call, world, draft_key)
        return draft is not None and getattr(draft, text_field).value == value

    return probe


def _pending(call: Caller, world: World, draft_key: str, proposal_key: str) -> bool:
    draft = _draft(call, world, draft_key)
    keys = {proposal.idempotency_key for proposal in draft.proposals} if draft else set()
    return world.ids[proposal_key] in keys


def _ack(draft_key: str, proposal_key: str, accept: bool) -> Callable[[World], object]:
    return lambda w: _D.PatchCohortDraftRequest(
        draft_id=w.ids[draft_key], idempotency_key=w.ids[proposal_key], accept=accept
    )


def _always(call: Caller, world: World, response) -> bool:
    return True  # the store's unique index decides; the answers are what the oracle compares


COHORT_RACERS: dict[str, Racer] = {
    "PatchCohortDraft of the active draft": Racer(
        "PatchCohortDraft",
        ALICE,
        lambda w: _D.PatchCohortDraftRequest(draft_id=w.ids["active"], name="Patched"),
        _shows("active", "name", "Patched"),
    ),
    # With the etag the world's draft has: of two such writes, at most one goes through.
    "PatchCohortDraft of the active draft with its etag": Racer(
        "PatchCohortDraft",
        ALICE,
        lambda w: _D.PatchCohortDraftRequest(
            draft_id=w.ids["active"], name="Guarded", etag=w.refs["active_etag"]
        ),
        _shows("active", "name", "Guarded"),
    ),
    "PatchCohortDraft of the dormant draft": Racer(
        "PatchCohortDraft",
        ALICE,
        lambda w: _D.PatchCohortDraftRequest(draft_id=w.ids["dormant"], name="Woken"),
        _shows("dormant", "name", "Woken"),
    ),
    "PatchCohortDraft soft on the active draft": Racer(
        "PatchCohortDraft",
        ALICE,
        lambda w: _D.PatchCohortDraftRequest(
            draft_id=w.ids["active"], description="staged", soft=True, idempotency_key=w.ids["k3"]
        ),
        lambda call, w, _: _pending(call, w, "active", "k3"),
    ),
    "PatchCohortDraft creating a draft with a key": Racer(
        "PatchCohortDraft",
        ALICE,
        lambda w: _D.PatchCohortDraftRequest(name="Created", idempotency_key=w.ids["create_key"]),
        lambda call, w, created: (
            call.read(ALICE, "GetCohortDraft", _D.GetCohortDraftRequest(draft_id=created.draft_id))
            is not None
        ),
    ),
    "PatchCohortDraft accepting the active draft's proposal": Racer(
        "PatchCohortDraft",
        ALICE,
        _ack("active", "k2", True),
        _shows("active", "description", "proposed"),
    ),
    "PatchCohortDraft rejecting the active draft's proposal": Racer(
        "PatchCohortDraft",
        ALICE,
        _ack("active", "k2", False),
        lambda call, w, _: not _pending(call, w, "active", "k2"),
    ),
    "PatchCohortDraft accepting the proposal that made the dormant draft": Racer(
        "PatchCohortDraft",
        ALICE,
        _ack("dormant", "k1", True),
        lambda call, w, _: (
            getattr(_draft(call, w, "dormant"), "state", None) == draft_pb2.DRAFT_STATE_ACTIVE
        ),
    ),
    "PatchCohortDraft rejecting the proposal that made the dormant draft": Racer(
        "PatchCohortDraft",
        ALICE,
        _ack("dormant", "k1", False),
        lambda call, w, _: _draft(call, w, "dormant") is None,
    ),
    "DeleteCohortDraft of the active draft": Racer(
        "DeleteCohortDraft",
        ALICE,
        lambda w: _D.DeleteCohortDraftRequest(draft_id=w.ids["active"]),
        lambda call, w, _: _draft(call, w, "active") is None,
    ),
    "DeleteCohortDraft of the dormant draft": Racer(
        "DeleteCohortDraft",
        ALICE,
        lambda w: _D.DeleteCohortDraftRequest(draft_id=w.ids["dormant"]),
        lambda call, w, _: _draft(call, w, "dormant") is None,
    ),
    "CreateDepartment": Racer(
        "CreateDepartment",
        ALICE,
        lambda w: _C.CreateDepartmentRequest(name=w.ids["department"]),
        _always,
    ),
    "CreateSimulation": Racer(
        "CreateSimulation",
        ALICE,
        lambda w: _C.CreateSimulationRequest(name=w.ids["simulation"]),
        _always,
    ),
    "CreateProfile": Racer(
        "CreateProfile", ALICE, lambda w: _C.CreateProfileRequest(name=w.ids["profile"]), _always
    ),
    "CreateFlag": Racer(
        "CreateFlag",
        ALICE,
        lambda w: _C.CreateFlagRequest(
            key=w.ids["flag"],
            type=catalog_pb2.FLAG_TYPE_SINGLE_SELECT,
            options=[catalog_pb2.FlagOption(value="a", label="A")],
        ),
        _always,
    ),
}

RACERS: dict[str, dict[str, Racer]] = {"cohort": COHORT_RACERS, "report": REPORT_RACERS}
WORLDS: dict[str, Callable[[Caller, str], World]] = {
    "cohort": _cohort_world,
    "report": _report_world,
}


def new_world(call: Caller, service: str) -> World:
    return WORLDS[service](call, uuid.uuid4().hex[:10])
