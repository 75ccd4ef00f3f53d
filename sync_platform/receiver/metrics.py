"""The receiver's counters, served by `GET /metrics` as Prometheus text (default) or JSON.

Counted since the process started: deliveries answered 2xx by outcome (`accepted`,
`duplicate`) and workflow, and refusals by reason, status code and whether the refused
delivery was kept in `webhook_rejections` (authenticated) or only counted (not authenticated:
junk is never stored). Workflow labels are limited to configured workflows, so junk requests
to made-up paths cannot grow the label set.

With several uvicorn workers each process counts its own requests; a worker also writes its
counters to a shared directory (`SYNC_PLATFORM_RECEIVER_METRICS_DIR`, set by
`sync-platform receiver --workers N`) and `/metrics` sums every worker's file there, so any
worker answers for all of them.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

METRICS_DIR_ENV = "SYNC_PLATFORM_RECEIVER_METRICS_DIR"
UNKNOWN_WORKFLOW = "(unknown)"


class Metrics:
    def __init__(self, shared_dir: str | os.PathLike[str] | None = None):
        self._lock = threading.Lock()
        self._deliveries: Counter[tuple[str, str]] = Counter()  # (outcome, workflow)
        self._rejections: Counter[tuple[str, int, bool, str]] = Counter()
        self._shared_dir = Path(shared_dir) if shared_dir else None
        self._dirty = False

    def delivered(self, outcome: str, workflow: str) -> None:
        with self._lock:
            self._deliveries[(outcome, workflow)] += 1
            self._dirty = True

    def rejected(self, reason: str, status: int, stored: bool, workflow: str) -> None:
        with self._lock:
            self._rejections[(reason, status, stored, workflow)] += 1
            self._dirty = True

    # -- several workers -------------------------------------------------------------------

    def _rows(self) -> dict[str, list[list[Any]]]:
        with self._lock:
            return {
                "deliveries": [[*key, n] for key, n in self._deliveries.items()],
                "rejections": [[*key, n] for key, n in self._rejections.items()],
            }

    def flush(self) -> None:
        """Write this worker's counters to the shared directory (atomically), if changed."""
        if self._shared_dir is None or not self._dirty:
            return
        self._dirty = False
        target = self._shared_dir / f"worker-{os.getpid()}.json"
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(self._rows()))
        os.replace(scratch, target)

    def _all_rows(self) -> list[dict[str, list[list[Any]]]]:
        if self._shared_dir is None:
            return [self._rows()]
        self._dirty = True
        self.flush()
        rows = []
        for path in sorted(self._shared_dir.glob("worker-*.json")):
            try:
                rows.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a worker replacing its file right now: its next flush counts
        return rows

    def totals(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, int, bool, str]]]:
        deliveries: Counter[tuple[str, str]] = Counter()
        rejections: Counter[tuple[str, int, bool, str]] = Counter()
        for rows in self._all_rows():
            for outcome, workflow, n in rows["deliveries"]:
                deliveries[(outcome, workflow)] += n
            for reason, status, stored, workflow, n in rows["rejections"]:
                rejections[(reason, int(status), bool(stored), workflow)] += n
        return deliveries, rejections

    # -- output ----------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        deliveries, rejections = self.totals()
        by_reason: Counter[str] = Counter()
        by_workflow: dict[str, Counter[str]] = {}
        for (outcome, workflow), n in deliveries.items():
            by_workflow.setdefault(workflow, Counter())[outcome] += n
        for (reason, _status, _stored, workflow), n in rejections.items():
            by_reason[reason] += n
            by_workflow.setdefault(workflow, Counter())["rejected"] += n
        return {
            "accepted": sum(n for (o, _), n in deliveries.items() if o == "accepted"),
            "duplicate": sum(n for (o, _), n in deliveries.items() if o == "duplicate"),
            "rejected": sum(rejections.values()),
            "rejected_stored": sum(n for (_, _, stored, _), n in rejections.items() if stored),
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "rejections": [
                {"reason": r, "status": s, "stored": k, "workflow": w, "count": n}
                for (r, s, k, w), n in sorted(rejections.items())
            ],
            "by_workflow": {w: dict(sorted(c.items())) for w, c in sorted(by_workflow.items())},
        }

    def as_prometheus(self) -> str:
        deliveries, rejections = self.totals()
        lines = [
            "# HELP sync_platform_webhook_deliveries_total Deliveries answered 2xx, by outcome.",
            "# TYPE sync_platform_webhook_deliveries_total counter",
        ]
        for (outcome, workflow), n in sorted(deliveries.items()):
            lines.append(
                f'sync_platform_webhook_deliveries_total{{outcome="{outcome}",'
                f'workflow="{workflow}"}} {n}'
            )
        lines += [
            "# HELP sync_platform_webhook_rejections_total Refused requests, by reason; "
            'stored="true" ones are kept in webhook_rejections.',
            "# TYPE sync_platform_webhook_rejections_total counter",
        ]
        for (reason, status, stored, workflow), n in sorted(rejections.items()):
            lines.append(
                f'sync_platform_webhook_rejections_total{{reason="{reason}",status="{status}",'
                f'stored="{str(stored).lower()}",workflow="{workflow}"}} {n}'
            )
        return "\n".join(lines) + "\n"
