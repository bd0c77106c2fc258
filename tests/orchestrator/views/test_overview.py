"""The dashboard's pages check the audit chain against its anchors: the cost of a page load is the events since
the newest anchor, not the whole log."""
from __future__ import annotations

from orchestrator import Decision, anchors, views
from tests.orchestrator.helpers import OPERATOR, count, seed, to_approval


def test_the_overview_and_run_page_rehash_only_the_events_after_the_newest_anchor(services, db, work):
    """Proves defect 4's second half for the dashboard: after the anchor job signed the head, the main page and the
    run page (with its replay) re-hash exactly the events appended since, and say the chain is anchored."""
    seed(services)
    ops, approval = to_approval(services, work)
    book = anchors.book(services.settings)
    with db.connection() as conn:
        anchored = anchors.anchor(conn, book, now=services.now()).anchor
    before = count(db, "audit_events")
    ops.decide(OPERATOR, approval, Decision.APPROVED)
    work()
    since = count(db, "audit_events") - before
    assert since > 0 and anchored.event_id == before
    with db.connection() as conn:
        overview = views.overview.overview(conn, settings=services.settings, now=services.now())
        page = views.overview.run_page(conn, 1, anchors=book)
    assert overview.chain.ok and overview.chain.anchor == anchored and overview.chain.checked == since
    assert page.verdict.chain.checked == since and page.verdict.agrees
    assert overview.chain_text.startswith(f"Chain verified: anchored through event #{before}, ")
