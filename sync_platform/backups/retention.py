"""Which backups to keep: grandfather-father-son over full backups, a window for inbox ones.

Full backups: the newest of each of the last `daily` days that have one, of the last `weekly`
ISO weeks and of the last `monthly` calendar months (the buckets overlap: the newest backup
counts for its day, week and month at once), plus, always, the newest verified backup — so
pruning can never leave the warehouse without a backup known to restore. Inbox backups: those
of the last `inbox_keep_hours`, and always the newest. Failed backups are never kept; a
backup still `running` after a day died with its process.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

USABLE = ("created", "verified")


@dataclass(frozen=True)
class BackupInfo:
    id: str
    kind: str
    created_at: datetime
    status: str


def _newest_per_bucket(
    backups: list[BackupInfo], count: int, bucket: Callable[[datetime], Hashable]
) -> set[str]:
    kept: dict[Hashable, str] = {}
    for backup in backups:  # newest first
        key = bucket(backup.created_at)
        if key not in kept:
            if len(kept) == count:
                break
            kept[key] = backup.id
    return set(kept.values())


def backups_to_keep(
    backups: Iterable[BackupInfo],
    *,
    daily: int,
    weekly: int,
    monthly: int,
    inbox_keep_hours: int,
    now: datetime,
) -> set[str]:
    backups = sorted(backups, key=lambda b: b.created_at, reverse=True)
    keep = {
        b.id for b in backups if b.status == "running" and now - b.created_at < timedelta(days=1)
    }
    full = [b for b in backups if b.kind == "full" and b.status in USABLE]
    keep |= _newest_per_bucket(full, daily, lambda moment: moment.date())
    keep |= _newest_per_bucket(full, weekly, lambda moment: moment.isocalendar()[:2])
    keep |= _newest_per_bucket(full, monthly, lambda moment: (moment.year, moment.month))
    verified = [b for b in full if b.status == "verified"]
    if verified:
        keep.add(verified[0].id)
    inbox = [b for b in backups if b.kind == "inbox" and b.status in USABLE]
    keep |= {b.id for b in inbox if now - b.created_at <= timedelta(hours=inbox_keep_hours)}
    if inbox:
        keep.add(inbox[0].id)
    return keep
