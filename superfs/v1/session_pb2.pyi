from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Frame(_message.Message):
    __slots__ = ("kind", "id", "method", "body", "timeout_ms", "errno_name", "message", "from_daemon", "done_below", "session_id", "token", "version", "boot_id", "max_frame")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Frame.Kind]
        HELLO: _ClassVar[Frame.Kind]
        WELCOME: _ClassVar[Frame.Kind]
        CALL: _ClassVar[Frame.Kind]
        REPLY: _ClassVar[Frame.Kind]
        CANCEL: _ClassVar[Frame.Kind]
        PING: _ClassVar[Frame.Kind]
        PONG: _ClassVar[Frame.Kind]
    KIND_UNSPECIFIED: Frame.Kind
    HELLO: Frame.Kind
    WELCOME: Frame.Kind
    CALL: Frame.Kind
    REPLY: Frame.Kind
    CANCEL: Frame.Kind
    PING: Frame.Kind
    PONG: Frame.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ERRNO_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FROM_DAEMON_FIELD_NUMBER: _ClassVar[int]
    DONE_BELOW_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_FIELD_NUMBER: _ClassVar[int]
    kind: Frame.Kind
    id: int
    method: str
    body: bytes
    timeout_ms: int
    errno_name: str
    message: str
    from_daemon: bool
    done_below: int
    session_id: bytes
    token: str
    version: int
    boot_id: bytes
    max_frame: int
    def __init__(self, kind: _Optional[_Union[Frame.Kind, str]] = ..., id: _Optional[int] = ..., method: _Optional[str] = ..., body: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ..., errno_name: _Optional[str] = ..., message: _Optional[str] = ..., from_daemon: _Optional[bool] = ..., done_below: _Optional[int] = ..., session_id: _Optional[bytes] = ..., token: _Optional[str] = ..., version: _Optional[int] = ..., boot_id: _Optional[bytes] = ..., max_frame: _Optional[int] = ...) -> None: ...
