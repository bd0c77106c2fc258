"""Local stand-ins of outside services (Slack, Telegram, OpenAI, SMTP, Stripe) that record what they receive."""

from tests.standins._server import Call, StandIn
from tests.standins.openai_api import OpenAIStandIn, Usage
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import SignedRequest, SlackSigner, signature
from tests.standins.smtp import ReceivedEmail, SmtpStandIn
from tests.standins.stripe_api import StripeStandIn
from tests.standins.telegram_api import TelegramStandIn

__all__ = [
    "Call",
    "OpenAIStandIn",
    "ReceivedEmail",
    "SignedRequest",
    "SlackSigner",
    "SlackStandIn",
    "SmtpStandIn",
    "StandIn",
    "StripeStandIn",
    "TelegramStandIn",
    "Usage",
    "signature",
]
