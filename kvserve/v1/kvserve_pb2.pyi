from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_NONE: _ClassVar[Tier]
    DRAM: _ClassVar[Tier]
    SUPERFS: _ClassVar[Tier]

class ObjectStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECT_STATUS_UNSPECIFIED: _ClassVar[ObjectStatus]
    OK: _ClassVar[ObjectStatus]
    MISSING: _ClassVar[ObjectStatus]
    EXISTS: _ClassVar[ObjectStatus]
    TOO_LARGE: _ClassVar[ObjectStatus]
    NO_SPACE: _ClassVar[ObjectStatus]
    CORRUPT: _ClassVar[ObjectStatus]
    ABORTED: _ClassVar[ObjectStatus]
    FALLBACK: _ClassVar[ObjectStatus]
    UNAVAILABLE: _ClassVar[ObjectStatus]
TIER_NONE: Tier
DRAM: Tier
SUPERFS: Tier
OBJECT_STATUS_UNSPECIFIED: ObjectStatus
OK: ObjectStatus
MISSING: ObjectStatus
EXISTS: ObjectStatus
TOO_LARGE: ObjectStatus
NO_SPACE: ObjectStatus
CORRUPT: ObjectStatus
ABORTED: ObjectStatus
FALLBACK: ObjectStatus
UNAVAILABLE: ObjectStatus

class ObjectMeta(_message.Message):
    __slots__ = ("key", "size", "checksum", "pin")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    size: int
    checksum: int
    pin: bool
    def __init__(self, key: _Optional[bytes] = ..., size: _Optional[int] = ..., checksum: _Optional[int] = ..., pin: _Optional[bool] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("namespace", "object", "data")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    object: ObjectMeta
    data: bytes
    def __init__(self, namespace: _Optional[str] = ..., object: _Optional[_Union[ObjectMeta, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PutReply(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ObjectStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ObjectStatus, str]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("namespace", "keys", "prefix")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    prefix: bool
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[bytes]] = ..., prefix: _Optional[bool] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("object", "status", "tier", "data")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    object: ObjectMeta
    status: ObjectStatus
    tier: Tier
    data: bytes
    def __init__(self, object: _Optional[_Union[ObjectMeta, _Mapping]] = ..., status: _Optional[_Union[ObjectStatus, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class KeysRequest(_message.Message):
    __slots__ = ("namespace", "keys")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ExistsReply(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedScalarFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, str]]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ObjectStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ObjectStatus, str]]] = ...) -> None: ...

class PinRequest(_message.Message):
    __slots__ = ("namespace", "keys", "pinned")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    pinned: bool
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[bytes]] = ..., pinned: _Optional[bool] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class AttachReply(_message.Message):
    __slots__ = ("available", "path", "size", "token", "reason")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    available: bool
    path: str
    size: int
    token: bytes
    reason: str
    def __init__(self, available: _Optional[bool] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., token: _Optional[bytes] = ..., reason: _Optional[str] = ...) -> None: ...

