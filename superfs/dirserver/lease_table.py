"""Who holds which directory: the dir server's lease bookkeeping, as a pure state machine.

A *holder* is a client session (its session id). On a directory it may hold

- a SHARED lease: it caches the directory's entries and its files' attributes;
- an EXCLUSIVE lease: it caches them and alone creates, unlinks and renames
  in the directory, sending the changes in batches when it likes.

Clients also get *capabilities* for a directory without a lease (the
library, or a mount doing a synchronous operation): a READ use (lookup,
list) or a WRITE use (create, unlink, rename in it). Capabilities cannot be
recalled, they expire (capability.CAP_TTL_NS); so a lease that must not
coexist with someone else's live capability needs a *fence* instead: the
directory's epoch goes up, shards refuse capabilities signed before it, and
their holders must come back for a new one (and meet the lease).

:meth:`LeaseTable.decide` answers one request: grant it now (with the epoch
to sign, and whether a fence must be pushed to the shards first), or first
recall these holders. The caller (superfs/dirserver/leases.py) does the
recalls over the holders' sessions and asks again; a holder that does not
answer is :meth:`revoke`\\ d, which fences. Conflicts:

=============  ==================================  ======================================
request        recall (other holders')             fence if others hold live caps of kind
=============  ==================================  ======================================
EXCLUSIVE      exclusive, shared                   read or write
SHARED         exclusive                           write
WRITE (cap)    exclusive, shared                   -
READ (cap)     exclusive                           -
=============  ==================================  ======================================
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

Holder = bytes


class Want(enum.IntEnum):
    SHARED = 1
    EXCLUSIVE = 2
    READ = 3      # a capability to look up or list, no lease
    WRITE = 4     # a capability to create, unlink or rename, no lease


LEASES = (Want.SHARED, Want.EXCLUSIVE)
PRUNE_AT = 64  # holders of capabilities per directory before the expired ones are dropped


@dataclass
class DirLeases:
    epoch: int
    exclusive: Holder | None = None
    shared: set[Holder] = field(default_factory=set)
    read_caps: dict[Holder, float] = field(default_factory=dict)    # holder -> when its last cap expires
    write_caps: dict[Holder, float] = field(default_factory=dict)

    def idle(self, now: float) -> bool:
        return (self.exclusive is None and not self.shared and all(t <= now for t in self.read_caps.values())
                and all(t <= now for t in self.write_caps.values()))


@dataclass(frozen=True)
class Grant:
    epoch: int        # the epoch to sign into the capability
    fence: bool       # push this epoch to every shard before answering
    number: int = 0   # leases: this grant's number (a recall names it; capabilities: 0)


@dataclass(frozen=True)
class Recall:
    holders: frozenset[Holder]


class LeaseTable:
    """Leases and capability uses per directory. ``base`` starts every directory's epoch
    (the dir server raises it at each start, so nothing signed before a restart outlives it)."""

    def __init__(self, base: int, cap_ttl_s: float) -> None:
        self.base = base
        self.cap_ttl_s = cap_ttl_s
        self.dirs: dict[int, DirLeases] = {}
        self.by_holder: dict[Holder, set[int]] = {}
        self.grants: dict[tuple[int, Holder], int] = {}   # (dir, holder) -> its lease's grant number
        self._next_grant = 1

    def state(self, dir_ino: int) -> DirLeases:
        d = self.dirs.get(dir_ino)
        if d is None:
            d = self.dirs[dir_ino] = DirLeases(self.base)
        return d

    def epoch(self, dir_ino: int) -> int:
        d = self.dirs.get(dir_ino)
        return d.epoch if d is not None else self.base

    def mode_of(self, dir_ino: int, holder: Holder) -> Want | None:
        d = self.dirs.get(dir_ino)
        if d is None:
            return None
        if d.exclusive == holder:
            return Want.EXCLUSIVE
        return Want.SHARED if holder in d.shared else None

    def held_by_other(self, dir_ino: int, holder: Holder) -> bool:
        """Someone other than ``holder`` holds the exclusive lease (it may have changes made ahead)."""
        d = self.dirs.get(dir_ino)
        return d is not None and d.exclusive is not None and d.exclusive != holder

    def decide(self, dir_ino: int, holder: Holder, want: Want, now: float) -> Grant | Recall:
        d = self.state(dir_ino)
        recall: set[Holder] = set()
        if d.exclusive is not None and d.exclusive != holder:
            recall.add(d.exclusive)
        if want in (Want.EXCLUSIVE, Want.WRITE):
            recall |= d.shared - {holder}
        if recall:
            return Recall(frozenset(recall))
        fence = False
        if want == Want.EXCLUSIVE:
            fence = _others_live(d.read_caps, holder, now) or _others_live(d.write_caps, holder, now)
        elif want == Want.SHARED:
            fence = _others_live(d.write_caps, holder, now)
        if fence:
            d.epoch += 1
            d.read_caps.clear()   # signed before the fence: refused by the shards from now on
            d.write_caps.clear()
        self._record(d, dir_ino, holder, want, now)
        number = 0
        if want in LEASES:
            number = self.grants[(dir_ino, holder)] = self._next_grant
            self._next_grant += 1
        return Grant(d.epoch, fence, number)

    def grant_of(self, dir_ino: int, holder: Holder) -> int:
        return self.grants.get((dir_ino, holder), 0)

    def _record(self, d: DirLeases, dir_ino: int, holder: Holder, want: Want, now: float) -> None:
        if want == Want.EXCLUSIVE:
            d.shared.discard(holder)
            d.exclusive = holder
        elif want == Want.SHARED:
            if d.exclusive != holder:
                d.shared.add(holder)
        else:
            caps = d.read_caps if want == Want.READ else d.write_caps
            caps[holder] = now + self.cap_ttl_s
            if len(caps) > PRUNE_AT:
                for h in [h for h, t in caps.items() if t <= now]:
                    del caps[h]
        if want in LEASES:
            self.by_holder.setdefault(holder, set()).add(dir_ino)

    def release(self, dir_ino: int, holder: Holder, grant: int = 0) -> None:
        """The holder gave the lease back (answered a recall, or let it go); with ``grant``, only
        if that is still the grant it holds (a later one stays)."""
        if grant and self.grants.get((dir_ino, holder)) != grant:
            return
        self.grants.pop((dir_ino, holder), None)
        d = self.dirs.get(dir_ino)
        if d is None:
            return
        if d.exclusive == holder:
            d.exclusive = None
        d.shared.discard(holder)
        held = self.by_holder.get(holder)
        if held is not None:
            held.discard(dir_ino)
            if not held:
                del self.by_holder[holder]

    def revoke(self, dir_ino: int, holder: Holder) -> int:
        """Take the lease from a holder that did not answer: a new epoch, to be fenced."""
        self.release(dir_ino, holder)
        d = self.state(dir_ino)
        d.epoch += 1
        return d.epoch

    def held(self) -> int:
        """Leases held now, shared and exclusive."""
        return len(self.grants)

    def held_by(self, holder: Holder) -> set[int]:
        return set(self.by_holder.get(holder, ()))

    def forget_idle(self, now: float) -> int:
        """Drop directories with no lease, no live capability and no fence pushed (a fenced epoch must
        stay: a capability signed with ``base`` again would be refused by the shards)."""
        gone = [ino for ino, d in self.dirs.items() if d.idle(now) and d.epoch == self.base]
        for ino in gone:
            del self.dirs[ino]
        return len(gone)


def _others_live(caps: dict[Holder, float], holder: Holder, now: float) -> bool:
    return any(t > now for h, t in caps.items() if h != holder)
