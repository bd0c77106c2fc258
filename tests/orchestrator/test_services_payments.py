"""The payments backend the services build from settings: the sandbox by default, Stripe with its key checked."""
import pytest
from pydantic import SecretStr

from connectors import SandboxPayments
from orchestrator.services import check_payments


def test_the_sandbox_is_the_default_and_says_it_is_a_sandbox(services):
    assert isinstance(services.payments, SandboxPayments)
    usable, said = check_payments(services)
    assert usable and said.startswith("Payments run on the sandbox ledger (no real money).")


def test_stripe_payments_with_a_wrong_key_say_so_at_start_up(settings, db, redis, database_url, redis_url, stripe_api):
    """`opsos serve` and `opsos payments check` run this check: a wrong key is a sentence, not a traceback."""
    from connectors import StripePayments
    from orchestrator.services import build_services
    from orchestrator.stores import Stores

    wrong = settings.model_copy(update={"payments": "stripe", "stripe_api_key": SecretStr("sk_test_wrong"),
                                        "stripe_api_base": stripe_api.url})
    services = build_services(wrong, Stores(pool=db, redis=redis, database_url=database_url, redis_url=redis_url))
    assert isinstance(services.payments, StripePayments)
    usable, said = check_payments(services)
    assert not usable
    assert said.startswith("Stripe refused the API key in OPSOS_STRIPE_API_KEY: Invalid API Key provided")


def test_stripe_payments_with_the_right_key_name_its_mode(settings, db, redis, database_url, redis_url, stripe_api):
    from orchestrator.services import build_services
    from orchestrator.stores import Stores
    from tests.standins.stripe_api import API_KEY

    right = settings.model_copy(update={"payments": "stripe", "stripe_api_key": SecretStr(API_KEY),
                                        "stripe_api_base": stripe_api.url})
    services = build_services(right, Stores(pool=db, redis=redis, database_url=database_url, redis_url=redis_url))
    assert check_payments(services) == (True, "Stripe accepted the API key (test mode: no real money moves).")
    assert [call.method for call in stripe_api.calls] == ["customers.list"]


def test_stripe_payments_need_a_key():
    from pydantic import ValidationError

    from orchestrator.settings import Settings

    with pytest.raises(ValidationError, match="OPSOS_PAYMENTS=stripe needs OPSOS_STRIPE_API_KEY"):
        Settings(payments="stripe", _env_file=None)


def test_subscription_actions_are_carried_only_on_stripe_and_a_cancellation_always_asks(services, stripe_api):
    """Proves pause/resume/cancel route to StripePayments when Stripe is the backend, not at all on the sandbox
    (a proposal of one is refused in words there), and a cancellation waits for the operator even under a policy
    that asks for nothing."""
    from connectors import StripePayments, stripe_client
    from orchestrator.policy import ACTION_EFFECTS, Effect, Policy
    from orchestrator.services import action_registry
    from tests.standins.stripe_api import API_KEY

    kinds = {"pause_collection", "resume_collection", "cancel_subscription"}
    assert not kinds & services.connectors.action_types
    stripe = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url))
    routes = action_registry(email=services.email, payments=stripe, crm=services.crm, books=services.books)
    assert {kind: (routes.route(kind).connector is stripe, routes.route(kind).reversible) for kind in kinds} == {
        "pause_collection": (True, True), "resume_collection": (True, False), "cancel_subscription": (True, False)}
    lenient = Policy(operators=frozenset(), approval_required=frozenset())
    assert lenient.needs_approval(ACTION_EFFECTS["cancel_subscription"])
    assert not lenient.needs_approval(Effect.COLLECTION)


def test_a_collection_paused_through_the_registry_is_resumed_by_its_compensation(services, stripe_api):
    from connectors import PauseCollection, StripePayments, stripe_client
    from orchestrator.services import action_registry
    from tests.standins.stripe_api import API_KEY

    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana")
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=1200)
    stripe = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url))
    routes = action_registry(email=services.email, payments=stripe, crm=services.crm, books=services.books)
    changed = routes.execute("pause_collection", action=PauseCollection(subscription="sub_ana"), key="run:9:x:ana")
    assert changed.collection_paused and stripe_api.subscriptions["sub_ana"]["pause_collection"] is not None
    assert routes.compensate("pause_collection", key="run:9:x:ana") == "resumed collection of sub_ana"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is None


def test_the_workflow_files_catalogue_knows_the_stripe_routes_as_they_are(services, stripe_api):
    """A file may name a subscription action on any backend; its catalogue entry has the Stripe route's model
    and reversibility, so what a file is checked against is what runs."""
    from connectors import StripePayments, stripe_client
    from orchestrator.services import action_registry
    from orchestrator.workflows.declared import CONNECTOR_ACTIONS
    from tests.standins.stripe_api import API_KEY

    stripe = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url))
    routes = action_registry(email=services.email, payments=stripe, crm=services.crm, books=services.books)
    assert set(CONNECTOR_ACTIONS) == set(routes.action_types)
    for name, entry in CONNECTOR_ACTIONS.items():
        assert (entry.model, entry.reversible) == (routes.route(name).model, routes.route(name).reversible), name
