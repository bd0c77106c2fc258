"""Chat command parsing, table-driven: which words are commands, what their argument is, what is a request."""
import pytest

from orchestrator.chat.commands import ChatCommand, Command, parse, repeatable
from tests.orchestrator.helpers import OPERATOR, operations

APPROVAL = "a0123456789"

CASES = [
    # (text, command, argument)
    pytest.param("", Command.REQUEST, "", id="empty text is an empty request"),
    pytest.param("   \n ", Command.REQUEST, "", id="blank text is an empty request"),
    pytest.param("help", Command.HELP, "", id="help"),
    pytest.param("/help", Command.HELP, "", id="leading slash"),
    pytest.param("HeLp", Command.HELP, "", id="mixed case"),
    pytest.param("help me grow MRR", Command.REQUEST, "help me grow MRR", id="help with words is a request"),
    pytest.param("//help", Command.REQUEST, "//help", id="two slashes are no command"),
    pytest.param("/ops status", Command.REQUEST, "/ops status", id="the slash command name is not stripped here"),
    pytest.param("status", Command.STATUS, "", id="status of everything"),
    pytest.param("Status 3", Command.STATUS, "3", id="status of a run"),
    pytest.param("/STATUS #12", Command.STATUS, "12", id="status with slash, capitals and hash"),
    pytest.param("status of the campaign", Command.REQUEST, "status of the campaign", id="status in words"),
    pytest.param("status 3 please", Command.REQUEST, "status 3 please", id="status with trailing words"),
    pytest.param("status ¹", Command.REQUEST, "status ¹", id="a superscript digit is no run number"),
    pytest.param("pause 3", Command.PAUSE, "3", id="pause a run"),
    pytest.param("  pause   #3  ", Command.PAUSE, "3", id="pause with spaces and hash"),
    pytest.param("pause\n3", Command.PAUSE, "3", id="pause with the number on the next line"),
    pytest.param("Resume 4", Command.RESUME, "4", id="resume"),
    pytest.param("cancel 5", Command.CANCEL, "5", id="cancel"),
    pytest.param("pause ٣", Command.REQUEST, "pause ٣", id="only ASCII digits are run numbers"),
    pytest.param("/pause", Command.REQUEST, "/pause", id="pause without a run is a request"),
    pytest.param("pause everything", Command.REQUEST, "pause everything", id="pause in words"),
    pytest.param("pause -3", Command.REQUEST, "pause -3", id="a negative run number is no run"),
    pytest.param(f"approve {APPROVAL}", Command.APPROVE, APPROVAL, id="approve"),
    pytest.param(f"APPROVE {APPROVAL}", Command.APPROVE, APPROVAL, id="approve in capitals"),
    pytest.param(f"/reject {APPROVAL}", Command.REJECT, APPROVAL, id="reject with slash"),
    pytest.param("approve A0123456789", Command.REQUEST, "approve A0123456789", id="approval ids are lower case"),
    pytest.param("approve a0123", Command.REQUEST, "approve a0123", id="approval id too short"),
    pytest.param("approve", Command.REQUEST, "approve", id="approve without an id"),
    pytest.param(f"why {APPROVAL}", Command.WHY, APPROVAL, id="why an approval"),
    pytest.param("why did we email Ana?", Command.WHY, "did we email Ana?", id="why in words"),
    pytest.param("why", Command.REQUEST, "why", id="why alone"),
    pytest.param("choose 0123456789:2", Command.CHOOSE, "0123456789:2", id="choose an option"),
    pytest.param("choose 2", Command.REQUEST, "choose 2", id="choose without its question"),
    pytest.param("remember Ana prefers email", Command.REMEMBER, "Ana prefers email", id="remember"),
    pytest.param("remember", Command.REQUEST, "remember", id="remember nothing"),
    pytest.param("recall Ana", Command.RECALL, "Ana", id="recall"),
    pytest.param("forget 12", Command.FORGET, "12", id="forget by number"),
    pytest.param("forget memory #12", Command.FORGET, "12", id="forget memory by hash number"),
    pytest.param("forget Ana", Command.REQUEST, "forget Ana", id="forget in words"),
    pytest.param("digest", Command.DIGEST, "", id="digest"),
    pytest.param("digest of yesterday", Command.REQUEST, "digest of yesterday", id="digest in words"),
    pytest.param("Dashboard", Command.DASHBOARD, "", id="dashboard"),
    pytest.param("replay 3", Command.REPLAY, "3", id="replay a run"),
    pytest.param("replay the spring campaign", Command.REQUEST, "replay the spring campaign", id="replay in words"),
    pytest.param("contacts", Command.CONTACTS, "", id="contacts"),
    pytest.param("contacts who lapsed in March", Command.REQUEST, "contacts who lapsed in March",
                 id="contacts in words"),
    pytest.param("contact Ana", Command.CONTACT, "Ana", id="contact by name"),
    pytest.param("contact ana@example.com", Command.CONTACT, "ana@example.com", id="contact by address"),
    pytest.param("Contact Ana Souza", Command.CONTACT, "Ana Souza", id="contact by full name"),
    pytest.param("contact Ana about her renewal", Command.REQUEST, "contact Ana about her renewal",
                 id="contact someone about something is a request"),
    pytest.param("contact lapsed customers", Command.REQUEST, "contact lapsed customers",
                 id="contact a segment is a request"),
    pytest.param("contact", Command.REQUEST, "contact", id="contact nobody"),
    pytest.param("  grow MRR: win back lapsed subscribers ", Command.REQUEST, "grow MRR: win back lapsed subscribers",
                 id="a request is stripped"),
    pytest.param("¿status?", Command.REQUEST, "¿status?", id="punctuation first"),
    pytest.param("schedules", Command.SCHEDULES, "", id="list schedules"),
    pytest.param("pause schedule 3", Command.PAUSE_SCHEDULE, "3", id="pause a schedule"),
    pytest.param("Resume Schedule #3", Command.RESUME_SCHEDULE, "3", id="resume a schedule"),
    pytest.param("unschedule 3", Command.UNSCHEDULE, "3", id="remove a schedule"),
    pytest.param("unschedule the newsletter", Command.REQUEST, "unschedule the newsletter", id="unschedule in words"),
    pytest.param("confirm s0123456789", Command.CONFIRM, "s0123456789", id="confirm an offered schedule"),
    pytest.param("every Monday at 9 write x", Command.SCHEDULE, "every Monday at 9 write x", id="a schedule"),
    pytest.param("every blursday write x", Command.SCHEDULE, "every blursday write x",
                 id="an unreadable timing is a schedule to refuse, not a request"),
    pytest.param("0 9 * * 1 write x", Command.SCHEDULE, "0 9 * * 1 write x", id="a cron string"),
    pytest.param("schedule every day at 9 write x", Command.SCHEDULE, "every day at 9 write x",
                 id="schedule before a timing"),
    pytest.param("every customer who cancelled gets an email", Command.REQUEST,
                 "every customer who cancelled gets an email", id="every without a timing is a request"),
]


