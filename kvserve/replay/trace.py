"""Serving traces in the Mooncake format: one JSON request per line.

Fields: ``timestamp`` (ms from the start), ``input_length`` and
``output_length`` (tokens), ``hash_ids`` (one id per block of the prompt,
prefix-chained: requests sharing their first k ids share their first k
blocks). Requests are replayed in timestamp order (stable for ties).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

DEFAULT_BLOCK_TOKENS = 512


class TraceError(ValueError):
    """The trace file is not in the expected format; the message names the line."""


@dataclass(frozen=True)
class TraceRequest:
    timestamp: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]

    def block_tokens(self, i: int, block_tokens: int = DEFAULT_BLOCK_TOKENS) -> int:
        """Tokens of the prompt in block ``i`` (the last block may be partial)."""
        return max(0, min(block_tokens, self.input_length - i * block_tokens))


def load_trace(path: str, *, limit: int | None = None) -> list[TraceRequest]:
    out: list[TraceRequest] = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                req = TraceRequest(float(rec["timestamp"]), int(rec["input_length"]), int(rec.get("output_length", 0)),
                                   tuple(int(h) for h in rec["hash_ids"]))
            except (ValueError, KeyError, TypeError) as e:
                raise TraceError(f"{path}:{lineno}: not a trace record ({e.__class__.__name__}: {e})") from None
            if req.input_length < 0 or any(h < 0 for h in req.hash_ids):
                raise TraceError(f"{path}:{lineno}: negative length or hash id")
            out.append(req)
            if limit is not None and len(out) >= limit:
                break
    out.sort(key=lambda r: r.timestamp)
    return out


@dataclass(frozen=True)
class TraceSummary:
    requests: int
    blocks: int
    distinct_blocks: int
    input_tokens: int


def summarize(requests: Sequence[TraceRequest]) -> TraceSummary:
    distinct: set[int] = set()
    for r in requests:
        distinct.update(r.hash_ids)
    return TraceSummary(len(requests), sum(len(r.hash_ids) for r in requests), len(distinct),
                        sum(r.input_length for r in requests))