class Extent(_message.Message):
    __slots__ = ("offset", "length")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    offset: int
    length: int
    def __init__(self, offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("status", "tier", "object", "extents")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    EXTENTS_FIELD_NUMBER: _ClassVar[int]
    status: ObjectStatus
    tier: Tier
    object: ObjectMeta
    extents: _containers.RepeatedCompositeFieldContainer[Extent]
    def __init__(self, status: _Optional[_Union[ObjectStatus, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., object: _Optional[_Union[ObjectMeta, _Mapping]] = ..., extents: _Optional[_Iterable[_Union[Extent, _Mapping]]] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("namespace", "objects")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    objects: _containers.RepeatedCompositeFieldContainer[ObjectMeta]
    def __init__(self, namespace: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[ObjectMeta, _Mapping]]] = ...) -> None: ...

class ReserveReply(_message.Message):
    __slots__ = ("reservation", "placements", "arena")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    reservation: int
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    arena: bytes
    def __init__(self, reservation: _Optional[int] = ..., placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., arena: _Optional[bytes] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("reservation", "abort", "checksums")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    reservation: int
    abort: bool
    checksums: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, reservation: _Optional[int] = ..., abort: _Optional[bool] = ..., checksums: _Optional[_Iterable[int]] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("namespace", "keys", "prefix", "release")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    prefix: bool
    release: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[bytes]] = ..., prefix: _Optional[bool] = ..., release: _Optional[_Iterable[int]] = ...) -> None: ...

class LeaseReply(_message.Message):
    __slots__ = ("lease", "placements", "lease_seconds", "arena")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    lease: int
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    lease_seconds: float
    arena: bytes
    def __init__(self, lease: _Optional[int] = ..., placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., lease_seconds: _Optional[float] = ..., arena: _Optional[bytes] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, leases: _Optional[_Iterable[int]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TierStats(_message.Message):
    __slots__ = ("objects", "bytes", "capacity", "hits", "evictions", "bytes_read", "bytes_written", "corrupt", "misses")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    objects: int
    bytes: int
    capacity: int
    hits: int
    evictions: int
    bytes_read: int
    bytes_written: int
    corrupt: int
    misses: int
    def __init__(self, objects: _Optional[int] = ..., bytes: _Optional[int] = ..., capacity: _Optional[int] = ..., hits: _Optional[int] = ..., evictions: _Optional[int] = ..., bytes_read: _Optional[int] = ..., bytes_written: _Optional[int] = ..., corrupt: _Optional[int] = ..., misses: _Optional[int] = ...) -> None: ...

class StatsReply(_message.Message):
    __slots__ = ("dram", "superfs", "misses", "puts", "leases_active", "demotions_dropped", "policy", "max_object_bytes", "namespaces", "superfs_enabled")
    DRAM_FIELD_NUMBER: _ClassVar[int]
    SUPERFS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    PUTS_FIELD_NUMBER: _ClassVar[int]
    LEASES_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DEMOTIONS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECT_BYTES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    SUPERFS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    dram: TierStats
    superfs: TierStats
    misses: int
    puts: int
    leases_active: int
    demotions_dropped: int
    policy: str
    max_object_bytes: int
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    superfs_enabled: bool
    def __init__(self, dram: _Optional[_Union[TierStats, _Mapping]] = ..., superfs: _Optional[_Union[TierStats, _Mapping]] = ..., misses: _Optional[int] = ..., puts: _Optional[int] = ..., leases_active: _Optional[int] = ..., demotions_dropped: _Optional[int] = ..., policy: _Optional[str] = ..., max_object_bytes: _Optional[int] = ..., namespaces: _Optional[_Iterable[str]] = ..., superfs_enabled: _Optional[bool] = ...) -> None: ...

class AttendSequence(_message.Message):
    __slots__ = ("keys", "tail_tokens")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TAIL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    tail_tokens: int
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., tail_tokens: _Optional[int] = ...) -> None: ...

class AttendRequest(_message.Message):
    __slots__ = ("namespace", "layers", "kv_heads", "head_dim", "block_tokens", "q_heads", "layer", "scale", "sequences", "queries", "tail_k", "tail_v")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    BLOCK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    Q_HEADS_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TAIL_K_FIELD_NUMBER: _ClassVar[int]
    TAIL_V_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    layers: int
    kv_heads: int
    head_dim: int
    block_tokens: int
    q_heads: int
    layer: int
    scale: float
    sequences: _containers.RepeatedCompositeFieldContainer[AttendSequence]
    queries: bytes
    tail_k: bytes
    tail_v: bytes
    def __init__(self, namespace: _Optional[str] = ..., layers: _Optional[int] = ..., kv_heads: _Optional[int] = ..., head_dim: _Optional[int] = ..., block_tokens: _Optional[int] = ..., q_heads: _Optional[int] = ..., layer: _Optional[int] = ..., scale: _Optional[float] = ..., sequences: _Optional[_Iterable[_Union[AttendSequence, _Mapping]]] = ..., queries: _Optional[bytes] = ..., tail_k: _Optional[bytes] = ..., tail_v: _Optional[bytes] = ...) -> None: ...

class AttendResult(_message.Message):
    __slots__ = ("status", "missing_block")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MISSING_BLOCK_FIELD_NUMBER: _ClassVar[int]
    status: ObjectStatus
    missing_block: int
    def __init__(self, status: _Optional[_Union[ObjectStatus, str]] = ..., missing_block: _Optional[int] = ...) -> None: ...

class AttendReply(_message.Message):
    __slots__ = ("outputs", "results", "kv_bytes", "gathered_bytes", "compute_seconds")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    KV_BYTES_FIELD_NUMBER: _ClassVar[int]
    GATHERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    outputs: bytes
    results: _containers.RepeatedCompositeFieldContainer[AttendResult]
    kv_bytes: int
    gathered_bytes: int
    compute_seconds: float
    def __init__(self, outputs: _Optional[bytes] = ..., results: _Optional[_Iterable[_Union[AttendResult, _Mapping]]] = ..., kv_bytes: _Optional[int] = ..., gathered_bytes: _Optional[int] = ..., compute_seconds: _Optional[float] = ...) -> None: ...

class ObjectHeader(_message.Message):
    __slots__ = ("version", "namespace", "key", "size", "checksum")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    version: int
    namespace: str
    key: bytes
    size: int
    checksum: int
    def __init__(self, version: _Optional[int] = ..., namespace: _Optional[str] = ..., key: _Optional[bytes] = ..., size: _Optional[int] = ..., checksum: _Optional[int] = ...) -> None: ...

class ObjectFile(_message.Message):
    __slots__ = ("header", "payload")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    header: ObjectHeader
    payload: bytes
    def __init__(self, header: _Optional[_Union[ObjectHeader, _Mapping]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class SegmentEntry(_message.Message):
    __slots__ = ("namespace", "key", "offset", "size", "checksum")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: bytes
    offset: int
    size: int
    checksum: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., checksum: _Optional[int] = ...) -> None: ...

class SegmentFooter(_message.Message):
    __slots__ = ("version", "entries")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    version: int
    entries: _containers.RepeatedCompositeFieldContainer[SegmentEntry]
    def __init__(self, version: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[SegmentEntry, _Mapping]]] = ...) -> None: ...
