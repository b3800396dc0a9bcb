"""How the ranks of one save agree: a Coordinator, through files by default or a torch process group.

Call order on every rank (``ckpt.save`` drives it)::

    step, token = c.begin(step, choose_step)   # rank 0 decides both
    mine = c.exchange(local_plan, make_plan)   # make_plan(all plans) runs on rank 0
    reports = c.gather(report)                 # rank 0 gets every rank's report
    outcome = c.release(outcome)               # rank 0 tells everyone how it ended

``FileCoordinator`` needs nothing but the storage itself, so plain
processes (no MPI, no torch) can save together. Its files live in
``ROOT/.coord``: rank 0 publishes ``attempt.json`` (token, step), every
rank writes ``<token>/plan.R.json`` with a fresh random nonce, and rank 0
answers ``<token>/go.R.json`` echoing that nonce. The nonce is what makes
files left by a crashed earlier attempt harmless: a rank that joined a
stale attempt never sees its own nonce echoed, notices the new
``attempt.json`` and joins again. A rank that dies makes the others fail
with CoordinationError after ``timeout_s``; nothing is committed.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any, Callable

from ckpt.catalog import COORD_DIR
from superfs.extras import require
from ckpt.errors import CoordinationError, PlanError
from ckpt.storage import Storage, join

log = logging.getLogger(__name__)

ATTEMPT = join(COORD_DIR, "attempt.json")
MakePlan = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
_seen_tokens: dict[tuple[str, int], set[str]] = {}  # per (root, rank): attempts already joined


class Restarted(Exception):
    """A newer attempt replaced the one this rank joined: start the save again."""


class Coordinator(ABC):
    rank: int
    world_size: int

    @abstractmethod
    def begin(self, step: int | None, choose_step: Callable[[], int]) -> tuple[int, str]: ...

    @abstractmethod
    def exchange(self, local: dict[str, Any], make_plan: MakePlan) -> dict[str, Any]: ...

    @abstractmethod
    def gather(self, report: dict[str, Any]) -> list[dict[str, Any]] | None: ...

    @abstractmethod
    def release(self, outcome: dict[str, Any] | None) -> dict[str, Any]: ...

    def _plan_on_root(self, plans: list[dict[str, Any]], make_plan: MakePlan
                      ) -> tuple[list[dict[str, Any]], Exception | None]:
        try:
            per_rank = make_plan(plans)
            return per_rank, None
        except Exception as e:  # noqa: BLE001 - every rank must hear about it, then it is re-raised
            return [{"error": str(e)}] * self.world_size, e


def _check_plan(mine: dict[str, Any]) -> dict[str, Any]:
    if mine.get("error"):
        raise PlanError(mine["error"])
    return mine


class FileCoordinator(Coordinator):
    def __init__(self, storage: Storage, rank: int, world_size: int, timeout_s: float = 600.0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.storage = storage
        self.rank = rank
        self.world_size = world_size
        self.timeout_s = timeout_s
        self.token = ""
        self.nonce = ""
        self.nonces: list[str] = []

    # ---------------------------------------------------------------- helpers

    def _path(self, name: str) -> str:
        return join(COORD_DIR, self.token, name)

    def _read_json(self, path: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.storage.read_bytes(path))
        except (FileNotFoundError, ValueError):
            return None

    def _write_json(self, path: str, doc: dict[str, Any]) -> None:
        self.storage.write_atomic(path, json.dumps(doc, separators=(",", ":")).encode())

    def _poll(self, what: str, ready: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout_s
        pause = 0.002
        while True:
            got = ready()
            if got is not None:
                return got
            if time.monotonic() > deadline:
                raise CoordinationError(f"rank {self.rank}: timed out after {self.timeout_s:.0f} s waiting for "
                                        f"{what}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)

    def _attempt_changed(self) -> bool:
        doc = self._read_json(ATTEMPT)
        return doc is not None and doc.get("token") != self.token

    def _wait_all(self, kind: str) -> list[dict[str, Any]]:
        """Rank 0: every rank's ``kind.R.json`` of this attempt (reports must echo the rank's nonce)."""
        got: dict[int, dict[str, Any]] = {}

        def ready() -> list[dict[str, Any]] | None:
            try:
                names = set(self.storage.listdir(join(COORD_DIR, self.token)))
            except FileNotFoundError:
                names = set()
            for r in range(self.world_size):
                if r not in got and f"{kind}.{r}.json" in names:
                    doc = self._read_json(self._path(f"{kind}.{r}.json"))
                    if doc is not None and (not self.nonces or doc.get("nonce") == self.nonces[r]):
                        got[r] = doc
            return [got[r] for r in range(self.world_size)] if len(got) == self.world_size else None

        try:
            return self._poll(f"the {kind} of every rank", ready)
        except CoordinationError:
            missing = [r for r in range(self.world_size) if r not in got]
            raise CoordinationError(f"ranks {missing} did not report their {kind} within {self.timeout_s:.0f} s "
                                    "(dead or stuck?); nothing was committed") from None

    def _wait_own(self, name: str, what: str) -> dict[str, Any]:
        """Non-zero ranks: rank 0's answer ``name`` for this attempt, echoing our nonce."""

        def ready() -> dict[str, Any] | None:
            doc = self._read_json(self._path(name))
            if doc is not None and doc.get("nonce") == self.nonce:
                return doc
            if self._attempt_changed():
                raise Restarted()
            return None

        return self._poll(what, ready)

    # ---------------------------------------------------------------- protocol

    def begin(self, step: int | None, choose_step: Callable[[], int]) -> tuple[int, str]:
        if self.rank == 0:
            step = choose_step() if step is None else step
            self.token = uuid.uuid4().hex[:16]
            self.storage.makedirs(join(COORD_DIR, self.token))
            self._write_json(ATTEMPT, {"token": self.token, "step": step, "world_size": self.world_size})
            return step, self.token
        seen = _seen_tokens.setdefault((self.storage.url, self.rank), set())

        def ready() -> tuple[int, str] | None:
            doc = self._read_json(ATTEMPT)
            if (doc is None or doc.get("token") in seen or doc.get("world_size") != self.world_size
                    or (step is not None and doc.get("step") != step)):
                return None
            return int(doc["step"]), str(doc["token"])

        got_step, self.token = self._poll("rank 0 to start the save", ready)
        seen.add(self.token)
        return got_step, self.token

    def exchange(self, local: dict[str, Any], make_plan: MakePlan) -> dict[str, Any]:
        self.nonce = uuid.uuid4().hex
        try:
            self._write_json(self._path(f"plan.{self.rank}.json"), {"nonce": self.nonce, "local": local})
        except FileNotFoundError:
            if self.rank:
                raise Restarted() from None  # the attempt we joined was cleaned away
            raise
        if self.rank:
            return _check_plan(self._wait_own(f"go.{self.rank}.json", "rank 0's plan")["plan"])
        docs = self._wait_all("plan")
        self.nonces = [d["nonce"] for d in docs]
        per_rank, err = self._plan_on_root([d["local"] for d in docs], make_plan)
        for r in range(1, self.world_size):
            self._write_json(self._path(f"go.{r}.json"), {"nonce": self.nonces[r], "plan": per_rank[r]})
        if err is not None:
            raise err
        return _check_plan(per_rank[0])

    def gather(self, report: dict[str, Any]) -> list[dict[str, Any]] | None:
        self._write_json(self._path(f"done.{self.rank}.json"), {"nonce": self.nonce, "report": report})
        if self.rank:
            return None
        return [d["report"] for d in self._wait_all("done")]

    def release(self, outcome: dict[str, Any] | None) -> dict[str, Any]:
        if self.rank == 0:
            assert outcome is not None
            for r in range(1, self.world_size):
                self._write_json(self._path(f"outcome.{r}.json"), {"nonce": self.nonces[r], **outcome})
            return outcome
        return self._wait_own(f"outcome.{self.rank}.json", "rank 0 to commit")


