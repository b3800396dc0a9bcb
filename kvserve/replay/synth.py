"""Generate serving traces in the Mooncake format, deterministically from a seed.

For tests and for newcomers without a public trace at hand: ``python -m
kvserve gen-trace OUT.jsonl``. The trace mixes the three ways prompts share
prefixes in serving (and that the public Mooncake traces show):

* shared system prompts: a few prompts of a few blocks, picked with a Zipf
  popularity, that many requests start with;
* multi-turn conversations: each turn's prompt is the previous turn's prompt,
  its answer and a new user message, so it starts with the previous prompt's
  full blocks;
* one-off documents after the system prompt (no further sharing).

Arrivals are a Poisson process of ``rate`` requests per second; lengths are
log-normal. Block ids are prefix-chained as in the public traces: an id is
reused only behind the very same prefix. The generator also returns, per
request, how many of its leading blocks an earlier request already had (the
ground truth an unbounded prefix cache must find).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Iterator, TextIO

from kvserve.replay.trace import DEFAULT_BLOCK_TOKENS, TraceRequest


@dataclass(frozen=True)
class SynthConfig:
    requests: int = 2000
    rate: float = 4.0                   # requests per second (Poisson arrivals)
    seed: int = 0
    block_tokens: int = DEFAULT_BLOCK_TOKENS
    system_prompts: int = 8
    system_blocks: tuple[int, int] = (2, 12)   # a system prompt's length in full blocks (min, max)
    zipf_s: float = 1.2                 # popularity skew of the system prompts
    conversation_share: float = 0.6     # share of requests that are a turn of a conversation
    new_conversation: float = 0.35      # share of conversation turns that start a new conversation
    mean_user_tokens: float = 3000.0    # a new user message or document (log-normal mean)
    mean_output_tokens: float = 150.0
    max_input_tokens: int = 128 * 1024

    def __post_init__(self) -> None:
        if self.requests < 0 or self.rate <= 0 or self.block_tokens < 1 or self.system_prompts < 1:
            raise ValueError("requests >= 0, rate > 0, block_tokens >= 1 and system_prompts >= 1 are required")
        if not (0 <= self.conversation_share <= 1 and 0 <= self.new_conversation <= 1):
            raise ValueError("conversation_share and new_conversation are shares in [0, 1]")


@dataclass
class _Conversation:
    ids: list[int]      # the last prompt's block ids
    tokens: int         # the last prompt's length
    output: int         # the last answer's length


class _Ids:
    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def _lognormal(rng: random.Random, mean: float, sigma: float = 1.0) -> float:
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


def generate(cfg: SynthConfig) -> Iterator[tuple[TraceRequest, int]]:
    """Requests in arrival order, each with the number of its leading blocks seen before."""
    rng = random.Random(cfg.seed)
    bt = cfg.block_tokens
    ids = _Ids()
    systems = [ids.take(rng.randint(*cfg.system_blocks)) for _ in range(cfg.system_prompts)]
    weights = [1.0 / (i + 1) ** cfg.zipf_s for i in range(cfg.system_prompts)]
    used_systems: set[int] = set()
    open_conversations: list[_Conversation] = []
    t = 0.0
    for _ in range(cfg.requests):
        t += rng.expovariate(cfg.rate)
        output = max(1, int(_lognormal(rng, cfg.mean_output_tokens)))
        user = max(1, int(_lognormal(rng, cfg.mean_user_tokens)))
        conv = None
        if open_conversations and rng.random() < cfg.conversation_share * (1 - cfg.new_conversation):
            conv = open_conversations.pop(rng.randrange(len(open_conversations)))
        if conv is not None:
            # the next turn: the previous prompt, its answer, a new message
            tokens = min(cfg.max_input_tokens, conv.tokens + conv.output + user)
            keep = min(conv.tokens // bt, len(conv.ids), tokens // bt)  # its full blocks are shared
            hash_ids = conv.ids[:keep] + ids.take(-(-tokens // bt) - keep)
            seen = keep
        else:
            s = rng.choices(range(cfg.system_prompts), weights)[0]
            sys_ids = systems[s]
            tokens = min(cfg.max_input_tokens, len(sys_ids) * bt + user)
            keep = min(len(sys_ids), tokens // bt)
            hash_ids = sys_ids[:keep] + ids.take(-(-tokens // bt) - keep)
            seen = keep if s in used_systems else 0
            used_systems.add(s)
        req = TraceRequest(round(t * 1000), tokens, output, tuple(hash_ids))
        if conv is not None or rng.random() < cfg.conversation_share * cfg.new_conversation:
            open_conversations.append(_Conversation(list(hash_ids), tokens, output))
        yield req, seen


def write_trace(out: TextIO | str, cfg: SynthConfig) -> int:
    """Write a generated trace (one JSON object per line); returns the number of prompt blocks seen before."""
    if isinstance(out, str):
        with open(out, "w") as f:
            return write_trace(f, cfg)
    seen_total = 0
    for req, seen in generate(cfg):
        out.write(json.dumps({"timestamp": int(req.timestamp), "input_length": req.input_length,
                              "output_length": req.output_length, "hash_ids": list(req.hash_ids)}) + "\n")
        seen_total += seen
    return seen_total
