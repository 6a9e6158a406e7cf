import datetime

from agentstate.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LockRequest(_message.Message):
    __slots__ = ("namespace", "name", "ttl", "wait", "owner")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    ttl: _duration_pb2.Duration
    wait: _duration_pb2.Duration
    owner: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., owner: _Optional[str] = ...) -> None: ...

class LockResponse(_message.Message):
    __slots__ = ("header", "acquired", "lock_id", "fencing_token", "expire_time", "holder_owner")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_OWNER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    acquired: bool
    lock_id: str
    fencing_token: int
    expire_time: _timestamp_pb2.Timestamp
    holder_owner: str
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., acquired: _Optional[bool] = ..., lock_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holder_owner: _Optional[str] = ...) -> None: ...

class UnlockRequest(_message.Message):
    __slots__ = ("namespace", "name", "lock_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    lock_id: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., lock_id: _Optional[str] = ...) -> None: ...

class UnlockResponse(_message.Message):
    __slots__ = ("header", "released")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    released: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., released: _Optional[bool] = ...) -> None: ...

class RenewLockRequest(_message.Message):
    __slots__ = ("namespace", "name", "lock_id", "ttl")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    lock_id: str
    ttl: _duration_pb2.Duration
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., lock_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RenewLockResponse(_message.Message):
    __slots__ = ("header", "fencing_token", "expire_time")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    fencing_token: int
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., fencing_token: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
