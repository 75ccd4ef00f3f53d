"""The platform's health at a glance: per entity its last success, next scheduled run,
success rates, open gaps, quarantined rows and duration trend; the recent alerts; and a
quality report of the top issues with what to do about each.

The same report feeds `sync-platform health [--json]` (exit code 1 when anything is
unhealthy, for cron and monitoring probes) and the `sync_health` asset's metadata. A source
that is not configured is listed once with the variables to set, and its entities neither
count as unhealthy nor as healthy.

The verdict is computed from its `reasons` and nothing else, and says them: every unhealthy
entity with its problems, every open high alert by type and subject. An open high alert about
one entity (its dedup key names it: `consecutive_failures:dealer_feed:dealer_stock`,
`check_failed:dealer_stock:…`) also marks that entity's row, so a row never shows ✓ while
the verdict blames its entity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from croniter import croniter

from sync_platform.alerting.rules import OK_STATUSES  # one meaning of "a good sync"
from sync_platform.config.models import SourceConfig
from sync_platform.warehouse.platform_tables import (
    sync_alerts,
    sync_gaps,
    sync_quarantine,
    sync_runs,
)

TREND_LENGTH = 10
RECENT_ALERTS = 10
NAMED_IN_VERDICT = 3  # reasons of each kind spelled out in the verdict line; the rest counted


@dataclass
class EntityHealth:
    source: str
    entity: str
    healthy: bool
    problems: list[str] = field(default_factory=list)
    last_success_at: str | None = None
    last_status: str | None = None
    next_run_at: str | None = None
    success_rate_24h: float | None = None
    success_rate_7d: float | None = None
    open_gaps: int = 0
    quarantined_24h: int = 0
    duration_trend_seconds: list[float] = field(default_factory=list)
    # schema drift, from the latest sync: fields the mapping needs that no record carried,
    # and fields the source sends that nothing maps and no earlier sync this week saw
    missing_source_fields: list[str] = field(default_factory=list)
    new_source_fields: list[str] = field(default_factory=list)
    # open high alerts about this entity, e.g. "#12 unrecovered_gap"; each makes it unhealthy
    open_alerts: list[str] = field(default_factory=list)


@dataclass
class Issue:
    entity: str
    problem: str
    action: str


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def next_tick(crons: list[tuple[str, str]], now: datetime) -> datetime | None:
    """The soonest next run among (cron, timezone) schedules (all UTC here)."""
    ticks = [croniter(cron, now).get_next(datetime) for cron, _tz in crons]
    return min(ticks) if ticks else None


def _rate(runs: list[sa.Row], since: datetime) -> float | None:
    window = [run for run in runs if _aware(run.started_at) >= since]
    if not window:
        return None
    return round(sum(run.status in OK_STATUSES for run in window) / len(window), 3)


def entity_health(
    connection: sa.Connection,
    source: SourceConfig,
    name: str,
    crons: list[tuple[str, str]],
    now: datetime,
) -> EntityHealth:
    entity = source.entities[name]
    runs = connection.execute(
        sa.select(sync_runs)
        .where(
            sync_runs.c.source == source.source,
            sync_runs.c.entity == name,
            sync_runs.c.status != "running",
            sync_runs.c.started_at >= now - timedelta(days=7),
        )
        .order_by(sync_runs.c.id.desc())
    ).all()
    last_ok = next((run for run in runs if run.status in OK_STATUSES), None)
    gaps = connection.execute(
        sa.select(sa.func.count()).where(
            sync_gaps.c.source == source.source,
            sync_gaps.c.entity == name,
            sync_gaps.c.status == "open",
        )
    ).scalar()
    quarantined = connection.execute(
        sa.select(sa.func.count()).where(
            sync_quarantine.c.source == source.source,
            sync_quarantine.c.entity == name,
            sync_quarantine.c.quarantined_at >= now - timedelta(hours=24),
        )
    ).scalar()
    health = EntityHealth(
        source=source.source,
        entity=name,
        healthy=True,
        last_success_at=_aware(last_ok.finished_at).isoformat() if last_ok else None,
        last_status=runs[0].status if runs else None,
        next_run_at=(tick.isoformat() if (tick := next_tick(crons, now)) else None),
        success_rate_24h=_rate(runs, now - timedelta(hours=24)),
        success_rate_7d=_rate(runs, now - timedelta(days=7)),
        open_gaps=gaps,
        quarantined_24h=quarantined,
        duration_trend_seconds=[
            round((_aware(run.finished_at) - _aware(run.started_at)).total_seconds(), 2)
            for run in runs[:TREND_LENGTH]
            if run.finished_at
        ][::-1],
    )
    shapes = [run.source_fields or {} for run in runs]
    if shapes:
        health.missing_source_fields = sorted(shapes[0].get("missing", {}).values())
        earlier = {name for shape in shapes[1:] for name in shape.get("unmapped", [])}
        health.new_source_fields = [
            name for name in shapes[0].get("unmapped", []) if name not in earlier
        ]
    if health.missing_source_fields:
        health.problems.append(
            f"the source no longer sends {', '.join(health.missing_source_fields)}"
        )
    if last_ok is None:
        health.problems.append("no successful sync in the last 7 days")
    elif entity.freshness_minutes and now - _aware(last_ok.finished_at) > timedelta(
        minutes=entity.freshness_minutes
    ):
        health.problems.append(f"last success is older than {entity.freshness_minutes} min")
    if health.last_status == "failed":
        health.problems.append("the latest sync failed")
    if gaps:
        health.problems.append(f"{gaps} open gap(s)")
    health.healthy = not health.problems
    return health


def suggested_action(problem: str) -> str:
    if "gap" in problem:
        return "sync_gap_sensor resyncs them; if they stay, check the records at the source"
    if "failed" in problem:
        return "read the error in sync_errors (category says network/configuration/…) and fix it"
    if "quarantined" in problem:
        return "see sync_quarantine for the reasons and fix the records at the source"
    if "no longer sends" in problem:
        return "restore the field at the source, or point the field's `from:` at its new name"
    if "started sending" in problem:
        return "map the new fields in the source's YAML if they are wanted (else nothing to do)"
    return "check the entity's schedule is running and its latest run"


def alert_entity(dedup_key: str, entities: Mapping[str, str]) -> tuple[str, str] | None:
    """The (source, entity) an alert is about, when its dedup key names one of `entities`
    (entity → source) after its type: `<type>:<source>:<entity>[:<scope>]`,
    `check_failed:<entity>:<check>`, `conflict_review:<source>.<entity>`."""
    for token in re.split(r"[:.]", dedup_key)[1:]:
        if token in entities:
            return entities[token], token
    return None


def alert_label(alert: Mapping[str, Any], entity: tuple[str, str] | None) -> str:
    """An alert as the verdict names it: its type and what it is about, e.g.
    "consecutive_failures dealer_feed.dealer_stock" or "backup_missing full"."""
    _, _, subject = alert["dedup_key"].partition(":")
    if entity is not None:
        subject = ".".join(entity)
    acknowledged = " (acknowledged)" if alert["acknowledged_at"] else ""
    return f"{alert['type']} {subject}".strip() + acknowledged


def _named(count: int, noun: str, plural: str, names: list[str]) -> str:
    shown = names[:NAMED_IN_VERDICT]
    more = f"; +{len(names) - NAMED_IN_VERDICT} more" if len(names) > NAMED_IN_VERDICT else ""
    return f"{count} {noun if count == 1 else plural} ({'; '.join(shown)}{more})"


def verdict_reasons(entities: list[EntityHealth], high_alerts: list[str]) -> list[str]:
    """Why the platform is unhealthy (empty: it is healthy): the entities unhealthy by their
    own figures, with their problems, then the open high alerts."""
    reasons = []
    sick = [f"{e.source}.{e.entity}: {', '.join(e.problems)}" for e in entities if e.problems]
    if sick:
        reasons.append(_named(len(sick), "unhealthy entity", "unhealthy entities", sick))
    if high_alerts:
        reasons.append(_named(len(high_alerts), "open high alert", "open high alerts", high_alerts))
    return reasons


def health_report(
    connection: sa.Connection,
    sources: list[SourceConfig],
    schedules: dict[str, list[tuple[str, str]]],
    now: datetime | None = None,
    not_configured: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """`schedules`: source name → [(cron, timezone)] of the schedules that sync it;
    `not_configured`: source name → the environment variables it lacks."""
    now = now or datetime.now(UTC)
    not_configured = dict(not_configured or {})
    entities = [
        entity_health(connection, source, name, schedules.get(source.source, []), now)
        for source in sources
        if source.source not in not_configured
        for name in source.entities
    ]
    alert_columns = (
        sync_alerts.c.id,
        sync_alerts.c.severity,
        sync_alerts.c.type,
        sync_alerts.c.status,
        sync_alerts.c.message,
        sync_alerts.c.dedup_key,
        sync_alerts.c.created_at,
        sync_alerts.c.acknowledged_at,
    )
    alerts = (
        connection.execute(
            sa.select(*alert_columns)
            .order_by((sync_alerts.c.status == "open").desc(), sync_alerts.c.id.desc())
            .limit(RECENT_ALERTS)
        )
        .mappings()
        .all()
    )
    # Every open high alert, not only the recent ones shown: the verdict rests on them all.
    open_high = (
        connection.execute(
            sa.select(*alert_columns)
            .where(sync_alerts.c.status == "open", sync_alerts.c.severity == "high")
            .order_by(sync_alerts.c.id.desc())
        )
        .mappings()
        .all()
    )
    by_name = {e.entity: e for e in entities}
    high_labels = []
    for alert in open_high:
        about = alert_entity(alert["dedup_key"], {e.entity: e.source for e in entities})
        high_labels.append(alert_label(alert, about))
        if about is not None:
            health = by_name[about[1]]
            health.open_alerts.append(f"#{alert['id']} {alert['type']}")
            health.healthy = False
    reasons = verdict_reasons(entities, high_labels)
    issues = [
        Issue(f"{e.source}.{e.entity}", problem, suggested_action(problem))
        for e in entities
        for problem in e.problems
    ]
    issues += [
        Issue(
            f"{e.source}.{e.entity}",
            f"{e.quarantined_24h} records quarantined in 24 h",
            suggested_action("quarantined"),
        )
        for e in entities
        if e.quarantined_24h
    ]
    issues += [
        Issue(
            f"{e.source}.{e.entity}",
            f"the source started sending {', '.join(e.new_source_fields)}",
            suggested_action("started sending"),
        )
        for e in entities
        if e.new_source_fields
    ]
    return {
        "generated_at": now.isoformat(),
        "healthy": not reasons,
        "verdict": f"UNHEALTHY: {'; '.join(reasons)}" if reasons else "Healthy",
        "reasons": reasons,
        "entities": [asdict(e) for e in entities],
        "not_configured": not_configured,
        "recent_alerts": [
            {
                **dict(a),
                "created_at": _aware(a["created_at"]).isoformat(),
                "acknowledged_at": a["acknowledged_at"].isoformat()
                if a["acknowledged_at"]
                else None,
            }
            for a in alerts
        ],
        "open_high_alerts": len(open_high),
        "quality_issues": [asdict(issue) for issue in issues[:20]],
    }


def as_markdown(report: dict[str, Any]) -> str:
    verdict = (
        f"**UNHEALTHY**: {'; '.join(report['reasons'])}" if report["reasons"] else "**Healthy**"
    )
    lines = [
        f"{verdict} — {report['generated_at']}",
        "",
        "| entity | ok | last success | next run | 24 h | 7 d | gaps | quarantined 24 h | why |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in report["entities"]:
        rate = lambda r: "-" if r is None else f"{r:.0%}"  # noqa: E731
        why = [*e["problems"], *(f"open high alert {a}" for a in e["open_alerts"])]
        lines.append(
            f"| {e['source']}.{e['entity']} | {'✓' if e['healthy'] else '✗'} | "
            f"{e['last_success_at'] or 'never'} | {e['next_run_at'] or '-'} | "
            f"{rate(e['success_rate_24h'])} | {rate(e['success_rate_7d'])} | {e['open_gaps']} | "
            f"{e['quarantined_24h']} | {'; '.join(why)} |"
        )
    if report.get("not_configured"):
        lines += ["", "**Not configured** (no runs, no alerts until set)", ""]
        lines += [
            f"- {source}: set {', '.join(names)}"
            for source, names in report["not_configured"].items()
        ]
    if report["quality_issues"]:
        lines += ["", "**Top issues**", ""]
        lines += [
            f"- {i['entity']}: {i['problem']} — {i['action']}" for i in report["quality_issues"]
        ]
    if report["recent_alerts"]:
        lines += ["", "**Recent alerts**", ""]
        lines += [
            f"- #{a['id']} [{a['severity']}] {a['type']} ({a['status']}): {a['message'][:140]}"
            for a in report["recent_alerts"]
        ]
    return "\n".join(lines)
