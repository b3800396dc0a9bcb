from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_TYPE_UNSPECIFIED: _ClassVar[FileType]
    REGULAR: _ClassVar[FileType]
    DIRECTORY: _ClassVar[FileType]
    SYMLINK: _ClassVar[FileType]
    FIFO: _ClassVar[FileType]
    SOCKET: _ClassVar[FileType]
    CHAR_DEVICE: _ClassVar[FileType]
    BLOCK_DEVICE: _ClassVar[FileType]

class WrittenState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITTEN_UNKNOWN: _ClassVar[WrittenState]
    WRITTEN_SUPERSET: _ClassVar[WrittenState]
    WRITTEN_EXACT: _ClassVar[WrittenState]
FILE_TYPE_UNSPECIFIED: FileType
REGULAR: FileType
DIRECTORY: FileType
SYMLINK: FileType
FIFO: FileType
SOCKET: FileType
CHAR_DEVICE: FileType
BLOCK_DEVICE: FileType
WRITTEN_UNKNOWN: WrittenState
WRITTEN_SUPERSET: WrittenState
WRITTEN_EXACT: WrittenState

class Creds(_message.Message):
    __slots__ = ("uid", "gid", "groups")
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    uid: int
    gid: int
    groups: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, uid: _Optional[int] = ..., gid: _Optional[int] = ..., groups: _Optional[_Iterable[int]] = ...) -> None: ...

class Attr(_message.Message):
    __slots__ = ("ino", "mode", "nlink", "uid", "gid", "size", "atime_ns", "mtime_ns", "ctime_ns", "generation", "rdev")
    INO_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    generation: int
    rdev: int
    def __init__(self, ino: _Optional[int] = ..., mode: _Optional[int] = ..., nlink: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., size: _Optional[int] = ..., atime_ns: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., ctime_ns: _Optional[int] = ..., generation: _Optional[int] = ..., rdev: _Optional[int] = ...) -> None: ...

