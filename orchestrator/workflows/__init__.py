"""The workflows opsos can run, by name."""
from orchestrator.workflows.accounts import ACCOUNT_PAUSE, ACCOUNT_RESUME, REFUND_CUSTOMER
from orchestrator.workflows.bookkeeping import BOOKKEEPING_SUMMARY
from orchestrator.workflows.content_post import CONTENT_POST
from orchestrator.workflows.dunning import DUNNING
from orchestrator.workflows.forget import FORGET
from orchestrator.workflows.fulfilment import FULFILMENT
from orchestrator.workflows.lapse import SUBSCRIPTION_LAPSED
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.outreach import OUTREACH_EMAIL
from orchestrator.workflows.winback import WINBACK

WORKFLOWS: dict[str, Workflow] = {
    workflow.name: workflow
    for workflow in (WINBACK, CONTENT_POST, OUTREACH_EMAIL, BOOKKEEPING_SUMMARY, ACCOUNT_PAUSE, ACCOUNT_RESUME,
                     REFUND_CUSTOMER, FORGET, DUNNING, FULFILMENT, SUBSCRIPTION_LAPSED)
}

__all__ = ["WORKFLOWS"]
