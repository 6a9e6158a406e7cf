import datetime

from agentstate.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_UNSPECIFIED: _ClassVar[Consistency]
    CONSISTENCY_LINEARIZABLE: _ClassVar[Consistency]
    CONSISTENCY_DATABASE: _ClassVar[Consistency]
CONSISTENCY_UNSPECIFIED: Consistency
CONSISTENCY_LINEARIZABLE: Consistency
CONSISTENCY_DATABASE: Consistency

class Expected(_message.Message):
    __slots__ = ("version", "absent", "any")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    version: int
    absent: bool
    any: bool
    def __init__(self, version: _Optional[int] = ..., absent: _Optional[bool] = ..., any: _Optional[bool] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("namespace", "key", "consistency")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    consistency: Consistency
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("header", "found", "item")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    found: bool
    item: _common_pb2.Item
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., found: _Optional[bool] = ..., item: _Optional[_Union[_common_pb2.Item, _Mapping]] = ...) -> None: ...

class CompareAndSetRequest(_message.Message):
    __slots__ = ("namespace", "key", "expected", "value", "content_type", "ttl", "idempotency_key", "fence")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    expected: Expected
    value: bytes
    content_type: str
    ttl: _duration_pb2.Duration
    idempotency_key: str
    fence: _common_pb2.Fence
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., expected: _Optional[_Union[Expected, _Mapping]] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., fence: _Optional[_Union[_common_pb2.Fence, _Mapping]] = ...) -> None: ...

class CompareAndSetResponse(_message.Message):
    __slots__ = ("header", "applied", "item", "found", "replayed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    applied: bool
    item: _common_pb2.Item
    found: bool
    replayed: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., item: _Optional[_Union[_common_pb2.Item, _Mapping]] = ..., found: _Optional[bool] = ..., replayed: _Optional[bool] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("namespace", "key", "expected", "idempotency_key", "fence")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    expected: Expected
    idempotency_key: str
    fence: _common_pb2.Fence
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., expected: _Optional[_Union[Expected, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., fence: _Optional[_Union[_common_pb2.Fence, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("header", "applied", "item", "found", "replayed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    applied: bool
    item: _common_pb2.Item
    found: bool
    replayed: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., item: _Optional[_Union[_common_pb2.Item, _Mapping]] = ..., found: _Optional[bool] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("namespace", "prefix", "limit", "page_token", "include_values")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VALUES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    prefix: str
    limit: int
    page_token: str
    include_values: bool
    def __init__(self, namespace: _Optional[str] = ..., prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., include_values: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("header", "items", "next_page_token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.Item]
    next_page_token: str
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., items: _Optional[_Iterable[_Union[_common_pb2.Item, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
