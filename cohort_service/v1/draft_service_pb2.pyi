from cohort_service.v1 import draft_pb2 as _draft_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from shared.v1 import auth_pb2 as _auth_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PatchCohortDraftRequest(_message.Message):
    __slots__ = ("draft_id", "input_draft_id", "name", "name_id", "description", "description_id", "flag_ids", "active", "department_ids", "departments", "simulation_ids", "simulations", "profile_ids", "profiles", "simulation_position_ids", "simulation_positions", "simulation_availability_ids", "simulation_availability", "profile_persona_ids", "profile_personas", "pending_ids", "idempotency_key", "soft", "accept", "update_mask")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_IDS_FIELD_NUMBER: _ClassVar[int]
    SIMULATIONS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_POSITION_IDS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_AVAILABILITY_IDS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PERSONA_IDS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PERSONAS_FIELD_NUMBER: _ClassVar[int]
    PENDING_IDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    input_draft_id: str
    name: str
    name_id: str
    description: str
    description_id: str
    flag_ids: _containers.RepeatedScalarFieldContainer[str]
    active: bool
    department_ids: _containers.RepeatedScalarFieldContainer[str]
    departments: _containers.RepeatedScalarFieldContainer[str]
    simulation_ids: _containers.RepeatedScalarFieldContainer[str]
    simulations: _containers.RepeatedScalarFieldContainer[str]
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    profiles: _containers.RepeatedScalarFieldContainer[str]
    simulation_position_ids: _containers.RepeatedScalarFieldContainer[str]
    simulation_positions: _containers.RepeatedCompositeFieldContainer[_draft_pb2.DraftSimulationPositionValue]
    simulation_availability_ids: _containers.RepeatedScalarFieldContainer[str]
    simulation_availability: _containers.RepeatedCompositeFieldContainer[_draft_pb2.DraftSimulationAvailabilityValue]
    profile_persona_ids: _containers.RepeatedScalarFieldContainer[str]
    profile_personas: _containers.RepeatedCompositeFieldContainer[_draft_pb2.DraftProfilePersonaValue]
    pending_ids: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    soft: bool
    accept: bool
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, draft_id: _Optional[str] = ..., input_draft_id: _Optional[str] = ..., name: _Optional[str] = ..., name_id: _Optional[str] = ..., description: _Optional[str] = ..., description_id: _Optional[str] = ..., flag_ids: _Optional[_Iterable[str]] = ..., active: _Optional[bool] = ..., department_ids: _Optional[_Iterable[str]] = ..., departments: _Optional[_Iterable[str]] = ..., simulation_ids: _Optional[_Iterable[str]] = ..., simulations: _Optional[_Iterable[str]] = ..., profile_ids: _Optional[_Iterable[str]] = ..., profiles: _Optional[_Iterable[str]] = ..., simulation_position_ids: _Optional[_Iterable[str]] = ..., simulation_positions: _Optional[_Iterable[_Union[_draft_pb2.DraftSimulationPositionValue, _Mapping]]] = ..., simulation_availability_ids: _Optional[_Iterable[str]] = ..., simulation_availability: _Optional[_Iterable[_Union[_draft_pb2.DraftSimulationAvailabilityValue, _Mapping]]] = ..., profile_persona_ids: _Optional[_Iterable[str]] = ..., profile_personas: _Optional[_Iterable[_Union[_draft_pb2.DraftProfilePersonaValue, _Mapping]]] = ..., pending_ids: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ..., soft: _Optional[bool] = ..., accept: _Optional[bool] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class PatchCohortDraftResponse(_message.Message):
    __slots__ = ("success", "draft_id", "idempotency_key", "message", "form_state")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FORM_STATE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    draft_id: str
    idempotency_key: str
    message: str
    form_state: _draft_pb2.DraftFormState
    def __init__(self, success: _Optional[bool] = ..., draft_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., message: _Optional[str] = ..., form_state: _Optional[_Union[_draft_pb2.DraftFormState, _Mapping]] = ...) -> None: ...

class GetCohortDraftRequest(_message.Message):
    __slots__ = ("draft_id",)
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    def __init__(self, draft_id: _Optional[str] = ...) -> None: ...

class ListCohortDraftsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "include_dormant")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DORMANT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    include_dormant: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_dormant: _Optional[bool] = ...) -> None: ...

class ListCohortDraftsResponse(_message.Message):
    __slots__ = ("drafts", "next_page_token")
    DRAFTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drafts: _containers.RepeatedCompositeFieldContainer[_draft_pb2.DraftFormState]
    next_page_token: str
    def __init__(self, drafts: _Optional[_Iterable[_Union[_draft_pb2.DraftFormState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCohortDraftRequest(_message.Message):
    __slots__ = ("draft_id",)
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    def __init__(self, draft_id: _Optional[str] = ...) -> None: ...
