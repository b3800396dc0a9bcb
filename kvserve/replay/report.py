"""ReplayReport: what a replay measured, as one JSON object.

Hit ratios are prefix hit ratios: a request's hits are its leading blocks
found in the store, counted by the tier that served each (a block found
behind a missing one is useless to the serving engine and not counted).
Token ratios weight each block by its prompt tokens; the tokens of hit
blocks are the prefill tokens saved.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TierCounts:
    blocks: int = 0
    tokens: int = 0


@dataclass
class ReplayReport:
    mode: str                              # "simulate" or "drive"
    trace: str
    requests: int
    blocks: int
    distinct_blocks: int
    input_tokens: int
    block_bytes: int
    policy: str
    dram_capacity_bytes: int | None        # None: unbounded
    superfs_capacity_bytes: int | None     # None: unbounded (when the tier is enabled)
    superfs_enabled: bool
    hits: dict[str, TierCounts] = field(default_factory=lambda: {"dram": TierCounts(), "superfs": TierCounts()})
    bytes_moved: dict[str, int] = field(default_factory=lambda: {
        "dram_read": 0, "dram_written": 0, "superfs_read": 0, "superfs_written": 0})
    evictions: dict[str, int] = field(default_factory=lambda: {"dram": 0, "superfs": 0})
    wrong_data: int = 0                    # drive: blocks whose bytes were not the ones put (must be 0)
    unavailable: int = 0                   # drive: puts refused because a daemon was down
    seconds: float = 0.0

    def add_hit(self, tier: str, tokens: int) -> None:
        c = self.hits[tier]
        c.blocks += 1
        c.tokens += tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        dram, sfs = self.hits["dram"], self.hits["superfs"]
        hit_blocks, hit_tokens = dram.blocks + sfs.blocks, dram.tokens + sfs.tokens

        def ratio(n: int, total: int) -> float:
            return round(n / total, 6) if total else 0.0

        d["hit_ratio"] = {
            "blocks": {"dram": ratio(dram.blocks, self.blocks), "superfs": ratio(sfs.blocks, self.blocks),
                       "total": ratio(hit_blocks, self.blocks)},
            "tokens": {"dram": ratio(dram.tokens, self.input_tokens), "superfs": ratio(sfs.tokens, self.input_tokens),
                       "total": ratio(hit_tokens, self.input_tokens)},
        }
        d["prefill_tokens_saved"] = hit_tokens
        d["prefill_tokens_total"] = self.input_tokens
        d["seconds"] = round(self.seconds, 3)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
