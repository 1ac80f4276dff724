import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DraftState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRAFT_STATE_UNSPECIFIED: _ClassVar[DraftState]
    DRAFT_STATE_ACTIVE: _ClassVar[DraftState]
    DRAFT_STATE_DORMANT: _ClassVar[DraftState]
DRAFT_STATE_UNSPECIFIED: DraftState
DRAFT_STATE_ACTIVE: DraftState
DRAFT_STATE_DORMANT: DraftState

class DraftSimulationPositionValue(_message.Message):
    __slots__ = ("simulation_id", "simulation", "title", "description")
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    simulation_id: str
    simulation: str
    title: str
    description: str
    def __init__(self, simulation_id: _Optional[str] = ..., simulation: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DraftSimulationAvailabilityValue(_message.Message):
    __slots__ = ("simulation_id", "simulation", "start_time", "end_time")
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    simulation_id: str
    simulation: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, simulation_id: _Optional[str] = ..., simulation: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DraftProfilePersonaValue(_message.Message):
    __slots__ = ("profile_id", "profile", "persona", "description")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    profile: str
    persona: str
    description: str
    def __init__(self, profile_id: _Optional[str] = ..., profile: _Optional[str] = ..., persona: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DraftTextItem(_message.Message):
    __slots__ = ("id", "value", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    value: str
    pending: bool
    def __init__(self, id: _Optional[str] = ..., value: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftFlagItem(_message.Message):
    __slots__ = ("flag_id", "flag_key", "option_id", "value", "pending")
    FLAG_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_KEY_FIELD_NUMBER: _ClassVar[int]
    OPTION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    flag_id: str
    flag_key: str
    option_id: str
    value: str
    pending: bool
    def __init__(self, flag_id: _Optional[str] = ..., flag_key: _Optional[str] = ..., option_id: _Optional[str] = ..., value: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftCatalogItem(_message.Message):
    __slots__ = ("id", "name", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    pending: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftSimulationPositionItem(_message.Message):
    __slots__ = ("id", "simulation_id", "simulation", "title", "description", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    simulation_id: str
    simulation: str
    title: str
    description: str
    pending: bool
    def __init__(self, id: _Optional[str] = ..., simulation_id: _Optional[str] = ..., simulation: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftSimulationAvailabilityItem(_message.Message):
    __slots__ = ("id", "simulation_id", "simulation", "start_time", "end_time", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    simulation_id: str
    simulation: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    pending: bool
    def __init__(self, id: _Optional[str] = ..., simulation_id: _Optional[str] = ..., simulation: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftProfilePersonaItem(_message.Message):
    __slots__ = ("id", "profile_id", "profile", "persona", "description", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    profile_id: str
    profile: str
    persona: str
    description: str
    pending: bool
    def __init__(self, id: _Optional[str] = ..., profile_id: _Optional[str] = ..., profile: _Optional[str] = ..., persona: _Optional[str] = ..., description: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class DraftProposal(_message.Message):
    __slots__ = ("idempotency_key", "create_time")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, idempotency_key: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DraftFormState(_message.Message):
    __slots__ = ("draft_id", "state", "revision", "name", "description", "active", "flags", "departments", "simulations", "profiles", "simulation_positions", "simulation_availability", "profile_personas", "pending_ids", "proposals", "update_time")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    SIMULATIONS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PERSONAS_FIELD_NUMBER: _ClassVar[int]
    PENDING_IDS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    state: DraftState
    revision: int
    name: DraftTextItem
    description: DraftTextItem
    active: bool
    flags: _containers.RepeatedCompositeFieldContainer[DraftFlagItem]
    departments: _containers.RepeatedCompositeFieldContainer[DraftCatalogItem]
    simulations: _containers.RepeatedCompositeFieldContainer[DraftCatalogItem]
    profiles: _containers.RepeatedCompositeFieldContainer[DraftCatalogItem]
    simulation_positions: _containers.RepeatedCompositeFieldContainer[DraftSimulationPositionItem]
    simulation_availability: _containers.RepeatedCompositeFieldContainer[DraftSimulationAvailabilityItem]
    profile_personas: _containers.RepeatedCompositeFieldContainer[DraftProfilePersonaItem]
    pending_ids: _containers.RepeatedScalarFieldContainer[str]
    proposals: _containers.RepeatedCompositeFieldContainer[DraftProposal]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, draft_id: _Optional[str] = ..., state: _Optional[_Union[DraftState, str]] = ..., revision: _Optional[int] = ..., name: _Optional[_Union[DraftTextItem, _Mapping]] = ..., description: _Optional[_Union[DraftTextItem, _Mapping]] = ..., active: _Optional[bool] = ..., flags: _Optional[_Iterable[_Union[DraftFlagItem, _Mapping]]] = ..., departments: _Optional[_Iterable[_Union[DraftCatalogItem, _Mapping]]] = ..., simulations: _Optional[_Iterable[_Union[DraftCatalogItem, _Mapping]]] = ..., profiles: _Optional[_Iterable[_Union[DraftCatalogItem, _Mapping]]] = ..., simulation_positions: _Optional[_Iterable[_Union[DraftSimulationPositionItem, _Mapping]]] = ..., simulation_availability: _Optional[_Iterable[_Union[DraftSimulationAvailabilityItem, _Mapping]]] = ..., profile_personas: _Optional[_Iterable[_Union[DraftProfilePersonaItem, _Mapping]]] = ..., pending_ids: _Optional[_Iterable[str]] = ..., proposals: _Optional[_Iterable[_Union[DraftProposal, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