class DirCap(_message.Message):
    __slots__ = ("dir_ino", "uid", "rights", "sticky", "owner_uid", "expires_ns", "mac", "setgid", "gid", "epoch")
    DIR_INO_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    STICKY_FIELD_NUMBER: _ClassVar[int]
    OWNER_UID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_NS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SETGID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    dir_ino: int
    uid: int
    rights: int
    sticky: bool
    owner_uid: int
    expires_ns: int
    mac: bytes
    setgid: bool
    gid: int
    epoch: int
    def __init__(self, dir_ino: _Optional[int] = ..., uid: _Optional[int] = ..., rights: _Optional[int] = ..., sticky: _Optional[bool] = ..., owner_uid: _Optional[int] = ..., expires_ns: _Optional[int] = ..., mac: _Optional[bytes] = ..., setgid: _Optional[bool] = ..., gid: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class ChunkCap(_message.Message):
    __slots__ = ("ino", "rights", "expires_ns", "mac")
    INO_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_NS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ino: int
    rights: int
    expires_ns: int
    mac: bytes
    def __init__(self, ino: _Optional[int] = ..., rights: _Optional[int] = ..., expires_ns: _Optional[int] = ..., mac: _Optional[bytes] = ...) -> None: ...

class ChunkRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("id", "address", "session_address", "bytes_address", "bytes_local", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BYTES_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BYTES_LOCAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    session_address: str
    bytes_address: str
    bytes_local: str
    state: str
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., session_address: _Optional[str] = ..., bytes_address: _Optional[str] = ..., bytes_local: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ClusterMap(_message.Message):
    __slots__ = ("epoch", "cluster_name", "num_partitions", "partition_shard", "shards", "data_servers", "replicas", "inline_threshold", "chunk_size", "durability", "dir_session_address", "moves", "removed_shards")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_SHARD_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    DATA_SERVERS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    INLINE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    DIR_SESSION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_SHARDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    cluster_name: str
    num_partitions: int
    partition_shard: _containers.RepeatedScalarFieldContainer[int]
    shards: _containers.RepeatedCompositeFieldContainer[ServerInfo]
    data_servers: _containers.RepeatedCompositeFieldContainer[ServerInfo]
    replicas: int
    inline_threshold: int
    chunk_size: int
    durability: str
    dir_session_address: str
    moves: _containers.RepeatedCompositeFieldContainer[PartitionMove]
    removed_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, epoch: _Optional[int] = ..., cluster_name: _Optional[str] = ..., num_partitions: _Optional[int] = ..., partition_shard: _Optional[_Iterable[int]] = ..., shards: _Optional[_Iterable[_Union[ServerInfo, _Mapping]]] = ..., data_servers: _Optional[_Iterable[_Union[ServerInfo, _Mapping]]] = ..., replicas: _Optional[int] = ..., inline_threshold: _Optional[int] = ..., chunk_size: _Optional[int] = ..., durability: _Optional[str] = ..., dir_session_address: _Optional[str] = ..., moves: _Optional[_Iterable[_Union[PartitionMove, _Mapping]]] = ..., removed_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class PartitionMove(_message.Message):
    __slots__ = ("partition", "source", "target", "step", "rows", "bytes", "step_ns")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    STEP_NS_FIELD_NUMBER: _ClassVar[int]
    partition: int
    source: int
    target: int
    step: str
    rows: int
    bytes: int
    step_ns: int
    def __init__(self, partition: _Optional[int] = ..., source: _Optional[int] = ..., target: _Optional[int] = ..., step: _Optional[str] = ..., rows: _Optional[int] = ..., bytes: _Optional[int] = ..., step_ns: _Optional[int] = ...) -> None: ...

class GetClusterMapRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MoverLeaseRequest(_message.Message):
    __slots__ = ("holder", "ttl_s", "release")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    holder: str
    ttl_s: float
    release: bool
    def __init__(self, holder: _Optional[str] = ..., ttl_s: _Optional[float] = ..., release: _Optional[bool] = ...) -> None: ...

class MoverLeaseReply(_message.Message):
    __slots__ = ("granted", "holder", "expires_in_s")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_S_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    holder: str
    expires_in_s: float
    def __init__(self, granted: _Optional[bool] = ..., holder: _Optional[str] = ..., expires_in_s: _Optional[float] = ...) -> None: ...

class SetServerStateRequest(_message.Message):
    __slots__ = ("id", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    state: str
    def __init__(self, id: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class RegisterServerRequest(_message.Message):
    __slots__ = ("kind", "server")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    kind: str
    server: ServerInfo
    def __init__(self, kind: _Optional[str] = ..., server: _Optional[_Union[ServerInfo, _Mapping]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ("path", "creds")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    path: str
    creds: Creds
    def __init__(self, path: _Optional[str] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class DirInfo(_message.Message):
    __slots__ = ("ino", "parent_ino", "name", "attr")
    INO_FIELD_NUMBER: _ClassVar[int]
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    ino: int
    parent_ino: int
    name: str
    attr: Attr
    def __init__(self, ino: _Optional[int] = ..., parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., attr: _Optional[_Union[Attr, _Mapping]] = ...) -> None: ...

class ResolveReply(_message.Message):
    __slots__ = ("dirs", "remaining", "cap", "lease_ns")
    DIRS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    LEASE_NS_FIELD_NUMBER: _ClassVar[int]
    dirs: _containers.RepeatedCompositeFieldContainer[DirInfo]
    remaining: _containers.RepeatedScalarFieldContainer[str]
    cap: DirCap
    lease_ns: int
    def __init__(self, dirs: _Optional[_Iterable[_Union[DirInfo, _Mapping]]] = ..., remaining: _Optional[_Iterable[str]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ..., lease_ns: _Optional[int] = ...) -> None: ...

class DirRequest(_message.Message):
    __slots__ = ("ino", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class DirAttrReply(_message.Message):
    __slots__ = ("dir", "cap", "lease_ns")
    DIR_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    LEASE_NS_FIELD_NUMBER: _ClassVar[int]
    dir: DirInfo
    cap: DirCap
    lease_ns: int
    def __init__(self, dir: _Optional[_Union[DirInfo, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ..., lease_ns: _Optional[int] = ...) -> None: ...

class LookupDirRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "creds")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    creds: Creds
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class MkdirRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "mode", "creds", "ino", "grant", "time_ns")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    mode: int
    creds: Creds
    ino: int
    grant: int
    time_ns: int
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., mode: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., ino: _Optional[int] = ..., grant: _Optional[int] = ..., time_ns: _Optional[int] = ...) -> None: ...

class RmdirRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "creds", "grant")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    creds: Creds
    grant: int
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., grant: _Optional[int] = ...) -> None: ...

class DelegateDirInosRequest(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class RenameDirRequest(_message.Message):
    __slots__ = ("src_parent", "src_name", "dst_parent", "dst_name", "flags", "creds")
    SRC_PARENT_FIELD_NUMBER: _ClassVar[int]
    SRC_NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PARENT_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    flags: int
    creds: Creds
    def __init__(self, src_parent: _Optional[int] = ..., src_name: _Optional[str] = ..., dst_parent: _Optional[int] = ..., dst_name: _Optional[str] = ..., flags: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class SetAttrRequest(_message.Message):
    __slots__ = ("ino", "mask", "mode", "uid", "gid", "size", "atime_ns", "mtime_ns", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    mask: int
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., mask: _Optional[int] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., size: _Optional[int] = ..., atime_ns: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class ListDirsRequest(_message.Message):
    __slots__ = ("ino", "after", "limit", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    after: str
    limit: int
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class ListDirsReply(_message.Message):
    __slots__ = ("dirs", "more")
    DIRS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    dirs: _containers.RepeatedCompositeFieldContainer[DirInfo]
    more: bool
    def __init__(self, dirs: _Optional[_Iterable[_Union[DirInfo, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class XattrRequest(_message.Message):
    __slots__ = ("ino", "name", "value", "flags", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    name: str
    value: bytes
    flags: int
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., name: _Optional[str] = ..., value: _Optional[bytes] = ..., flags: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class XattrReply(_message.Message):
    __slots__ = ("value", "names")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, value: _Optional[bytes] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class DirStatsReply(_message.Message):
    __slots__ = ("directories", "db_bytes")
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    DB_BYTES_FIELD_NUMBER: _ClassVar[int]
    directories: int
    db_bytes: int
    def __init__(self, directories: _Optional[int] = ..., db_bytes: _Optional[int] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("dir_ino", "want", "creds")
    DIR_INO_FIELD_NUMBER: _ClassVar[int]
    WANT_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    dir_ino: int
    want: int
    creds: Creds
    def __init__(self, dir_ino: _Optional[int] = ..., want: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class LeaseReply(_message.Message):
    __slots__ = ("mode", "dir", "epoch", "ttl_ns", "grant")
    MODE_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TTL_NS_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    mode: int
    dir: DirAttrReply
    epoch: int
    ttl_ns: int
    grant: int
    def __init__(self, mode: _Optional[int] = ..., dir: _Optional[_Union[DirAttrReply, _Mapping]] = ..., epoch: _Optional[int] = ..., ttl_ns: _Optional[int] = ..., grant: _Optional[int] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("dir_inos", "grants")
    DIR_INOS_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    dir_inos: _containers.RepeatedScalarFieldContainer[int]
    grants: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dir_inos: _Optional[_Iterable[int]] = ..., grants: _Optional[_Iterable[int]] = ...) -> None: ...

class RecallLeaseRequest(_message.Message):
    __slots__ = ("dir_ino", "epoch", "grant")
    DIR_INO_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    dir_ino: int
    epoch: int
    grant: int
    def __init__(self, dir_ino: _Optional[int] = ..., epoch: _Optional[int] = ..., grant: _Optional[int] = ...) -> None: ...

class Dentry(_message.Message):
    __slots__ = ("name", "ino", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    ino: int
    type: FileType
    def __init__(self, name: _Optional[str] = ..., ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("attr", "type", "symlink_target", "inline", "data", "layout", "chunk_size", "chunk_cap", "written", "written_state", "cut_generation")
    ATTR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CAP_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_STATE_FIELD_NUMBER: _ClassVar[int]
    CUT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    attr: Attr
    type: FileType
    symlink_target: str
    inline: bool
    data: bytes
    layout: _containers.RepeatedScalarFieldContainer[int]
    chunk_size: int
    chunk_cap: ChunkCap
    written: _containers.RepeatedCompositeFieldContainer[ChunkRange]
    written_state: WrittenState
    cut_generation: int
    def __init__(self, attr: _Optional[_Union[Attr, _Mapping]] = ..., type: _Optional[_Union[FileType, str]] = ..., symlink_target: _Optional[str] = ..., inline: _Optional[bool] = ..., data: _Optional[bytes] = ..., layout: _Optional[_Iterable[int]] = ..., chunk_size: _Optional[int] = ..., chunk_cap: _Optional[_Union[ChunkCap, _Mapping]] = ..., written: _Optional[_Iterable[_Union[ChunkRange, _Mapping]]] = ..., written_state: _Optional[_Union[WrittenState, str]] = ..., cut_generation: _Optional[int] = ...) -> None: ...

class CreateFileRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "mode", "type", "symlink_target", "exclusive", "truncate", "creds", "cap", "data", "rdev", "ino", "time_ns", "delegation_holder")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    DELEGATION_HOLDER_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    mode: int
    type: FileType
    symlink_target: str
    exclusive: bool
    truncate: bool
    creds: Creds
    cap: DirCap
    data: bytes
    rdev: int
    ino: int
    time_ns: int
    delegation_holder: bytes
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., mode: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ..., symlink_target: _Optional[str] = ..., exclusive: _Optional[bool] = ..., truncate: _Optional[bool] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ..., data: _Optional[bytes] = ..., rdev: _Optional[int] = ..., ino: _Optional[int] = ..., time_ns: _Optional[int] = ..., delegation_holder: _Optional[bytes] = ...) -> None: ...

class CreateFileReply(_message.Message):
    __slots__ = ("file", "created")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    file: FileInfo
    created: bool
    def __init__(self, file: _Optional[_Union[FileInfo, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class LookupFileRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "want_data", "creds", "cap")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WANT_DATA_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    want_data: bool
    creds: Creds
    cap: DirCap
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., want_data: _Optional[bool] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ...) -> None: ...

class LookupFileReply(_message.Message):
    __slots__ = ("entry", "file", "has_file")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    HAS_FILE_FIELD_NUMBER: _ClassVar[int]
    entry: Dentry
    file: FileInfo
    has_file: bool
    def __init__(self, entry: _Optional[_Union[Dentry, _Mapping]] = ..., file: _Optional[_Union[FileInfo, _Mapping]] = ..., has_file: _Optional[bool] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("ino", "want_data", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    WANT_DATA_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    want_data: bool
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., want_data: _Optional[bool] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class UnlinkRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "creds", "cap")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    creds: Creds
    cap: DirCap
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ...) -> None: ...

class UnlinkReply(_message.Message):
    __slots__ = ("ino", "nlink")
    INO_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    ino: int
    nlink: int
    def __init__(self, ino: _Optional[int] = ..., nlink: _Optional[int] = ...) -> None: ...

class WriteInlineRequest(_message.Message):
    __slots__ = ("ino", "offset", "data", "truncate_to_end", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_TO_END_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    offset: int
    data: bytes
    truncate_to_end: bool
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., truncate_to_end: _Optional[bool] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class ConvertRequest(_message.Message):
    __slots__ = ("ino", "creds", "layout", "expect_generation", "chunk_size")
    INO_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    EXPECT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    ino: int
    creds: Creds
    layout: _containers.RepeatedScalarFieldContainer[int]
    expect_generation: int
    chunk_size: int
    def __init__(self, ino: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., layout: _Optional[_Iterable[int]] = ..., expect_generation: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class ReadInlineRequest(_message.Message):
    __slots__ = ("ino", "offset", "length", "creds")
    INO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    offset: int
    length: int
    creds: Creds
    def __init__(self, ino: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class DataReply(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class SetSizeRequest(_message.Message):
    __slots__ = ("ino", "size", "mtime_ns", "creds", "written", "reports_written", "seen_generation")
    INO_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    REPORTS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    SEEN_GENERATION_FIELD_NUMBER: _ClassVar[int]
    ino: int
    size: int
    mtime_ns: int
    creds: Creds
    written: _containers.RepeatedCompositeFieldContainer[ChunkRange]
    reports_written: bool
    seen_generation: int
    def __init__(self, ino: _Optional[int] = ..., size: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., written: _Optional[_Iterable[_Union[ChunkRange, _Mapping]]] = ..., reports_written: _Optional[bool] = ..., seen_generation: _Optional[int] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("ino", "new_parent", "new_name", "creds", "cap")
    INO_FIELD_NUMBER: _ClassVar[int]
    NEW_PARENT_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    ino: int
    new_parent: int
    new_name: str
    creds: Creds
    cap: DirCap
    def __init__(self, ino: _Optional[int] = ..., new_parent: _Optional[int] = ..., new_name: _Optional[str] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ...) -> None: ...

class RenameFileRequest(_message.Message):
    __slots__ = ("src_parent", "src_name", "dst_parent", "dst_name", "flags", "creds", "src_cap", "dst_cap")
    SRC_PARENT_FIELD_NUMBER: _ClassVar[int]
    SRC_NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PARENT_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    SRC_CAP_FIELD_NUMBER: _ClassVar[int]
    DST_CAP_FIELD_NUMBER: _ClassVar[int]
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    flags: int
    creds: Creds
    src_cap: DirCap
    dst_cap: DirCap
    def __init__(self, src_parent: _Optional[int] = ..., src_name: _Optional[str] = ..., dst_parent: _Optional[int] = ..., dst_name: _Optional[str] = ..., flags: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., src_cap: _Optional[_Union[DirCap, _Mapping]] = ..., dst_cap: _Optional[_Union[DirCap, _Mapping]] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("parent_ino", "after", "limit", "with_attrs", "creds", "cap")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRS_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    after: str
    limit: int
    with_attrs: bool
    creds: Creds
    cap: DirCap
    def __init__(self, parent_ino: _Optional[int] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., with_attrs: _Optional[bool] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ..., cap: _Optional[_Union[DirCap, _Mapping]] = ...) -> None: ...

class ListFilesReply(_message.Message):
    __slots__ = ("entries", "files", "more")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Dentry]
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    more: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[Dentry, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class DirEntryRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "ino")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    ino: int
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., ino: _Optional[int] = ...) -> None: ...

class SealRequest(_message.Message):
    __slots__ = ("dir_ino",)
    DIR_INO_FIELD_NUMBER: _ClassVar[int]
    dir_ino: int
    def __init__(self, dir_ino: _Optional[int] = ...) -> None: ...

class SealReply(_message.Message):
    __slots__ = ("empty",)
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    empty: bool
    def __init__(self, empty: _Optional[bool] = ...) -> None: ...

class ShardStatsReply(_message.Message):
    __slots__ = ("files", "dentries", "inline_bytes", "logical_bytes", "db_bytes")
    FILES_FIELD_NUMBER: _ClassVar[int]
    DENTRIES_FIELD_NUMBER: _ClassVar[int]
    INLINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DB_BYTES_FIELD_NUMBER: _ClassVar[int]
    files: int
    dentries: int
    inline_bytes: int
    logical_bytes: int
    db_bytes: int
    def __init__(self, files: _Optional[int] = ..., dentries: _Optional[int] = ..., inline_bytes: _Optional[int] = ..., logical_bytes: _Optional[int] = ..., db_bytes: _Optional[int] = ...) -> None: ...

class RemoteLinkRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "ino", "type", "replace", "no_replace", "txid", "check_target", "expect_ino", "record_refusal", "exchange")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    NO_REPLACE_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TARGET_FIELD_NUMBER: _ClassVar[int]
    EXPECT_INO_FIELD_NUMBER: _ClassVar[int]
    RECORD_REFUSAL_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    ino: int
    type: FileType
    replace: bool
    no_replace: bool
    txid: str
    check_target: bool
    expect_ino: int
    record_refusal: bool
    exchange: bool
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ..., replace: _Optional[bool] = ..., no_replace: _Optional[bool] = ..., txid: _Optional[str] = ..., check_target: _Optional[bool] = ..., expect_ino: _Optional[int] = ..., record_refusal: _Optional[bool] = ..., exchange: _Optional[bool] = ...) -> None: ...

class ForgetAppliedRequest(_message.Message):
    __slots__ = ("remote_links", "nlinks")
    REMOTE_LINKS_FIELD_NUMBER: _ClassVar[int]
    NLINKS_FIELD_NUMBER: _ClassVar[int]
    remote_links: _containers.RepeatedScalarFieldContainer[str]
    nlinks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, remote_links: _Optional[_Iterable[str]] = ..., nlinks: _Optional[_Iterable[str]] = ...) -> None: ...

class DirsTargetedRequest(_message.Message):
    __slots__ = ("dir_inos",)
    DIR_INOS_FIELD_NUMBER: _ClassVar[int]
    dir_inos: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dir_inos: _Optional[_Iterable[int]] = ...) -> None: ...

class DirsTargetedReply(_message.Message):
    __slots__ = ("dir_inos",)
    DIR_INOS_FIELD_NUMBER: _ClassVar[int]
    dir_inos: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dir_inos: _Optional[_Iterable[int]] = ...) -> None: ...

class RemoteLinkReply(_message.Message):
    __slots__ = ("replaced_ino", "replaced_type")
    REPLACED_INO_FIELD_NUMBER: _ClassVar[int]
    REPLACED_TYPE_FIELD_NUMBER: _ClassVar[int]
    replaced_ino: int
    replaced_type: FileType
    def __init__(self, replaced_ino: _Optional[int] = ..., replaced_type: _Optional[_Union[FileType, str]] = ...) -> None: ...

class RepointEntryRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "ino", "type", "new_ino", "new_type")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NEW_INO_FIELD_NUMBER: _ClassVar[int]
    NEW_TYPE_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    ino: int
    type: FileType
    new_ino: int
    new_type: FileType
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ..., new_ino: _Optional[int] = ..., new_type: _Optional[_Union[FileType, str]] = ...) -> None: ...

class NlinkRequest(_message.Message):
    __slots__ = ("ino", "delta", "txid")
    INO_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    ino: int
    delta: int
    txid: str
    def __init__(self, ino: _Optional[int] = ..., delta: _Optional[int] = ..., txid: _Optional[str] = ...) -> None: ...

class DirFenceRequest(_message.Message):
    __slots__ = ("dir_ino", "epoch")
    DIR_INO_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    dir_ino: int
    epoch: int
    def __init__(self, dir_ino: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class DelegateRequest(_message.Message):
    __slots__ = ("partitions", "count", "creds")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CREDS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedScalarFieldContainer[int]
    count: int
    creds: Creds
    def __init__(self, partitions: _Optional[_Iterable[int]] = ..., count: _Optional[int] = ..., creds: _Optional[_Union[Creds, _Mapping]] = ...) -> None: ...

class InoRange(_message.Message):
    __slots__ = ("partition", "first", "count")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    partition: int
    first: int
    count: int
    def __init__(self, partition: _Optional[int] = ..., first: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class DelegateReply(_message.Message):
    __slots__ = ("ranges",)
    RANGES_FIELD_NUMBER: _ClassVar[int]
    ranges: _containers.RepeatedCompositeFieldContainer[InoRange]
    def __init__(self, ranges: _Optional[_Iterable[_Union[InoRange, _Mapping]]] = ...) -> None: ...

class BatchOp(_message.Message):
    __slots__ = ("create", "unlink", "write", "mkdir", "rmdir")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    UNLINK_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    MKDIR_FIELD_NUMBER: _ClassVar[int]
    RMDIR_FIELD_NUMBER: _ClassVar[int]
    create: CreateFileRequest
    unlink: UnlinkRequest
    write: WriteInlineRequest
    mkdir: MkdirRequest
    rmdir: RmdirRequest
    def __init__(self, create: _Optional[_Union[CreateFileRequest, _Mapping]] = ..., unlink: _Optional[_Union[UnlinkRequest, _Mapping]] = ..., write: _Optional[_Union[WriteInlineRequest, _Mapping]] = ..., mkdir: _Optional[_Union[MkdirRequest, _Mapping]] = ..., rmdir: _Optional[_Union[RmdirRequest, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[BatchOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[BatchOp, _Mapping]]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("errno_name", "message", "file", "unlink", "dir")
    ERRNO_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    UNLINK_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    errno_name: str
    message: str
    file: FileInfo
    unlink: UnlinkReply
    dir: DirInfo
    def __init__(self, errno_name: _Optional[str] = ..., message: _Optional[str] = ..., file: _Optional[_Union[FileInfo, _Mapping]] = ..., unlink: _Optional[_Union[UnlinkReply, _Mapping]] = ..., dir: _Optional[_Union[DirInfo, _Mapping]] = ...) -> None: ...

class BatchReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...

class SwitchLayoutRequest(_message.Message):
    __slots__ = ("ino", "expect_layout", "expect_cut_generation", "layout")
    INO_FIELD_NUMBER: _ClassVar[int]
    EXPECT_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    EXPECT_CUT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    ino: int
    expect_layout: _containers.RepeatedScalarFieldContainer[int]
    expect_cut_generation: int
    layout: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ino: _Optional[int] = ..., expect_layout: _Optional[_Iterable[int]] = ..., expect_cut_generation: _Optional[int] = ..., layout: _Optional[_Iterable[int]] = ...) -> None: ...

class ChunkKey(_message.Message):
    __slots__ = ("ino", "index")
    INO_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ino: int
    index: int
    def __init__(self, ino: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class WriteChunkRequest(_message.Message):
    __slots__ = ("key", "offset", "data", "truncate", "cap")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    key: ChunkKey
    offset: int
    data: bytes
    truncate: bool
    cap: ChunkCap
    def __init__(self, key: _Optional[_Union[ChunkKey, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., truncate: _Optional[bool] = ..., cap: _Optional[_Union[ChunkCap, _Mapping]] = ...) -> None: ...

class WriteChunkReply(_message.Message):
    __slots__ = ("length",)
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    length: int
    def __init__(self, length: _Optional[int] = ...) -> None: ...

class ReadChunkRequest(_message.Message):
    __slots__ = ("key", "offset", "length", "cap")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    key: ChunkKey
    offset: int
    length: int
    cap: ChunkCap
    def __init__(self, key: _Optional[_Union[ChunkKey, _Mapping]] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., cap: _Optional[_Union[ChunkCap, _Mapping]] = ...) -> None: ...

class ReadChunkReply(_message.Message):
    __slots__ = ("data", "exists")
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    exists: bool
    def __init__(self, data: _Optional[bytes] = ..., exists: _Optional[bool] = ...) -> None: ...

class DeleteChunksRequest(_message.Message):
    __slots__ = ("ino", "from_index", "to_index", "max_write_seq", "min_age_ns")
    INO_FIELD_NUMBER: _ClassVar[int]
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    TO_INDEX_FIELD_NUMBER: _ClassVar[int]
    MAX_WRITE_SEQ_FIELD_NUMBER: _ClassVar[int]
    MIN_AGE_NS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    from_index: int
    to_index: int
    max_write_seq: int
    min_age_ns: int
    def __init__(self, ino: _Optional[int] = ..., from_index: _Optional[int] = ..., to_index: _Optional[int] = ..., max_write_seq: _Optional[int] = ..., min_age_ns: _Optional[int] = ...) -> None: ...

class TruncateChunkRequest(_message.Message):
    __slots__ = ("key", "length", "max_write_seq", "min_age_ns")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_WRITE_SEQ_FIELD_NUMBER: _ClassVar[int]
    MIN_AGE_NS_FIELD_NUMBER: _ClassVar[int]
    key: ChunkKey
    length: int
    max_write_seq: int
    min_age_ns: int
    def __init__(self, key: _Optional[_Union[ChunkKey, _Mapping]] = ..., length: _Optional[int] = ..., max_write_seq: _Optional[int] = ..., min_age_ns: _Optional[int] = ...) -> None: ...

class ListChunksRequest(_message.Message):
    __slots__ = ("after_ino", "after_index", "limit", "verify")
    AFTER_INO_FIELD_NUMBER: _ClassVar[int]
    AFTER_INDEX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    after_ino: int
    after_index: int
    limit: int
    verify: bool
    def __init__(self, after_ino: _Optional[int] = ..., after_index: _Optional[int] = ..., limit: _Optional[int] = ..., verify: _Optional[bool] = ...) -> None: ...

class ChunkEntry(_message.Message):
    __slots__ = ("key", "length", "corrupt", "checksum", "algorithm", "written_ns", "write_seq")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_NS_FIELD_NUMBER: _ClassVar[int]
    WRITE_SEQ_FIELD_NUMBER: _ClassVar[int]
    key: ChunkKey
    length: int
    corrupt: bool
    checksum: int
    algorithm: int
    written_ns: int
    write_seq: int
    def __init__(self, key: _Optional[_Union[ChunkKey, _Mapping]] = ..., length: _Optional[int] = ..., corrupt: _Optional[bool] = ..., checksum: _Optional[int] = ..., algorithm: _Optional[int] = ..., written_ns: _Optional[int] = ..., write_seq: _Optional[int] = ...) -> None: ...

class ListChunksReply(_message.Message):
    __slots__ = ("chunks", "more", "write_seq", "now_ns")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    WRITE_SEQ_FIELD_NUMBER: _ClassVar[int]
    NOW_NS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkEntry]
    more: bool
    write_seq: int
    now_ns: int
    def __init__(self, chunks: _Optional[_Iterable[_Union[ChunkEntry, _Mapping]]] = ..., more: _Optional[bool] = ..., write_seq: _Optional[int] = ..., now_ns: _Optional[int] = ...) -> None: ...

class ChunkPiece(_message.Message):
    __slots__ = ("key", "offset", "truncate", "data", "cap")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    key: ChunkKey
    offset: int
    truncate: bool
    data: bytes
    cap: ChunkCap
    def __init__(self, key: _Optional[_Union[ChunkKey, _Mapping]] = ..., offset: _Optional[int] = ..., truncate: _Optional[bool] = ..., data: _Optional[bytes] = ..., cap: _Optional[_Union[ChunkCap, _Mapping]] = ...) -> None: ...

class DataStatsReply(_message.Message):
    __slots__ = ("chunks", "bytes", "db_bytes", "degraded", "write_seq", "now_ns")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DB_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    WRITE_SEQ_FIELD_NUMBER: _ClassVar[int]
    NOW_NS_FIELD_NUMBER: _ClassVar[int]
    chunks: int
    bytes: int
    db_bytes: int
    degraded: bool
    write_seq: int
    now_ns: int
    def __init__(self, chunks: _Optional[int] = ..., bytes: _Optional[int] = ..., db_bytes: _Optional[int] = ..., degraded: _Optional[bool] = ..., write_seq: _Optional[int] = ..., now_ns: _Optional[int] = ...) -> None: ...

class FenceWritesRequest(_message.Message):
    __slots__ = ("ino", "hold_ns", "admit_mac")
    INO_FIELD_NUMBER: _ClassVar[int]
    HOLD_NS_FIELD_NUMBER: _ClassVar[int]
    ADMIT_MAC_FIELD_NUMBER: _ClassVar[int]
    ino: int
    hold_ns: int
    admit_mac: bytes
    def __init__(self, ino: _Optional[int] = ..., hold_ns: _Optional[int] = ..., admit_mac: _Optional[bytes] = ...) -> None: ...

class ListAllDirsRequest(_message.Message):
    __slots__ = ("after_ino", "limit")
    AFTER_INO_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_ino: int
    limit: int
    def __init__(self, after_ino: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class DirIntent(_message.Message):
    __slots__ = ("id", "op", "ino", "parent", "name", "dst_parent", "dst_name", "replaced_ino", "aborting")
    ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PARENT_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    REPLACED_INO_FIELD_NUMBER: _ClassVar[int]
    ABORTING_FIELD_NUMBER: _ClassVar[int]
    id: int
    op: str
    ino: int
    parent: int
    name: str
    dst_parent: int
    dst_name: str
    replaced_ino: int
    aborting: bool
    def __init__(self, id: _Optional[int] = ..., op: _Optional[str] = ..., ino: _Optional[int] = ..., parent: _Optional[int] = ..., name: _Optional[str] = ..., dst_parent: _Optional[int] = ..., dst_name: _Optional[str] = ..., replaced_ino: _Optional[int] = ..., aborting: _Optional[bool] = ...) -> None: ...

class DirIntentsReply(_message.Message):
    __slots__ = ("intents",)
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    intents: _containers.RepeatedCompositeFieldContainer[DirIntent]
    def __init__(self, intents: _Optional[_Iterable[_Union[DirIntent, _Mapping]]] = ...) -> None: ...

class FenceWritersRequest(_message.Message):
    __slots__ = ("ino", "size", "generation")
    INO_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ino: int
    size: int
    generation: int
    def __init__(self, ino: _Optional[int] = ..., size: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: bytes
    limit: int
    def __init__(self, after: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class EntryRecord(_message.Message):
    __slots__ = ("parent_ino", "name", "ino", "type")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    ino: int
    type: FileType
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ...) -> None: ...

class ScanEntriesReply(_message.Message):
    __slots__ = ("entries", "next", "more")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[EntryRecord]
    next: bytes
    more: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[EntryRecord, _Mapping]]] = ..., next: _Optional[bytes] = ..., more: _Optional[bool] = ...) -> None: ...

class ScanInodesReply(_message.Message):
    __slots__ = ("files", "next", "more")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    next: bytes
    more: bool
    def __init__(self, files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., next: _Optional[bytes] = ..., more: _Optional[bool] = ...) -> None: ...

class ShardIntent(_message.Message):
    __slots__ = ("kind", "txid", "ino", "parent_ino", "name", "dst_parent", "dst_name", "created_ns")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PARENT_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    txid: str
    ino: int
    parent_ino: int
    name: str
    dst_parent: int
    dst_name: str
    created_ns: int
    def __init__(self, kind: _Optional[str] = ..., txid: _Optional[str] = ..., ino: _Optional[int] = ..., parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., dst_parent: _Optional[int] = ..., dst_name: _Optional[str] = ..., created_ns: _Optional[int] = ...) -> None: ...

class OutboxEntry(_message.Message):
    __slots__ = ("txid", "ino", "delta", "created_ns")
    TXID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    txid: str
    ino: int
    delta: int
    created_ns: int
    def __init__(self, txid: _Optional[str] = ..., ino: _Optional[int] = ..., delta: _Optional[int] = ..., created_ns: _Optional[int] = ...) -> None: ...

class ReclaimEntry(_message.Message):
    __slots__ = ("ino", "from_size", "freed", "layout", "chunk_size", "generation")
    INO_FIELD_NUMBER: _ClassVar[int]
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    FREED_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ino: int
    from_size: int
    freed: bool
    layout: _containers.RepeatedScalarFieldContainer[int]
    chunk_size: int
    generation: int
    def __init__(self, ino: _Optional[int] = ..., from_size: _Optional[int] = ..., freed: _Optional[bool] = ..., layout: _Optional[_Iterable[int]] = ..., chunk_size: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class ShardPendingReply(_message.Message):
    __slots__ = ("intents", "outbox", "reclaim", "sealed_dirs", "applied_records", "unconfirmed", "ops_begun", "ops_low_water", "counters")
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_FIELD_NUMBER: _ClassVar[int]
    SEALED_DIRS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    UNCONFIRMED_FIELD_NUMBER: _ClassVar[int]
    OPS_BEGUN_FIELD_NUMBER: _ClassVar[int]
    OPS_LOW_WATER_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    intents: _containers.RepeatedCompositeFieldContainer[ShardIntent]
    outbox: _containers.RepeatedCompositeFieldContainer[OutboxEntry]
    reclaim: _containers.RepeatedCompositeFieldContainer[ReclaimEntry]
    sealed_dirs: _containers.RepeatedScalarFieldContainer[int]
    applied_records: int
    unconfirmed: int
    ops_begun: int
    ops_low_water: int
    counters: _containers.RepeatedCompositeFieldContainer[PartitionCounter]
    def __init__(self, intents: _Optional[_Iterable[_Union[ShardIntent, _Mapping]]] = ..., outbox: _Optional[_Iterable[_Union[OutboxEntry, _Mapping]]] = ..., reclaim: _Optional[_Iterable[_Union[ReclaimEntry, _Mapping]]] = ..., sealed_dirs: _Optional[_Iterable[int]] = ..., applied_records: _Optional[int] = ..., unconfirmed: _Optional[int] = ..., ops_begun: _Optional[int] = ..., ops_low_water: _Optional[int] = ..., counters: _Optional[_Iterable[_Union[PartitionCounter, _Mapping]]] = ...) -> None: ...

class PartitionCounter(_message.Message):
    __slots__ = ("partition", "last", "delegated_end", "delegations")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_END_FIELD_NUMBER: _ClassVar[int]
    DELEGATIONS_FIELD_NUMBER: _ClassVar[int]
    partition: int
    last: int
    delegated_end: int
    delegations: int
    def __init__(self, partition: _Optional[int] = ..., last: _Optional[int] = ..., delegated_end: _Optional[int] = ..., delegations: _Optional[int] = ...) -> None: ...

class RemoveEntryRequest(_message.Message):
    __slots__ = ("parent_ino", "name", "ino", "drop_link")
    PARENT_INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    DROP_LINK_FIELD_NUMBER: _ClassVar[int]
    parent_ino: int
    name: str
    ino: int
    drop_link: bool
    def __init__(self, parent_ino: _Optional[int] = ..., name: _Optional[str] = ..., ino: _Optional[int] = ..., drop_link: _Optional[bool] = ...) -> None: ...

class SetDegradedRequest(_message.Message):
    __slots__ = ("degraded",)
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    degraded: bool
    def __init__(self, degraded: _Optional[bool] = ...) -> None: ...

class MovePartitionRequest(_message.Message):
    __slots__ = ("partition", "target")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    partition: int
    target: int
    def __init__(self, partition: _Optional[int] = ..., target: _Optional[int] = ...) -> None: ...

class RemoveShardRequest(_message.Message):
    __slots__ = ("shard_id",)
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    def __init__(self, shard_id: _Optional[int] = ...) -> None: ...

class PartitionRequest(_message.Message):
    __slots__ = ("partition",)
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    partition: int
    def __init__(self, partition: _Optional[int] = ...) -> None: ...

class PartitionExportRequest(_message.Message):
    __slots__ = ("partition", "db", "after", "limit")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    DB_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    partition: int
    db: str
    after: bytes
    limit: int
    def __init__(self, partition: _Optional[int] = ..., db: _Optional[str] = ..., after: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class PartitionRow(_message.Message):
    __slots__ = ("db", "key", "value")
    DB_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    db: str
    key: bytes
    value: bytes
    def __init__(self, db: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class PartitionRows(_message.Message):
    __slots__ = ("partition", "rows", "next_db", "next", "more")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_DB_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    rows: _containers.RepeatedCompositeFieldContainer[PartitionRow]
    next_db: str
    next: bytes
    more: bool
    def __init__(self, partition: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[PartitionRow, _Mapping]]] = ..., next_db: _Optional[str] = ..., next: _Optional[bytes] = ..., more: _Optional[bool] = ...) -> None: ...

class PartitionDigest(_message.Message):
    __slots__ = ("partition", "rows", "digest")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    partition: int
    rows: int
    digest: bytes
    def __init__(self, partition: _Optional[int] = ..., rows: _Optional[int] = ..., digest: _Optional[bytes] = ...) -> None: ...
