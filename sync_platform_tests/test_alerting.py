"""Alert rules, deduplication, re-notification, acknowledgement and delivery — to a real
SMTP server (aiosmtpd, STARTTLS + AUTH) and a real HTTP endpoint — on both dialects."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync_platform.alerting import rules
from sync_platform.alerting.channels import EmailChannel, WebhookChannel, configured_channels
from sync_platform.alerting.store import acknowledge, deliver_due, deliveries_due, raise_alert
from sync_platform.config import cached_source_config
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import EntitySource, SyncRequest
from sync_platform.errors import ConfigurationError
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import sync_alerts, sync_runs
from sync_platform_simulator.background_server import free_port
from sync_platform_tests.records import STOCK, fleet, in_memory_source

DEALER = [cached_source_config("dealer_feed")]


def alerts(engine, **where) -> list[dict]:
    query = sa.select(sync_alerts).order_by(sync_alerts.c.id)
    for column, value in where.items():
        query = query.where(sync_alerts.c[column] == value)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def evaluate(engine, now=None):
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        return rules.apply(connection, rules.evaluate(connection, DEALER, now), now)


def failing_sync(engine):
    def pages(_since):
        raise ConnectionError("dealer API unreachable")
        yield  # pragma: no cover

    with pytest.raises(ConnectionError):
        run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), EntitySource(pages=pages))


def good_sync(engine, n=20):
    return run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(fleet(n)))


def keyed(engine) -> dict[str, dict]:
    return {a["dedup_key"]: a for a in alerts(engine, status="open")}


# --- rules ------------------------------------------------------------------------------------


def test_consecutive_failures_alert_once_and_resolve_on_success(engine):
    good_sync(engine)
    for _ in range(2):
        failing_sync(engine)
    evaluate(engine)
    assert "consecutive_failures:dealer_feed:dealer_stock" not in keyed(engine)  # 2 < 3
    failing_sync(engine)
    evaluate(engine)
    evaluate(engine)
    alert = keyed(engine)["consecutive_failures:dealer_feed:dealer_stock"]
    assert (alert["severity"], alert["occurrences"]) == ("high", 2)
    assert "dealer API unreachable" in alert["message"]
    good_sync(engine)
    evaluate(engine)
    assert "consecutive_failures:dealer_feed:dealer_stock" not in keyed(engine)


def test_a_threshold_change_applies_at_the_next_evaluation(engine):
    for _ in range(3):
        failing_sync(engine)
    evaluate(engine)
    assert "consecutive_failures:dealer_feed:dealer_stock" in keyed(engine)
    with engine.begin() as connection:
        set_setting(connection, "alert_consecutive_failures", "5")
    evaluate(engine)  # no reload of anything: the next evaluation reads the new value
    assert "consecutive_failures:dealer_feed:dealer_stock" not in keyed(engine)


def test_no_successful_sync_within_the_freshness_window_is_stale(engine):
    good_sync(engine)
    evaluate(engine)
    assert "stale_sync:dealer_feed:dealer_stock" not in keyed(engine)
    evaluate(engine, now=datetime.now(UTC) + timedelta(minutes=61))  # window: 60 min
    stale = keyed(engine)["stale_sync:dealer_feed:dealer_stock"]
    assert stale["severity"] == "high" and "expected within 60 min" in stale["message"]


def _latest_sync_took(engine, duration: timedelta) -> None:
    with engine.begin() as connection:
        latest = connection.execute(sa.select(sa.func.max(sync_runs.c.id))).scalar()
        started = connection.execute(
            sa.select(sync_runs.c.started_at).where(sync_runs.c.id == latest)
        ).scalar()
        connection.execute(
            sa.update(sync_runs)
            .where(sync_runs.c.id == latest)
            .values(finished_at=started + duration)
        )


def test_a_sync_much_slower_than_its_median_is_a_warning(engine):
    for _ in range(6):
        good_sync(engine)
    evaluate(engine)
    assert "slow_sync:dealer_feed:dealer_stock" not in keyed(engine)
    # Many times its median, but under alert_slow_min_seconds (60): noise, not slow.
    _latest_sync_took(engine, timedelta(seconds=30))
    evaluate(engine)
    assert "slow_sync:dealer_feed:dealer_stock" not in keyed(engine)
    _latest_sync_took(engine, timedelta(minutes=10))
    evaluate(engine)
    slow = keyed(engine)["slow_sync:dealer_feed:dealer_stock"]
    assert slow["severity"] == "warning" and "trailing median" in slow["message"]


def test_too_many_open_gaps_alert(engine):
    with engine.begin() as connection:
        set_setting(connection, "alert_open_gaps", "3")
    records = fleet(20)
    listed = [r["StockNumber"] for r in records]
    run_entity_sync(
        engine, SyncRequest("dealer_feed", STOCK), in_memory_source(records[:18], listed=listed)
    )
    evaluate(engine)
    assert "open_gaps:dealer_feed:dealer_stock" not in keyed(engine)  # 2 < 3
    run_entity_sync(
        engine, SyncRequest("dealer_feed", STOCK), in_memory_source(records[:16], listed=listed)
    )
    evaluate(engine)
    assert keyed(engine)["open_gaps:dealer_feed:dealer_stock"]["details"]["open_gaps"] == 4


def test_renotify_interval_must_be_at_least_a_minute(engine):
    with engine.begin() as connection, pytest.raises(ConfigurationError, match="≥ 1"):
        set_setting(connection, "alert_renotify_minutes", "0")


# --- dedup, re-notify, acknowledgement, delivery ------------------------------------------------


class Recorder:
    name = "recorder"

    def __init__(self, fail: bool = False):
        self.sent: list[int] = []
        self.fail = fail

    def send(self, alert):
        if self.fail:
            raise OSError("channel down")
        self.sent.append(alert["id"])


def raise_it(engine, monkeypatch, now):
    monkeypatch.setattr("sync_platform.alerting.store._channel_names", lambda: ["recorder"])
    with engine.begin() as connection:
        return raise_alert(
            connection,
            severity="high",
            type="test",
            message="it broke",
            dedup_key="k",
            now=now,
        )


def test_a_repeating_condition_is_sent_once_until_the_renotify_interval(engine, monkeypatch):
    channel = Recorder()
    start = datetime.now(UTC)
    first = raise_it(engine, monkeypatch, start)
    deliver_due(engine, [channel], now=start)
    later = start + timedelta(minutes=5)
    second = raise_it(engine, monkeypatch, later)
    deliver_due(engine, [channel], now=later)
    assert first.new and not second.new and first.id == second.id
    assert channel.sent == [first.id]  # one message for a persisting condition
    again = start + timedelta(minutes=241)  # default interval: 240
    raise_it(engine, monkeypatch, again)
    deliver_due(engine, [channel], now=again)
    assert channel.sent == [first.id, first.id]
    (row,) = alerts(engine)
    assert row["occurrences"] == 3 and row["delivered_channels"] == ["log", "recorder"]


def test_an_acknowledged_alert_is_not_sent_again(engine, monkeypatch):
    channel = Recorder()
    start = datetime.now(UTC)
    alert = raise_it(engine, monkeypatch, start)
    deliver_due(engine, [channel], now=start)
    with engine.begin() as connection:
        assert acknowledge(connection, alert.id, "dana")
    later = start + timedelta(hours=10)
    raise_it(engine, monkeypatch, later)
    deliver_due(engine, [channel], now=later)
    assert channel.sent == [alert.id]
    assert alerts(engine)[0]["acknowledged_by"] == "dana"


def test_a_failing_channel_keeps_the_alert_pending_and_is_tried_later_each_time(
    engine, monkeypatch
):
    down = Recorder(fail=True)
    start = datetime.now(UTC)
    raise_it(engine, monkeypatch, start)
    assert deliver_due(engine, [down], now=start) == {"sent": 0, "failed": 1, "left": 0}
    (row,) = alerts(engine)
    assert row["pending_channels"] == ["recorder"]
    assert "channel down" in row["details"]["delivery_errors"]["recorder"]
    # Tried again after a minute, then after two more: not on every round.
    assert deliver_due(engine, [down], now=start + timedelta(seconds=30))["failed"] == 0
    assert deliver_due(engine, [down], now=start + timedelta(minutes=1))["failed"] == 1
    assert deliver_due(engine, [down], now=start + timedelta(minutes=2))["failed"] == 0
    with engine.connect() as connection:
        assert deliveries_due(connection, start + timedelta(minutes=2)) == 0
        assert deliveries_due(connection, start + timedelta(minutes=3)) == 1
    up = Recorder()
    assert deliver_due(engine, [up], now=start + timedelta(minutes=3)) == {
        "sent": 1,
        "failed": 0,
        "left": 0,
    }
    (row,) = alerts(engine)
    assert row["pending_channels"] == [] and "delivery_errors" not in (row["details"] or {})
    assert row["delivery_due_at"] is None and row["delivery_attempts"] == 0


def test_a_slow_channel_cannot_hold_a_delivery_round_past_its_budget(engine, monkeypatch):
    class Slow(Recorder):
        def send(self, alert):
            time.sleep(0.3)
            super().send(alert)

    monkeypatch.setattr("sync_platform.alerting.store._channel_names", lambda: ["recorder"])
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for number in range(5):
            raise_alert(
                connection, severity="high", type="t", message="m", dedup_key=f"k{number}", now=now
            )
    counts = deliver_due(engine, [Slow()], now=now, budget_seconds=0.5)
    assert counts["sent"] == 2 and counts["left"] == 3
    with engine.connect() as connection:
        assert deliveries_due(connection, now) == 3  # the rest wait for the next round


# --- real channels --------------------------------------------------------------------------------


@pytest.fixture
def tls_certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def test_email_goes_out_over_starttls_with_a_login(engine, monkeypatch, tls_certificate):
    cert_path, key_path = tls_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"alerts" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("ALERT_SMTP_HOST", "localhost")
        monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
        monkeypatch.setenv("ALERT_SMTP_USERNAME", "alerts")
        monkeypatch.setenv("ALERT_SMTP_PASSWORD", "s3cret")
        monkeypatch.setenv("ALERT_SMTP_CA_FILE", str(cert_path))
        monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.com, owner@example.com")
        (email,) = configured_channels()
        assert isinstance(email, EmailChannel)
        with engine.begin() as connection:
            raise_alert(
                connection,
                severity="high",
                type="unrecovered_gap",
                message="AA12679 is missing",
                dedup_key="gap",
            )
        assert deliver_due(engine, [email]) == {"sent": 1, "failed": 0, "left": 0}
    finally:
        controller.stop()
    (message,) = inbox.messages
    assert message.rcpt_tos == ["ops@example.com", "owner@example.com"]
    text = message.content.decode()
    assert "[sync_platform HIGH] unrecovered_gap" in text and "AA12679 is missing" in text


def refuse_everyone(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)  # answer 535, do not hang up


def test_a_refused_login_keeps_the_email_pending(engine, monkeypatch, tls_certificate):
    cert_path, key_path = tls_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    port = free_port()
    controller = Controller(
        Inbox(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=refuse_everyone,
        auth_require_tls=True,
    )
    controller.start()
    try:
        channel = EmailChannel(
            host="localhost",
            port=port,
            sender="a@b.c",
            recipients=["ops@example.com"],
            username="alerts",
            password="wrong",
            ca_file=str(cert_path),
        )
        monkeypatch.setattr("sync_platform.alerting.store._channel_names", lambda: ["email"])
        with engine.begin() as connection:
            raise_alert(connection, severity="high", type="t", message="m", dedup_key="k")
        assert deliver_due(engine, [channel]) == {"sent": 0, "failed": 1, "left": 0}
    finally:
        controller.stop()
    (alert,) = alerts(engine)
    assert alert["pending_channels"] == ["email"]
    assert "SMTPAuthenticationError" in alert["details"]["delivery_errors"]["email"]


def test_the_webhook_channel_posts_to_a_real_endpoint_and_retries_after_a_500(engine, monkeypatch):
    received, answers = [], [500, 200]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(answers.pop(0))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks/T000/B000/xyz"
        monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", url)
        (hook,) = configured_channels()
        assert isinstance(hook, WebhookChannel)
        with engine.begin() as connection:
            raise_alert(
                connection,
                severity="medium",
                type="data_integrity",
                message="2 rows quarantined",
                dedup_key="q",
            )
        now = datetime.now(UTC)
        assert deliver_due(engine, [hook], now=now) == {"sent": 0, "failed": 1, "left": 0}
        retry = now + timedelta(minutes=1)
        assert deliver_due(engine, [hook], now=retry) == {"sent": 1, "failed": 0, "left": 0}
    finally:
        server.shutdown()
    assert len(received) == 2 and b"2 rows quarantined" in received[-1]
    assert alerts(engine)[0]["pending_channels"] == []
