"""Idempotency keys: the run and step an action key was built for are read back by the one module that builds it."""
import pytest

from orchestrator.keys import run_step_of


@pytest.mark.parametrize(("key", "owner"), [
    ("run:7:send_emails:c-104", (7, "send_emails")),
    ("run:7:execute:0:refund:c-1", (7, "execute")),
    ("run:12:collect_renewals", (12, "collect_renewals")),
    ("run:x:send:c-1", None),
    ("run:7", None),
    ("k-retry", None),
    ("stripe:evt_1", None),
])
def test_an_action_key_names_the_run_and_step_it_was_built_for(key, owner):
    assert run_step_of(key) == owner
