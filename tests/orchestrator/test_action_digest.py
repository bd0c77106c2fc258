"""`action_digest`, table-driven: which changes to an action make a new approval, and which do not."""
import hashlib
from datetime import date

import pytest

from orchestrator.approvals import action_digest

EMAILS = {"actions": [{"type": "send_email", "to": "c-ana", "subject": "We miss you", "body": "Come back"}]}


def test_the_digest_is_sha256_of_the_canonical_json() -> None:
    assert action_digest({"b": 1, "a": [1, "é"]}) == hashlib.sha256(b'{"a":[1,"\\u00e9"],"b":1}').hexdigest()


@pytest.mark.parametrize(("left", "right", "same"), [
    pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, True, id="key order does not count"),
    pytest.param({"x": {"a": 1, "b": 2}}, {"x": {"b": 2, "a": 1}}, True, id="nested key order does not count"),
    pytest.param(EMAILS, {"actions": [{**EMAILS["actions"][0], "body": "Come back!"}]}, False,
                 id="an edited email body is a new action"),
    pytest.param(EMAILS, {"actions": [{**EMAILS["actions"][0], "to": "c-bob"}]}, False, id="another recipient"),
    pytest.param({"actions": [1, 2]}, {"actions": [2, 1]}, False, id="the order of actions counts"),
    pytest.param({"amount_cents": 2000}, {"amount_cents": 2000.0}, False, id="an int and a float differ"),
    pytest.param({"amount_cents": 2000}, {"amount_cents": "2000"}, False, id="a number and a string differ"),
    pytest.param({"on": date(2026, 3, 10)}, {"on": "2026-03-10"}, True, id="a date reads as its ISO text"),
    pytest.param({"note": None}, {}, False, id="a key set to null is not a missing key"),
    pytest.param({"s": "é"}, {"s": "e\u0301"}, False, id="unicode is not normalised"),
])
def test_action_digest(left: object, right: object, same: bool) -> None:
    assert (action_digest(left) == action_digest(right)) is same


def test_the_digest_is_64_hex_characters() -> None:
    digest = action_digest(EMAILS)
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
