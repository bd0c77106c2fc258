"""Lead qualification from its shipped file, offline on the embedded stack: profile, scores, tags, list, button."""
from __future__ import annotations

import json

import pytest

from agents.qualify import offline_qualify, terms
from connectors import Contact, Tagging
from connectors.crm import retagged
from orchestrator import buttons
from orchestrator.workflows.declared.segments import named_source, rank
from tests.orchestrator.helpers import OPERATOR, count, operations, run_state

PROFILE = "B2B SaaS founders in Europe with a team"
REQUEST = "qualify the leads that came in from the webinar"


def lead(id_: str, name: str, *, tags: list[str], **attributes) -> Contact:
    return Contact(id=id_, email=f"{id_}@example.com", name=name, plan="", status="lead", monthly_cents=0,
                   tags=tags, attributes=attributes)


LEADS = [
    lead("l-1", "Ana Souza", tags=["webinar"], company="Acme SaaS", role="founder", country="Europe", size="team"),
    lead("l-2", "Ben Ode", tags=["webinar"], role="student"),
    lead("l-3", "Cy Lee", tags=["webinar", "vip"], company="Lee B2B", role="founder"),
    lead("l-4", "Dee Nash", tags=["ebook"], company="Nash SaaS", role="founder", country="Europe"),
]


def seed_leads(services) -> None:
    services.crm.upsert(LEADS)
    # upsert keeps tags and attributes out of its columns: the import path writes them.
    with services.stores.pool.connection() as conn, conn.transaction():
        for contact in LEADS:
            conn.execute("UPDATE crm_contacts SET tags = %s, attributes = %s::jsonb WHERE id = %s",
                         (contact.tags, json.dumps(contact.attributes), contact.id))


def qualify(services, work, request: str = REQUEST) -> None:
    operations(services).submit(OPERATOR, request)
    work()


def outbox_reports(db) -> list[dict]:
    with db.connection() as conn:
        return [r["message"] for r in conn.execute(
            "SELECT message FROM outbox WHERE message->>'title' = 'Your leads, best fit first' ORDER BY id")]


def test_without_a_profile_the_run_asks_for_one_and_tags_nothing(services, db, work) -> None:
    """No ideal-customer profile in memory: the operator is asked for it; nothing is scored or tagged."""
    seed_leads(services)
    qualify(services, work)
    assert run_state(db, 1) == "cancelled"
    assert count(db, "outbox", "message->>'title' = 'I need your ideal customer profile first'") == 1
    assert services.crm.get("l-1").tags == ["webinar"]


def test_webinar_leads_are_scored_tagged_and_ranked_with_an_outreach_button(services, db, work) -> None:
    """End to end offline: the profile from `remember`, the webinar's leads only, tags written, the list posted."""
    seed_leads(services)
    ops = operations(services)
    ops.handle_text(OPERATOR, f"remember ideal customer profile: {PROFILE}")
    qualify(services, work)
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("l-1").tags == ["webinar", "score:80", "qualified"]
    assert services.crm.get("l-2").tags == ["webinar", "score:0"]
    assert services.crm.get("l-4").tags == ["ebook"]  # not from the webinar
    [report] = outbox_reports(db)
    lines = report["sections"][0]["text"].splitlines()
    assert [line.split(" (")[0] for line in lines] == ["1. Ana Souza", "2. Cy Lee", "3. Ben Ode"]
    assert "matches" in lines[0] and lines[0].count(": ") >= 2
    assert [a["value"] for a in report["actions"]] == [buttons.outreach(1)]


def test_a_second_qualification_leaves_one_score_per_lead(services, db, work) -> None:
    """Running it again replaces each lead's score rather than adding another: the tags are the same."""
    seed_leads(services)
    operations(services).handle_text(OPERATOR, f"remember ideal customer profile: {PROFILE}")
    qualify(services, work)
    first = {c.id: services.crm.get(c.id).tags for c in LEADS}
    qualify(services, work)
    assert run_state(db, 2) == "succeeded"
    assert {c.id: services.crm.get(c.id).tags for c in LEADS} == first
    assert count(db, "connector_actions", "action = 'tag'") == 6  # 3 leads, twice: once per run and lead


