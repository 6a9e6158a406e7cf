import datetime

from agentstate.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_FORWARDS: _ClassVar[Direction]
    DIRECTION_BACKWARDS: _ClassVar[Direction]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_FORWARDS: Direction
DIRECTION_BACKWARDS: Direction

class ExpectedStream(_message.Message):
    __slots__ = ("any", "no_stream", "exists", "version")
    ANY_FIELD_NUMBER: _ClassVar[int]
    NO_STREAM_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    any: bool
    no_stream: bool
    exists: bool
    version: int
    def __init__(self, any: _Optional[bool] = ..., no_stream: _Optional[bool] = ..., exists: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class EventData(_message.Message):
    __slots__ = ("id", "type", "data", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    data: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., data: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecordedEvent(_message.Message):
    __slots__ = ("stream", "id", "type", "data", "metadata", "stream_version", "position", "create_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    stream: str
    id: str
    type: str
    data: bytes
    metadata: _containers.ScalarMap[str, str]
    stream_version: int
    position: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, stream: _Optional[str] = ..., id: _Optional[str] = ..., type: _Optional[str] = ..., data: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ..., stream_version: _Optional[int] = ..., position: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AppendEventRequest(_message.Message):
    __slots__ = ("namespace", "stream", "expected", "events", "fence")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    stream: str
    expected: ExpectedStream
    events: _containers.RepeatedCompositeFieldContainer[EventData]
    fence: _common_pb2.Fence
    def __init__(self, namespace: _Optional[str] = ..., stream: _Optional[str] = ..., expected: _Optional[_Union[ExpectedStream, _Mapping]] = ..., events: _Optional[_Iterable[_Union[EventData, _Mapping]]] = ..., fence: _Optional[_Union[_common_pb2.Fence, _Mapping]] = ...) -> None: ...

class AppendEventResponse(_message.Message):
    __slots__ = ("header", "applied", "current_version", "first_version", "position", "replayed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_VERSION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    applied: bool
    current_version: int
    first_version: int
    position: int
    replayed: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., current_version: _Optional[int] = ..., first_version: _Optional[int] = ..., position: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ReadStreamRequest(_message.Message):
    __slots__ = ("namespace", "stream", "from_version", "direction", "limit")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    stream: str
    from_version: int
    direction: Direction
    limit: int
    def __init__(self, namespace: _Optional[str] = ..., stream: _Optional[str] = ..., from_version: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadStreamResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: RecordedEvent
    def __init__(self, event: _Optional[_Union[RecordedEvent, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("namespace", "stream", "stream_prefix", "after_position")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    stream: str
    stream_prefix: str
    after_position: int
    def __init__(self, namespace: _Optional[str] = ..., stream: _Optional[str] = ..., stream_prefix: _Optional[str] = ..., after_position: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "caught_up")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    event: RecordedEvent
    caught_up: CaughtUp
    def __init__(self, event: _Optional[_Union[RecordedEvent, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ...) -> None: ...

class CaughtUp(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...
