import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Report(_message.Message):
    __slots__ = ("id", "type", "name", "defn", "template_id", "datasource_id", "query_id", "settings", "enable_filter", "datasets", "snapshot", "owner_id", "editing_id", "created_at", "updated_at", "defn_updated_at", "links")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFN_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    DATASOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_FILTER_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EDITING_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEFN_UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    name: str
    defn: _struct_pb2.Struct
    template_id: str
    datasource_id: str
    query_id: str
    settings: _struct_pb2.Struct
    enable_filter: bool
    datasets: _containers.RepeatedCompositeFieldContainer[ReportDataset]
    snapshot: SnapshotSettings
    owner_id: str
    editing_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    defn_updated_at: _timestamp_pb2.Timestamp
    links: ReportLinks
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., defn: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., template_id: _Optional[str] = ..., datasource_id: _Optional[str] = ..., query_id: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., enable_filter: _Optional[bool] = ..., datasets: _Optional[_Iterable[_Union[ReportDataset, _Mapping]]] = ..., snapshot: _Optional[_Union[SnapshotSettings, _Mapping]] = ..., owner_id: _Optional[str] = ..., editing_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., defn_updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., links: _Optional[_Union[ReportLinks, _Mapping]] = ...) -> None: ...

class ReportDataset(_message.Message):
    __slots__ = ("dataset_id", "alias")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    alias: str
    def __init__(self, dataset_id: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class SnapshotSettings(_message.Message):
    __slots__ = ("enabled", "schedule", "retain_count")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    RETAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    schedule: str
    retain_count: int
    def __init__(self, enabled: _Optional[bool] = ..., schedule: _Optional[str] = ..., retain_count: _Optional[int] = ...) -> None: ...

class ReportLinks(_message.Message):
    __slots__ = ("self", "original", "commit_draft")
    SELF_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    COMMIT_DRAFT_FIELD_NUMBER: _ClassVar[int]
    self: ReportLink
    original: ReportLink
    commit_draft: ReportLink
    def __init__(self_, self: _Optional[_Union[ReportLink, _Mapping]] = ..., original: _Optional[_Union[ReportLink, _Mapping]] = ..., commit_draft: _Optional[_Union[ReportLink, _Mapping]] = ...) -> None: ...

class ReportLink(_message.Message):
    __slots__ = ("href",)
    HREF_FIELD_NUMBER: _ClassVar[int]
    href: str
    def __init__(self, href: _Optional[str] = ...) -> None: ...

class ReportDraftInput(_message.Message):
    __slots__ = ("defn", "template_id", "datasource_id", "query_id", "settings")
    DEFN_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    DATASOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    defn: _struct_pb2.Struct
    template_id: str
    datasource_id: str
    query_id: str
    settings: _struct_pb2.Struct
    def __init__(self, defn: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., template_id: _Optional[str] = ..., datasource_id: _Optional[str] = ..., query_id: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Activity(_message.Message):
    __slots__ = ("id", "report_id", "type", "actor_id", "created_at", "details")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    id: str
    report_id: str
    type: str
    actor_id: str
    created_at: _timestamp_pb2.Timestamp
    details: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., report_id: _Optional[str] = ..., type: _Optional[str] = ..., actor_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UserReportSettings(_message.Message):
    __slots__ = ("report_id", "user_id", "settings")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    user_id: str
    settings: _struct_pb2.Struct
    def __init__(self, report_id: _Optional[str] = ..., user_id: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
