"""Exceptions chukonu raises, named as PySpark names them where one exists.

``AnalysisException`` is raised while a DataFrame is being built (a missing
column, a schema mismatch), before anything runs. ``TaskFailedError`` is
raised by an action when a task failed: it names the stage and partition and
carries the original error's type, message and traceback text, because the
exception object itself may not survive the trip from a worker process.
"""
from __future__ import annotations


class ChukonuError(Exception):
    """Base class of chukonu's own errors."""


class AnalysisException(ChukonuError):
    """The query is invalid: unknown column, incompatible schemas, bad arguments."""


class TaskFailedError(ChukonuError):
    """A task of a job failed; the message names the partition and the cause."""

    def __init__(self, message: str, *, stage: int = -1, partition: int = -1, cause_type: str = "",
                 cause_message: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.partition = partition
        self.cause_type = cause_type
        self.cause_message = cause_message
        self.remote_traceback = remote_traceback

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # keyword-only fields would be lost by the default pickling
        return (_rebuild_task_failed, (str(self), self.stage, self.partition, self.cause_type,
                                       self.cause_message, self.remote_traceback))


def _rebuild_task_failed(message: str, stage: int, partition: int, cause_type: str, cause_message: str,
                         remote_traceback: str) -> TaskFailedError:
    return TaskFailedError(message, stage=stage, partition=partition, cause_type=cause_type,
                           cause_message=cause_message, remote_traceback=remote_traceback)


# PySpark spells the UDF failure this way; pipelines catch it by name.
PythonException = TaskFailedError


class SparkArithmeticException(ChukonuError, ArithmeticError):
    """ANSI mode: division by zero or an integer overflow (Spark's error class leads the message)."""


class SparkNumberFormatException(ChukonuError, ValueError):
    """ANSI mode: a cast of malformed input ([CAST_INVALID_INPUT])."""


class SparkArrayIndexOutOfBoundsException(ChukonuError, IndexError):
    """ANSI mode: element_at past the end of an array ([INVALID_ARRAY_INDEX_IN_ELEMENT_AT])."""


def divide_by_zero(remainder: bool = False) -> SparkArithmeticException:
    if remainder:
        return SparkArithmeticException(
            "[REMAINDER_BY_ZERO] Remainder by zero. Use `try_mod` to tolerate divisor being 0 and return NULL "
            "instead. If necessary set \"spark.sql.ansi.enabled\" to \"false\" to bypass this error.")
    return SparkArithmeticException(
        "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 and return NULL instead. "
        "If necessary set \"spark.sql.ansi.enabled\" to \"false\" to bypass this error.")


def unsupported(call: str, hint: str = "") -> NotImplementedError:
    """The NotImplementedError for a PySpark call chukonu does not provide."""
    msg = f"{call} is not supported by chukonu"
    if hint:
        msg += f" ({hint})"
    return NotImplementedError(msg)