@pytest.mark.parametrize(("text", "command", "argument"), CASES)
def test_parse(text: str, command: Command, argument: str) -> None:
    assert parse(text) == ChatCommand(command=command, argument=argument)


@pytest.mark.parametrize("text", ["status ¹", "pause ²", "replay ①"])
def test_a_superscript_digit_is_no_run_number_and_is_answered(services, text: str) -> None:
    """`str.isdigit()` is True for '¹', '²' and '①'; parse took them as run numbers and `handle_text` then raised
    from `int('¹')`. Only ASCII digits are run numbers now: these are requests in words, and get an answer."""
    assert parse(text).command is Command.REQUEST
    assert operations(services).handle_text(OPERATOR, text).title


@pytest.mark.parametrize(("text", "keyed", "again"), [
    pytest.param("win back lapsed customers", True, True, id="a keyed request is made once by its key"),
    pytest.param("win back lapsed customers", False, False, id="an unkeyed request would be made twice"),
    pytest.param("status 3", False, True, id="a read"),
    pytest.param(f"approve {APPROVAL}", False, True, id="a decision, whose repeat is its success"),
    pytest.param("pause 3", True, False, id="a run change: the key makes only intents once"),
    pytest.param("forget 7", True, False, id="an intent made without the key"),
    pytest.param("remember the office closes at 5", True, False, id="a memory written twice"),
    pytest.param("digest", True, False, id="a digest sent twice"),
])
def test_which_commands_a_front_end_may_handle_again_after_a_store_error(text: str, keyed: bool, again: bool) -> None:
    """A store error can come after a command's work committed: only what a second call leaves as the first did is
    retried by the front ends that acked it (Slack's listeners)."""
    assert repeatable(parse(text), keyed=keyed) is again
