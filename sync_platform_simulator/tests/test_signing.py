"""The simulator's Standard Webhooks signer against the specification's own test vector.

The vector is the one the specification's reference libraries test their `sign` with
(github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
`test_sign_function`; the same values in the other languages' suites).
"""

from __future__ import annotations

import pytest

from sync_platform_simulator.signing import signed_content, signed_headers, signing_key

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_test_vector_signs_to_the_published_signature():
    assert signed_headers(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": EXPECTED,
    }


def test_the_signed_content_is_id_timestamp_and_body_joined_by_full_stops():
    assert signed_content(MSG_ID, TIMESTAMP, PAYLOAD) == (
        b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
    )


def test_the_whsec_prefix_is_optional_as_in_the_reference_libraries():
    bare = SECRET.removeprefix("whsec_")
    assert signed_headers(bare, MSG_ID, TIMESTAMP, PAYLOAD)["webhook-signature"] == EXPECTED


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "payload"),
    [
        ("msg_p5jXN8AQM9LWM0D4loKWxJeK", TIMESTAMP, PAYLOAD),
        (MSG_ID, TIMESTAMP + 1, PAYLOAD),
        (MSG_ID, TIMESTAMP, b'{"test": 2432232315}'),
    ],
)
def test_each_signed_part_changes_the_signature(msg_id, timestamp, payload):
    assert signed_headers(SECRET, msg_id, timestamp, payload)["webhook-signature"] != EXPECTED


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", ""])
def test_a_secret_that_is_not_base64_of_a_key_is_refused(secret):
    with pytest.raises(ValueError):
        signing_key(secret)
