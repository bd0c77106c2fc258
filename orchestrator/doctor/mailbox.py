"""The mailbox's check: log in over IMAP and select the folder read-only, as every poll does."""
from __future__ import annotations

from connectors import ConnectorUnavailable
from orchestrator.doctor.verdict import Verdict, failed, ok, skipped
from orchestrator.inbox.poll import mailbox_of
from orchestrator.settings import Settings
from orchestrator.words import doctor as said

PART = "mailbox"


def check_mailbox(settings: Settings) -> Verdict:
    mailbox = mailbox_of(settings)
    if mailbox is None:
        return skipped(PART, said.IMAP_UNSET)
    try:
        with mailbox.session() as session:
            state = session.state
    except ConnectorUnavailable as error:
        return failed(PART, said.imap_failed(str(error)), said.IMAP_FIX)
    return ok(PART, said.imap_works(mailbox.user, state.folder, state.uidnext))