class TorchCoordinator(Coordinator):
    """Agreement through a torch.distributed process group (gloo or nccl) instead of files."""

    def __init__(self, group: Any = None) -> None:
        require("torch", "ckpt.TorchCoordinator")
        import torch.distributed as dist

        self.dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.root = dist.get_global_rank(group, 0) if group is not None else 0

    def _bcast(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=self.root, group=self.group)
        return box[0]

    def begin(self, step: int | None, choose_step: Callable[[], int]) -> tuple[int, str]:
        pick = None
        if self.rank == 0:
            pick = (choose_step() if step is None else step, uuid.uuid4().hex[:16])
        got_step, token = self._bcast(pick)
        if step is not None and step != got_step:
            raise CoordinationError(f"rank {self.rank} saves step {step}, rank 0 step {got_step}")
        return got_step, token

    def exchange(self, local: dict[str, Any], make_plan: MakePlan) -> dict[str, Any]:
        plans: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        self.dist.gather_object(local, plans, dst=self.root, group=self.group)
        per_rank, err = (self._plan_on_root(plans, make_plan) if plans is not None else (None, None))
        out: list[Any] = [None]
        self.dist.scatter_object_list(out, per_rank, src=self.root, group=self.group)
        if err is not None:
            raise err
        return _check_plan(out[0])

    def gather(self, report: dict[str, Any]) -> list[dict[str, Any]] | None:
        reports: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        self.dist.gather_object(report, reports, dst=self.root, group=self.group)
        return reports

    def release(self, outcome: dict[str, Any] | None) -> dict[str, Any]:
        return self._bcast(outcome)


class SoloCoordinator(Coordinator):
    """A world of one: nothing to agree on, no coordination files."""

    rank = 0
    world_size = 1

    def begin(self, step: int | None, choose_step: Callable[[], int]) -> tuple[int, str]:
        return (choose_step() if step is None else step), uuid.uuid4().hex[:16]

    def exchange(self, local: dict[str, Any], make_plan: MakePlan) -> dict[str, Any]:
        return _check_plan(make_plan([local])[0])

    def gather(self, report: dict[str, Any]) -> list[dict[str, Any]] | None:
        return [report]

    def release(self, outcome: dict[str, Any] | None) -> dict[str, Any]:
        assert outcome is not None
        return outcome
