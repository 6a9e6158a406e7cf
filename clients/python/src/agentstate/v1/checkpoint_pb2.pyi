import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TypedValue(_message.Message):
    __slots__ = ("type", "data")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ChannelValue(_message.Message):
    __slots__ = ("channel", "version", "value", "delta")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    channel: str
    version: str
    value: TypedValue
    delta: ChannelValueDelta
    def __init__(self, channel: _Optional[str] = ..., version: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ..., delta: _Optional[_Union[ChannelValueDelta, _Mapping]] = ...) -> None: ...

class ChannelValueDelta(_message.Message):
    __slots__ = ("base_version", "base_crc32", "data", "crc32", "size", "type")
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_CRC32_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    base_version: str
    base_crc32: int
    data: bytes
    crc32: int
    size: int
    type: str
    def __init__(self, base_version: _Optional[str] = ..., base_crc32: _Optional[int] = ..., data: _Optional[bytes] = ..., crc32: _Optional[int] = ..., size: _Optional[int] = ..., type: _Optional[str] = ...) -> None: ...

class PendingWrite(_message.Message):
    __slots__ = ("task_id", "task_path", "index", "channel", "value")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_PATH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_path: str
    index: int
    channel: str
    value: TypedValue
    def __init__(self, task_id: _Optional[str] = ..., task_path: _Optional[str] = ..., index: _Optional[int] = ..., channel: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "document", "metadata_json", "channel_versions", "values", "pending_writes", "create_time")
    class ChannelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PENDING_WRITES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str
    document: TypedValue
    metadata_json: bytes
    channel_versions: _containers.ScalarMap[str, str]
    values: _containers.RepeatedCompositeFieldContainer[ChannelValue]
    pending_writes: _containers.RepeatedCompositeFieldContainer[PendingWrite]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., parent_checkpoint_id: _Optional[str] = ..., document: _Optional[_Union[TypedValue, _Mapping]] = ..., metadata_json: _Optional[bytes] = ..., channel_versions: _Optional[_Mapping[str, str]] = ..., values: _Optional[_Iterable[_Union[ChannelValue, _Mapping]]] = ..., pending_writes: _Optional[_Iterable[_Union[PendingWrite, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PutCheckpointRequest(_message.Message):
    __slots__ = ("namespace", "thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "document", "metadata_json", "channel_versions", "values", "require_parent_is_head")
    class ChannelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_PARENT_IS_HEAD_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str
    document: TypedValue
    metadata_json: bytes
    channel_versions: _containers.ScalarMap[str, str]
    values: _containers.RepeatedCompositeFieldContainer[ChannelValue]
    require_parent_is_head: bool
    def __init__(self, namespace: _Optional[str] = ..., thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., parent_checkpoint_id: _Optional[str] = ..., document: _Optional[_Union[TypedValue, _Mapping]] = ..., metadata_json: _Optional[bytes] = ..., channel_versions: _Optional[_Mapping[str, str]] = ..., values: _Optional[_Iterable[_Union[ChannelValue, _Mapping]]] = ..., require_parent_is_head: _Optional[bool] = ...) -> None: ...

class PutCheckpointResponse(_message.Message):
    __slots__ = ("created", "head_checkpoint_id")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    HEAD_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    created: bool
    head_checkpoint_id: str
    def __init__(self, created: _Optional[bool] = ..., head_checkpoint_id: _Optional[str] = ...) -> None: ...

class WriteValue(_message.Message):
    __slots__ = ("index", "channel", "value")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    index: int
    channel: str
    value: TypedValue
    def __init__(self, index: _Optional[int] = ..., channel: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...

class PutWritesRequest(_message.Message):
    __slots__ = ("namespace", "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "writes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_PATH_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: _containers.RepeatedCompositeFieldContainer[WriteValue]
    def __init__(self, namespace: _Optional[str] = ..., thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., task_id: _Optional[str] = ..., task_path: _Optional[str] = ..., writes: _Optional[_Iterable[_Union[WriteValue, _Mapping]]] = ...) -> None: ...

class PutWritesResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("namespace", "thread_id", "checkpoint_ns", "checkpoint_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    def __init__(self, namespace: _Optional[str] = ..., thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("found", "checkpoint")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    found: bool
    checkpoint: Checkpoint
    def __init__(self, found: _Optional[bool] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("namespace", "thread_id", "checkpoint_ns", "checkpoint_id", "before_checkpoint_id", "metadata_filter_json", "limit", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    before_checkpoint_id: str
    metadata_filter_json: bytes
    limit: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., before_checkpoint_id: _Optional[str] = ..., metadata_filter_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("namespace", "thread_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_id: str
    def __init__(self, namespace: _Optional[str] = ..., thread_id: _Optional[str] = ...) -> None: ...

class DeleteThreadResponse(_message.Message):
    __slots__ = ("checkpoints_deleted",)
    CHECKPOINTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    checkpoints_deleted: int
    def __init__(self, checkpoints_deleted: _Optional[int] = ...) -> None: ...

class CopyThreadRequest(_message.Message):
    __slots__ = ("namespace", "source_thread_id", "target_thread_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    source_thread_id: str
    target_thread_id: str
    def __init__(self, namespace: _Optional[str] = ..., source_thread_id: _Optional[str] = ..., target_thread_id: _Optional[str] = ...) -> None: ...

class CopyThreadResponse(_message.Message):
    __slots__ = ("checkpoints_copied",)
    CHECKPOINTS_COPIED_FIELD_NUMBER: _ClassVar[int]
    checkpoints_copied: int
    def __init__(self, checkpoints_copied: _Optional[int] = ...) -> None: ...

class PruneCheckpointsRequest(_message.Message):
    __slots__ = ("namespace", "thread_ids", "keep_latest")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    THREAD_IDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_LATEST_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    thread_ids: _containers.RepeatedScalarFieldContainer[str]
    keep_latest: int
    def __init__(self, namespace: _Optional[str] = ..., thread_ids: _Optional[_Iterable[str]] = ..., keep_latest: _Optional[int] = ...) -> None: ...

class PruneCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints_deleted",)
    CHECKPOINTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    checkpoints_deleted: int
    def __init__(self, checkpoints_deleted: _Optional[int] = ...) -> None: ...

class DeleteForRunsRequest(_message.Message):
    __slots__ = ("namespace", "run_ids")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteForRunsResponse(_message.Message):
    __slots__ = ("checkpoints_deleted",)
    CHECKPOINTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    checkpoints_deleted: int
    def __init__(self, checkpoints_deleted: _Optional[int] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("call_id", "timeout_ms", "put_checkpoint", "put_writes", "get_checkpoint")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PUT_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PUT_WRITES_FIELD_NUMBER: _ClassVar[int]
    GET_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    timeout_ms: int
    put_checkpoint: PutCheckpointRequest
    put_writes: PutWritesRequest
    get_checkpoint: GetCheckpointRequest
    def __init__(self, call_id: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., put_checkpoint: _Optional[_Union[PutCheckpointRequest, _Mapping]] = ..., put_writes: _Optional[_Union[PutWritesRequest, _Mapping]] = ..., get_checkpoint: _Optional[_Union[GetCheckpointRequest, _Mapping]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("call_id", "put_checkpoint", "put_writes", "get_checkpoint", "status")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PUT_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PUT_WRITES_FIELD_NUMBER: _ClassVar[int]
    GET_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    put_checkpoint: PutCheckpointResponse
    put_writes: PutWritesResponse
    get_checkpoint: GetCheckpointResponse
    status: SessionStatus
    def __init__(self, call_id: _Optional[int] = ..., put_checkpoint: _Optional[_Union[PutCheckpointResponse, _Mapping]] = ..., put_writes: _Optional[_Union[PutWritesResponse, _Mapping]] = ..., get_checkpoint: _Optional[_Union[GetCheckpointResponse, _Mapping]] = ..., status: _Optional[_Union[SessionStatus, _Mapping]] = ...) -> None: ...

class SessionStatus(_message.Message):
    __slots__ = ("code", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...
