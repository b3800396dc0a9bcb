"""Exceptions raised by ckpt: one base class, one subclass per way a checkpoint can be wrong.

Lower layers (storage backends, the SuperFS client) raise OSError; ckpt
turns those into these classes at the point where it knows which item and
which file were involved, so a message always says what to look at.
"""
from __future__ import annotations


class CheckpointError(Exception):
    """Base class: the checkpoint could not be saved, found, or loaded."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No committed checkpoint at the path (or not the requested step)."""


class CheckpointExistsError(CheckpointError, FileExistsError):
    """A committed checkpoint already exists for this step."""


class ManifestError(CheckpointError):
    """The manifest is missing, unreadable, or not a ckpt manifest."""


class FutureVersionError(ManifestError):
    """The manifest was written by a newer ckpt than this one."""


class CorruptionError(CheckpointError):
    """Stored bytes do not match their checksum; names the item and the file."""

    def __init__(self, message: str, *, item: str, file: str) -> None:
        super().__init__(message)
        self.item = item
        self.file = file


class MissingShardError(CheckpointError):
    """A data file the manifest refers to is missing or too short."""

    def __init__(self, message: str, *, item: str, file: str) -> None:
        super().__init__(message)
        self.item = item
        self.file = file


class MismatchError(CheckpointError):
    """The load target disagrees with the checkpoint (shape, dtype, kind, missing key)."""


class PlanError(CheckpointError):
    """The ranks' states do not form a valid checkpoint (overlaps, gaps, disagreements)."""


class CoordinationError(CheckpointError):
    """Ranks could not agree in time (a rank died or is stuck), or another rank failed."""
