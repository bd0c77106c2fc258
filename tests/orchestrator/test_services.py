"""The services' action registry: every action an agent may propose has one connector, except a post."""
from agents.proposals import ACTION_TYPES, SUBSCRIPTION_ACTIONS
from connectors import SandboxBooks, SandboxCrm, SandboxPayments
from orchestrator.policy import ACTION_EFFECTS
from orchestrator.workflows.connector_actions import FIELDS

# Actions only a workflow file takes, never an agent's proposal: lead qualification's tags.
WORKFLOW_ONLY = frozenset({"tag_contact"})


def test_every_proposable_action_but_a_post_has_a_connector_and_a_translation(services):
    registry = services.connectors
    # The sandbox carries every action an agent may propose but a post and the Stripe subscriptions' actions.
    proposable = frozenset(ACTION_TYPES) - {"post_content"}
    assert registry.action_types == (proposable - SUBSCRIPTION_ACTIONS) | WORKFLOW_ONLY
    assert frozenset(FIELDS) == proposable
    assert frozenset(ACTION_EFFECTS) - {"post_content"} == proposable | WORKFLOW_ONLY
    owners = {kind: type(registry.route(kind).connector) for kind in registry.action_types}
    assert owners["categorise"] is SandboxBooks and owners["provision_account"] is SandboxCrm
    assert owners["refund"] is SandboxPayments and not registry.route("refund").reversible
