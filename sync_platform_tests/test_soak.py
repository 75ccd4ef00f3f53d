"""The short soak: the whole platform as production runs it (PostgreSQL for Dagster and the
warehouse, the code server, dagster-daemon, the receiver) against the simulator with faults
on every source, for three minutes at 24 times the production cadence, then the verdict of
soak/verdict.py. `make soak` runs the same for an hour (docs/reliability.md)."""

from __future__ import annotations

from soak.__main__ import run_soak
from soak.load import EXPLAINED_ALERTS


def test_the_platform_heals_what_it_can_and_alerts_only_on_what_it_cannot(tmp_path, pg_admin_url):
    judged = run_soak(
        minutes=3,
        speedup=24,
        round_seconds=30,
        settle_minutes=20,  # a cap: it settled in 3-7 minutes here; room for a slower machine
        workdir=tmp_path / "soak",
        admin_url=pg_admin_url,
    )
    figures = judged.figures
    assert judged.passed, "\n".join(judged.problems)
    # The faults really happened, at about the planned share: a soak without faults proves
    # nothing. (Three minutes on two cores hold a few dozen source requests at most; `make
    # soak` injects hundreds.)
    faults, requests = figures["faults_injected"], figures["source_requests_under_faults"]
    assert sum(faults.values()) >= 3 and len([n for n in faults.values() if n]) >= 2, faults
    assert 0.1 <= sum(faults.values()) / requests <= 0.6, (faults, requests)
    assert figures["rows_compared"] > 1000 and figures["webhook_executions"] >= 18
    assert figures["ticks"] > 20 and figures["tick_failures"] == 0
    assert figures["alerts_raised"] == len(EXPLAINED_ALERTS) and figures["false_alerts"] == 0
