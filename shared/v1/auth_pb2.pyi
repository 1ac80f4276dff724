from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
AUTH_FIELD_NUMBER: _ClassVar[int]
auth: _descriptor.FieldDescriptor

class MethodAuth(_message.Message):
    __slots__ = ("permission", "authenticated")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    permission: str
    authenticated: bool
    def __init__(self, permission: _Optional[str] = ..., authenticated: _Optional[bool] = ...) -> None: ...
