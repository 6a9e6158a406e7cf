import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_READ: _ClassVar[Role]
    ROLE_WRITE: _ClassVar[Role]
    ROLE_LOCK: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]

class ChangeOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_OP_UNSPECIFIED: _ClassVar[ChangeOp]
    CHANGE_OP_PUT: _ClassVar[ChangeOp]
    CHANGE_OP_DELETE: _ClassVar[ChangeOp]
    CHANGE_OP_EXPIRE: _ClassVar[ChangeOp]
    CHANGE_OP_APPEND: _ClassVar[ChangeOp]
    CHANGE_OP_CHECKPOINT_PUT: _ClassVar[ChangeOp]
    CHANGE_OP_CHECKPOINT_WRITES: _ClassVar[ChangeOp]
    CHANGE_OP_THREAD_DELETE: _ClassVar[ChangeOp]
    CHANGE_OP_THREAD_COPY: _ClassVar[ChangeOp]
    CHANGE_OP_CHECKPOINT_PRUNE: _ClassVar[ChangeOp]
    CHANGE_OP_CHECKPOINT_DELETE_RUNS: _ClassVar[ChangeOp]
    CHANGE_OP_ITEM_PUT: _ClassVar[ChangeOp]
    CHANGE_OP_ITEM_DELETE: _ClassVar[ChangeOp]
ROLE_UNSPECIFIED: Role
ROLE_READ: Role
ROLE_WRITE: Role
ROLE_LOCK: Role
ROLE_ADMIN: Role
CHANGE_OP_UNSPECIFIED: ChangeOp
CHANGE_OP_PUT: ChangeOp
CHANGE_OP_DELETE: ChangeOp
CHANGE_OP_EXPIRE: ChangeOp
CHANGE_OP_APPEND: ChangeOp
CHANGE_OP_CHECKPOINT_PUT: ChangeOp
CHANGE_OP_CHECKPOINT_WRITES: ChangeOp
CHANGE_OP_THREAD_DELETE: ChangeOp
CHANGE_OP_THREAD_COPY: ChangeOp
CHANGE_OP_CHECKPOINT_PRUNE: ChangeOp
CHANGE_OP_CHECKPOINT_DELETE_RUNS: ChangeOp
CHANGE_OP_ITEM_PUT: ChangeOp
CHANGE_OP_ITEM_DELETE: ChangeOp

class Grant(_message.Message):
    __slots__ = ("namespace", "prefix", "roles")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    prefix: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    def __init__(self, namespace: _Optional[str] = ..., prefix: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("principal", "grants", "ttl")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    ttl: _duration_pb2.Duration
    def __init__(self, principal: _Optional[str] = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("id", "token", "expire_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "principal", "grants", "create_time", "expire_time", "revoke_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    principal: str
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., principal: _Optional[str] = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("limit", "page_token")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_token: str
    def __init__(self, limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens", "next_page_token")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    next_page_token: str
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...

class ListChangesRequest(_message.Message):
    __slots__ = ("namespace", "since_time", "until_time", "principal", "key_prefix", "limit", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    since_time: _timestamp_pb2.Timestamp
    until_time: _timestamp_pb2.Timestamp
    principal: str
    key_prefix: str
    limit: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., key_prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("op", "key", "stream", "revision", "version", "principal", "request_id", "time", "principal_recorded", "target")
    OP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_RECORDED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    op: ChangeOp
    key: str
    stream: str
    revision: int
    version: int
    principal: str
    request_id: str
    time: _timestamp_pb2.Timestamp
    principal_recorded: bool
    target: str
    def __init__(self, op: _Optional[_Union[ChangeOp, str]] = ..., key: _Optional[str] = ..., stream: _Optional[str] = ..., revision: _Optional[int] = ..., version: _Optional[int] = ..., principal: _Optional[str] = ..., request_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal_recorded: _Optional[bool] = ..., target: _Optional[str] = ...) -> None: ...

class ListChangesResponse(_message.Message):
    __slots__ = ("changes", "next_page_token")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    next_page_token: str
    def __init__(self, changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PrincipalGrant(_message.Message):
    __slots__ = ("principal", "grant", "update_time")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    principal: str
    grant: Grant
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, principal: _Optional[str] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantRolesRequest(_message.Message):
    __slots__ = ("principal", "grant")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    principal: str
    grant: Grant
    def __init__(self, principal: _Optional[str] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class GrantRolesResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: PrincipalGrant
    def __init__(self, grant: _Optional[_Union[PrincipalGrant, _Mapping]] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("principal", "namespace", "prefix", "roles")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    principal: str
    namespace: str
    prefix: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    def __init__(self, principal: _Optional[str] = ..., namespace: _Optional[str] = ..., prefix: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ...) -> None: ...

class RevokeGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: PrincipalGrant
    def __init__(self, grant: _Optional[_Union[PrincipalGrant, _Mapping]] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("principal", "limit", "page_token")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    principal: str
    limit: int
    page_token: str
    def __init__(self, principal: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[PrincipalGrant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[PrincipalGrant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
