from superfs.v1 import superfs_pb2 as _superfs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ByteHop(_message.Message):
    __slots__ = ("address", "local")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    address: str
    local: str
    def __init__(self, address: _Optional[str] = ..., local: _Optional[str] = ...) -> None: ...

class ByteRequest(_message.Message):
    __slots__ = ("op", "id", "version", "token", "key", "offset", "length", "truncate", "cap", "chunk_size", "chain", "peers", "timeout_ms", "forwarded")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OP_UNSPECIFIED: _ClassVar[ByteRequest.Op]
        HELLO: _ClassVar[ByteRequest.Op]
        READ: _ClassVar[ByteRequest.Op]
        WRITE: _ClassVar[ByteRequest.Op]
        LOCATE: _ClassVar[ByteRequest.Op]
    OP_UNSPECIFIED: ByteRequest.Op
    HELLO: ByteRequest.Op
    READ: ByteRequest.Op
    WRITE: ByteRequest.Op
    LOCATE: ByteRequest.Op
    OP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    op: ByteRequest.Op
    id: int
    version: int
    token: str
    key: _superfs_pb2.ChunkKey
    offset: int
    length: int
    truncate: bool
    cap: _superfs_pb2.ChunkCap
    chunk_size: int
    chain: _containers.RepeatedCompositeFieldContainer[ByteHop]
    peers: _containers.RepeatedCompositeFieldContainer[ByteHop]
    timeout_ms: int
    forwarded: bool
    def __init__(self, op: _Optional[_Union[ByteRequest.Op, str]] = ..., id: _Optional[int] = ..., version: _Optional[int] = ..., token: _Optional[str] = ..., key: _Optional[_Union[_superfs_pb2.ChunkKey, _Mapping]] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., truncate: _Optional[bool] = ..., cap: _Optional[_Union[_superfs_pb2.ChunkCap, _Mapping]] = ..., chunk_size: _Optional[int] = ..., chain: _Optional[_Iterable[_Union[ByteHop, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[ByteHop, _Mapping]]] = ..., timeout_ms: _Optional[int] = ..., forwarded: _Optional[bool] = ...) -> None: ...

class ByteReply(_message.Message):
    __slots__ = ("id", "errno_name", "message", "version", "exists", "length", "repaired", "path", "file_dev", "file_ino", "file_offset", "block_log2", "sums")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERRNO_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_DEV_FIELD_NUMBER: _ClassVar[int]
    FILE_INO_FIELD_NUMBER: _ClassVar[int]
    FILE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BLOCK_LOG2_FIELD_NUMBER: _ClassVar[int]
    SUMS_FIELD_NUMBER: _ClassVar[int]
    id: int
    errno_name: str
    message: str
    version: int
    exists: bool
    length: int
    repaired: _containers.RepeatedScalarFieldContainer[int]
    path: str
    file_dev: int
    file_ino: int
    file_offset: int
    block_log2: int
    sums: bytes
    def __init__(self, id: _Optional[int] = ..., errno_name: _Optional[str] = ..., message: _Optional[str] = ..., version: _Optional[int] = ..., exists: _Optional[bool] = ..., length: _Optional[int] = ..., repaired: _Optional[_Iterable[int]] = ..., path: _Optional[str] = ..., file_dev: _Optional[int] = ..., file_ino: _Optional[int] = ..., file_offset: _Optional[int] = ..., block_log2: _Optional[int] = ..., sums: _Optional[bytes] = ...) -> None: ...
