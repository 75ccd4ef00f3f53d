"""Since when this deployment has had each source configured (`sync_sources`), so a source
configured a moment ago is not alerted as stale: it gets one freshness window first."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import sync_sources


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def configured_since(connection: sa.Connection) -> dict[str, datetime]:
    """Source → when it was first seen configured (read only)."""
    rows = connection.execute(sa.select(sync_sources.c.source, sync_sources.c.configured_since))
    return {source: _aware(since) for source, since in rows}


def record_configured(
    connection: sa.Connection, configured: Collection[str], now: datetime
) -> dict[str, datetime]:
    """Remember when each configured source was first seen configured; forget sources that no
    longer are (configuring one again starts a new grace). Returns `configured_since`."""
    known = configured_since(connection)
    new = [source for source in configured if source not in known]
    if new:
        connection.execute(
            sa.insert(sync_sources),
            [{"source": source, "configured_since": now, "checked_at": now} for source in new],
        )
    connection.execute(
        sa.update(sync_sources)
        .where(sync_sources.c.source.in_(list(configured)))
        .values(checked_at=now)
    )
    gone = [source for source in known if source not in configured]
    if gone:
        connection.execute(sa.delete(sync_sources).where(sync_sources.c.source.in_(gone)))
    return {source: known.get(source, now) for source in configured}
