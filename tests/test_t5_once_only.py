"""Once-only delivery of cross-shard link-count changes does not depend on a wall clock.

An unlink of a name whose inode lives on another shard owes that shard a
-1, delivered by txid (AdjustNlink) until it is acknowledged; the receiver
records each txid it applied so that a re-delivery changes nothing. Those
records used to be dropped after an hour of wall clock: a receiver that
applied the change, crashed before answering, and came back "two hours
later" applied the re-delivered -1 a second time, and the file was freed
while a name still pointed at it.

The receiver here is restarted with its wall clock two hours ahead (the
``SUPERFS_TEST_CLOCK_OFFSET_S`` hook), never a real hour: the change must be
applied exactly once, and the records must still go away once the sender
has confirmed it will never send that txid again.
"""
from __future__ import annotations

from t5_support import (address, arm, assert_clean, entry_shard, home_shard, ino_of, restart, wait_crashed,
                        wait_until, with_admin)

from superfs import faults
from superfs.client import connect

TWO_HOURS_S = 2 * 3600


def _pending(cluster, shard: int):
    async def fn(admin):
        return await admin.pending(shard)
    return with_admin(cluster, fn)


def test_a_receiver_down_for_hours_in_mid_delivery_applies_the_change_once(cluster_factory):
    cluster = cluster_factory(shards=2)
    with connect(address(cluster)) as c:
        c.mkdir("/a")
        c.write_bytes("/a/f", b"still named")
        home = home_shard(c, "/a/f")
        sender = 1 - home
        link = next(f"l{i}" for i in range(1000) if entry_shard(c, "/a", f"l{i}") == sender)
        c.link("/a/f", f"/a/{link}")
        assert c.stat("/a/f").st_nlink == 2

    # the home shard applies the -1 of the unlink, then dies before answering the sender
    arm(cluster, f"shard-{home}", "shard.adjust_nlink.after_commit")
    with connect(address(cluster)) as c:
        c.unlink(f"/a/{link}")  # committed on the sender, the -1 left in its outbox
    wait_crashed(cluster, f"shard-{home}")
    cluster.kill(f"shard-{sender}")  # the sender is down too, so nothing is re-sent yet

    # the receiver comes back two hours later and runs its background work
    cluster.start_daemon(f"shard-{home}", env={faults.CLOCK_ENV: str(TWO_HOURS_S)})
    cluster.wait_ready(f"shard-{home}")
    with_admin(cluster, lambda admin: admin.run_maintenance(home))
    # the sender comes back and re-delivers the -1
    restart(cluster, f"shard-{sender}")
    wait_until(lambda: not _pending(cluster, sender).outbox, "the owed link change to be delivered")

    with connect(address(cluster)) as c:
        assert c.stat("/a/f").st_nlink == 1
        assert c.read_bytes("/a/f") == b"still named"
        assert ino_of(c, "/a/f")
    # the idempotency records go once the sender confirmed it will not re-send
    wait_until(lambda: _pending(cluster, home).applied_records == 0 and _pending(cluster, sender).unconfirmed == 0,
               "the applied records to be forgotten after the sender's confirmation")
    assert_clean(cluster)
