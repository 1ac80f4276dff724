from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlagType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLAG_TYPE_UNSPECIFIED: _ClassVar[FlagType]
    FLAG_TYPE_BOOLEAN: _ClassVar[FlagType]
    FLAG_TYPE_SINGLE_SELECT: _ClassVar[FlagType]
    FLAG_TYPE_MULTI_SELECT: _ClassVar[FlagType]
FLAG_TYPE_UNSPECIFIED: FlagType
FLAG_TYPE_BOOLEAN: FlagType
FLAG_TYPE_SINGLE_SELECT: FlagType
FLAG_TYPE_MULTI_SELECT: FlagType

class Department(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Simulation(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class FlagOption(_message.Message):
    __slots__ = ("id", "value", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    value: str
    label: str
    def __init__(self, id: _Optional[str] = ..., value: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class Flag(_message.Message):
    __slots__ = ("id", "key", "type", "options")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    key: str
    type: FlagType
    options: _containers.RepeatedCompositeFieldContainer[FlagOption]
    def __init__(self, id: _Optional[str] = ..., key: _Optional[str] = ..., type: _Optional[_Union[FlagType, str]] = ..., options: _Optional[_Iterable[_Union[FlagOption, _Mapping]]] = ...) -> None: ...