def test_undoing_the_tags_puts_each_lead_back_as_it_was(services, db, work) -> None:
    """The tag step's compensation restores every lead's previous tags."""
    seed_leads(services)
    services.crm.execute(action=Tagging(contact_id="l-3", tags=["score:10"]), key="earlier")
    operations(services).handle_text(OPERATOR, f"remember ideal customer profile: {PROFILE}")
    qualify(services, work)
    assert "score:10" not in services.crm.get("l-3").tags
    with db.connection() as conn:
        keys = [r["key"] for r in conn.execute("SELECT key FROM connector_actions WHERE action = 'tag' "
                                               "AND key <> 'earlier' ORDER BY key")]
    undone = [services.crm.compensate(key=key) for key in keys]
    assert len(undone) == 3 and all(said.startswith("tags of") for said in undone)
    assert services.crm.get("l-1").tags == ["webinar"]
    assert services.crm.get("l-3").tags == ["webinar", "vip", "score:10"]
    assert services.crm.compensate(key=keys[0]) == "already undone"


def test_the_button_starts_outreach_for_the_top_three_once(services, db, work) -> None:
    """Pressing it makes one outreach intent per top lead; pressing again makes none."""
    seed_leads(services)
    ops = operations(services)
    ops.handle_text(OPERATOR, f"remember ideal customer profile: {PROFILE}")
    qualify(services, work)
    pressed = buttons.read(buttons.outreach(1))
    reply = ops.handle_text(OPERATOR, pressed.as_text())
    assert reply.title == "Outreach started for 3 leads"
    again = ops.handle_text(OPERATOR, pressed.as_text())
    assert again.title == "Outreach was already started for 3 leads"
    assert count(db, "intents", "kind = 'outreach_email'") == 3
    with db.connection() as conn:
        requests = [r["request"] for r in conn.execute("SELECT request FROM intents WHERE kind = 'outreach_email' "
                                                       "ORDER BY id")]
    assert requests[0] == "write a personal email to l-1@example.com about following up on the webinar"
    work()
    # Each outreach run reads its lead from the request and waits for the email's approval.
    assert count(db, "approvals", "state = 'pending'") == 3


# -- the pure parts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "tagging", "after"), [
    (["webinar"], Tagging(contact_id="c", tags=["score:80", "qualified"], drop=["score:", "qualified"]),
     ["webinar", "score:80", "qualified"]),
    (["webinar", "score:80", "qualified"], Tagging(contact_id="c", tags=["score:40"], drop=["score:", "qualified"]),
     ["webinar", "score:40"]),
    (["a", "b"], Tagging(contact_id="c", tags=["b", "b", "c"]), ["a", "b", "c"]),
    (["qualified-by-ana", "score:1"], Tagging(contact_id="c", tags=["x"], drop=["qualified"]),
     ["qualified-by-ana", "score:1", "x"]),
])
def test_retagged(current, tagging, after) -> None:
    assert retagged(current, tagging) == after


@pytest.mark.parametrize(("request_", "source"), [
    ("qualify the leads that came in from the webinar", "webinar"),
    ("score the leads from the webinars", "webinar"),
    ("score my new leads", None),
    ("score the VIP leads", "vip"),
])
def test_named_source(request_, source) -> None:
    assert named_source(request_, LEADS) == source


def test_the_offline_tier_scores_the_same_leads_the_same_with_reasons() -> None:
    context = {"profile": PROFILE, "leads": [c.model_dump(mode="json") for c in LEADS]}
    first, second = offline_qualify(context), offline_qualify(context)
    assert first == second
    assert terms(PROFILE) == ["b2b", "saas", "founder", "europe", "team"]
    assert [(s["contact_id"], s["score"]) for s in first["scores"]] == [("l-1", 80), ("l-2", 0), ("l-3", 40),
                                                                         ("l-4", 60)]
    assert first["scores"][1]["reason"] == "nothing in the record matches the profile"


def test_rank_drops_scores_for_contacts_the_run_did_not_read() -> None:
    among = [{"id": "a", "name": "A", "email": "a@x"}, {"id": "b", "name": "B", "email": "b@x"}]
    ranked = rank([{"contact_id": "b", "score": 90, "reason": "r"}, {"contact_id": "zz", "score": 99},
                   {"contact_id": "b", "score": 10}, {"contact_id": "a", "score": 59}], among, qualified_at=60)
    assert [(r["contact_id"], r["tags"]) for r in ranked["ranked"]] == [("b", ["score:90", "qualified"]),
                                                                        ("a", ["score:59"])]
    assert ranked["dropped"] == ["zz", "b"]
