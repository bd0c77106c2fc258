"""Every sentence opsos says to the operator, in one place, so tone and wording stay consistent and testable."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from pydantic import BaseModel

from connectors import AccessChanged, Categorised, PaymentReceipt, Provisioned, RefundReceipt, SentEmail
from orchestrator.approvals import Approval, ApprovalRequest, ApprovalState
from orchestrator.intents import Intent
from orchestrator.messages import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.runs import Run

if TYPE_CHECKING:
    # Only for annotations: replay builds its chat reply with these words, so a real import would be circular.
    from orchestrator.replay import Disagreement, ReplayReport

COMMANDS_HELP = [
    ("<request>", "ask for something, e.g. “launch a win-back campaign to lapsed subscribers”"),
    ("status", "what is running, what waits for you, what it cost"),
    ("status <run>", "one run in detail"),
    ("pause <run> / resume <run> / cancel <run>", "take over a run, or hand it back"),
    ("approve <id> / reject <id> / why <id>", "decide an approval (the buttons do the same)"),
    ("remember <subject>: <fact>", "keep a fact for the agents, e.g. “remember Ana Souza: prefers email”"),
    ("recall <question>", "what I remember, with where each memory came from"),
    ("forget <memory>", "redact a memory (after your approval)"),
    ("why <customer or action>", "the chain behind an action: intent, approval, memories, audit events"),
    ("replay <run>", "rebuild a run from the audit log and show where the tables disagree with it"),
    ("help", "this list"),
]


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def help_message(capabilities: Iterable[tuple[str, str]]) -> Message:
    return Message(
        kind=MessageKind.HELP,
        title="Here is what I can do",
        sections=[
            Section(title="Requests I understand", facts=[Fact(label=name, value=text) for name, text in capabilities]),
            Section(title="Commands", facts=[Fact(label=cmd, value=text) for cmd, text in COMMANDS_HELP]),
        ],
    )


def not_understood(request: str, capabilities: Iterable[tuple[str, str]], closest: list[str] | None = None,
                   suggestion: str | None = None) -> Message:
    """The answer to a request below the router's confidence: no guess, the closest kinds as buttons."""
    hint = f" Did you mean {' or '.join(k.replace('_', ' ') for k in closest)}?" if closest else ""
    message = help_message(capabilities)
    message.kind = MessageKind.REFUSAL
    message.title = "I don't know how to do that yet, so nothing was queued."
    message.text = f"“{request[:120]}” matched none of my workflows.{hint}"
    if suggestion and closest:
        message.actions = [Action(label=f"Did you mean: {kind.replace('_', ' ')}?", value=f"choose:{suggestion}:{n}")
                           for n, kind in enumerate(closest)]
    return message


def suggestion_expired() -> Message:
    return Message(kind=MessageKind.NOTICE, title="That suggestion has expired; please ask again in your own words.")


def invalid_request(reason: str) -> Message:
    return Message(kind=MessageKind.REFUSAL, title=f"I can't take that request: {reason}. Nothing was queued.")


def not_authorised(identity: str) -> Message:
    return Message(
        kind=MessageKind.REFUSAL,
        title="Sorry, only this workspace's operator can ask me to act.",
        text=f"Your identity ({identity}) is not on the operator list; this attempt was recorded.",
    )


def accepted(intent: Intent, run: Run, workflow_title: str) -> Message:
    return Message(
        kind=MessageKind.ACK,
        title=f"On it: intent #{intent.id} → run #{run.id} ({workflow_title}).",
        sections=[Section(facts=[
            Fact(label="Goal", value=intent.request),
            Fact(label="Budget", value=money(intent.budget_usd)),
            Fact(label="Deadline", value=f"{intent.deadline:%Y-%m-%d %H:%M} UTC"),
        ])],
        run_id=run.id,
    )


def duplicate_request(intent: Intent) -> Message:
    return Message(kind=MessageKind.ACK, title=f"Already on it: that request is intent #{intent.id}.")


def approval_actions(approval_id: str) -> list[Action]:
    return [
        Action(label="Approve", value=f"approve:{approval_id}", style=Style.PRIMARY),
        Action(label="Reject", value=f"reject:{approval_id}", style=Style.DANGER),
        Action(label="Why?", value=f"why:{approval_id}"),
    ]


def approval_request(approval: Approval, intent: Intent) -> Message:
    ask = approval.request
    return Message(
        kind=MessageKind.APPROVAL_REQUEST,
        title=f"Approval needed for run #{approval.run_id}: {ask.what}",
        text=ask.why,
        sections=[
            Section(facts=[
                *ask.facts,
                Fact(label="Estimated cost", value=money(ask.estimated_cost_usd)),
                Fact(label="Expires", value=f"{approval.expires_at:%Y-%m-%d %H:%M} UTC"),
            ]),
            Section(title="Preview", text=ask.preview),
        ],
        actions=approval_actions(approval.id),
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def approval_decided(approval: Approval, *, withdrawn: str | None = None) -> Message:
    """How an approval that left pending reads: who decided it, via what and when; or that it expired, was
    replaced, or was withdrawn because its run ended (`withdrawn` says how)."""
    what = approval.request.what
    if withdrawn is not None:
        title, text = f"Withdrawn: {what}", withdrawn
    elif approval.state is ApprovalState.EXPIRED:
        title = f"Expired: {what}"
        text = (f"Nobody decided by {approval.expires_at:%Y-%m-%d %H:%M} UTC; "
                f"say “resume {approval.run_id}” to ask again.")
    elif approval.state is ApprovalState.VOID:
        title = f"Replaced: {what}"
        text = "The action changed after this was asked; a new approval was requested."
    else:
        verb = "Approved" if approval.state is ApprovalState.APPROVED else "Rejected"
        title = f"{verb}: {what}"
        text = (f"{verb} by {approval.decided_by} via {approval.decided_via} "
                f"at {approval.decided_at:%Y-%m-%d %H:%M} UTC.")
    return Message(kind=MessageKind.APPROVAL_DECIDED, title=title, text=text, run_id=approval.run_id,
                   approval_id=approval.id)


def outcome(decisions: list[Message]) -> Section:
    """The lines added under a message whose approval buttons were taken off: one per approval that left pending."""
    return Section(title="Outcome", text="\n".join(f"{decision.title} — {decision.text}" for decision in decisions))


def already_decided(detail: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Nothing changed: {detail}.")


def explanation(approval: Approval, intent: Intent, cited: list[str], model: str | None) -> Message:
    facts = [
        Fact(label="Intent", value=f"#{intent.id} “{intent.request}” from {intent.requested_by} via {intent.channel}"),
        Fact(label="Step", value=approval.step),
        Fact(label="Action digest", value=approval.action_digest[:16]),
    ]
    if model:
        facts.append(Fact(label="Drafted by", value=model))
    if cited:
        facts.append(Fact(label="Data used", value=", ".join(cited)))
    return Message(
        kind=MessageKind.EXPLANATION,
        title=f"Why I ask: {approval.request.what}",
        text=approval.request.why,
        sections=[Section(facts=facts), Section(title="Preview", text=approval.request.preview)],
        actions=approval_actions(approval.id)[:2] if approval.state == "pending" else [],
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def payment_failed(contact_name: str, amount: str, attempts: int, reason: str, compensation: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title=f"Payment failed: {contact_name} ({amount})",
        text=f"Declined {attempts} times ({reason}). Compensating step: {compensation}.",
    )


def run_failed(run: Run, error: str, compensations: list[str]) -> Message:
    undone = "; ".join(compensations) if compensations else "nothing needed undoing"
    return Message(
        kind=MessageKind.ALERT,
        title=f"Run #{run.id} stopped: {error}",
        text=f"Compensation: {undone}. Say “resume {run.id}” after fixing the cause, or “cancel {run.id}”.",
        run_id=run.id,
    )


def run_changed(run: Run, verb: str, actor: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Run #{run.id} {verb} by {actor}; it is now {run.state}.",
                   run_id=run.id)


def still_working() -> Message:
    return Message(kind=MessageKind.ACK, title="Got it — I'm writing that down; the confirmation follows in a moment.")


def needs_run(command: str) -> Message:
    return Message(kind=MessageKind.REFUSAL,
                   title=f"Say which run to {command}, e.g. “{command} 3”. “status” lists the live runs.")


def unknown_button() -> Message:
    return Message(kind=MessageKind.NOTICE, title="That button no longer means anything to me; nothing changed.")


# -- the daily digest, scheduled alerts and the dashboard link (issue 6) ---------------------------

def digest_title(day_covered: date, *, late_by: timedelta | None = None, due_at: datetime | None = None) -> str:
    title = f"Daily digest for {day_covered:%a %d %b %Y}"
    if late_by is not None and due_at is not None:
        hours, minutes = divmod(int(late_by.total_seconds() // 60), 60)
        title += f" (late: due {due_at:%H:%M}, sent {hours}h{minutes:02d} later, after opsos was down)"
    return title


def digest_summary(*, finished: int, failed: int, waiting: int, stuck: int, at_risk: int, spent: str,
                   cap: str) -> str:
    return (f"Yesterday {finished} run{'s' if finished != 1 else ''} finished ({failed} not succeeded); "
            f"{waiting} approval{'s' if waiting != 1 else ''} wait{'s' if waiting == 1 else ''} for you; "
            f"{stuck} workflow{'s' if stuck != 1 else ''} failing or stuck; {at_risk} intent"
            f"{'s' if at_risk != 1 else ''} at risk of missing {'its' if at_risk == 1 else 'their'} deadline; "
            f"{spent} of {cap} spent today.")


def digest_empty(section: str) -> str:
    return {"finished": "no run finished", "waiting": "nothing waits for you", "stuck": "nothing is stuck",
            "at_risk": "every deadline is safe"}.get(section, "none")


def run_actions(run_id: int, *, resume: bool = True) -> list[Action]:
    """Resume / Cancel buttons for a run; values `resume:<run>` / `cancel:<run>`."""
    actions = [Action(label=f"Resume #{run_id}", value=f"resume:{run_id}", style=Style.PRIMARY)] if resume else []
    return [*actions, Action(label=f"Cancel #{run_id}", value=f"cancel:{run_id}", style=Style.DANGER)]


def digest_approval_actions(approval_id: str, run_id: int) -> list[Action]:
    """The approval buttons inside the digest, named by run, since several sit side by side."""
    return [
        Action(label=f"Approve #{run_id}", value=f"approve:{approval_id}", style=Style.PRIMARY),
        Action(label=f"Reject #{run_id}", value=f"reject:{approval_id}", style=Style.DANGER),
    ]


def sla_at_risk(intent: Intent, run_id: int, state: str, *, now: datetime, zone: tzinfo) -> Message:
    left = intent.deadline - now
    when = f"{intent.deadline.astimezone(zone):%a %d %b %H:%M}"
    if left.total_seconds() <= 0:
        title = f"Intent #{intent.id} missed its deadline ({when}); run #{run_id} is still {state}."
    else:
        hours = int(left.total_seconds() // 3600)
        title = f"Intent #{intent.id} is at risk: its deadline is in {hours}h ({when}) and run #{run_id} is {state}."
    return Message(kind=MessageKind.ALERT, title=title, text=f"“{intent.request[:160]}”",
                   actions=run_actions(run_id, resume=state == "paused"), run_id=run_id)


def budget_alert(cap_name: str, threshold: int, spent: float, cap: float) -> Message:
    reached = "reached" if threshold >= 100 else "passed"
    text = ("Model calls now wait until the cap resets or is raised." if threshold >= 100
            else "Calls go on; this is an early warning.")
    title = f"Model spend {cap_name} has {reached} {threshold}% of its cap: {money(spent)} of {money(cap)}."
    return Message(kind=MessageKind.ALERT, title=title, text=text)


def digest_on_its_way(channel: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Your digest is on its way to {channel}.")


def dashboard_link(url: str, expires_at: datetime) -> Message:
    return Message(
        kind=MessageKind.NOTICE,
        title="Your dashboard sign-in link (works once):",
        text=f"{url}\nIt expires at {expires_at:%Y-%m-%d %H:%M} UTC. Do not forward it: it signs in as you.",
    )


# -- model budget, reasoning, proposals and missing parameters (issue 4) ----------------------------

def budget_request(*, step: str, tier: str, cap: str, spent: float, limit: float, raise_usd: float,
                   waiting: bool) -> ApprovalRequest:
    """The ask when a model call does not fit its budget: approving raises the named cap by `raise_usd`."""
    what = (f"Budget: the {cap} cap is reached; raise it by {money(raise_usd)} so “{step}” can go on?" if waiting
            else f"Budget: “{step}” needs about {money(raise_usd)} more on the {cap} cap: approve?")
    why = (f"The {tier}-tier call of “{step}” does not fit: {money(spent)} of {money(limit)} is spent or held. "
           "Approving raises the cap for this period only; rejecting cancels the run. Until then the run waits "
           "for budget and nothing is charged.")
    return ApprovalRequest(what=what, why=why, estimated_cost_usd=raise_usd, facts=[
        Fact(label="Cap", value=f"{cap}: {money(spent)} of {money(limit)}"),
        Fact(label="Raise", value=f"+{money(raise_usd)}"),
        Fact(label="Tier", value=tier),
    ])


def reason_request(*, step: str, agent: str, model: str, estimate_usd: float, intent: Intent) -> ApprovalRequest:
    return ApprovalRequest(
        what=f"Use the reasoning model ({model}) for “{step}”?",
        why=(f"Intent #{intent.id} asks: “{intent.request}”. Reasoning-tier calls cost more, so each one is "
             f"approved. The {agent} agent would run once, for about {money(estimate_usd)}."),
        estimated_cost_usd=estimate_usd,
        facts=[Fact(label="Agent", value=agent), Fact(label="Model", value=model)],
    )


def stepped_down(step: str, from_tier: str, to_tier: str) -> str:
    return f"“{step}” used the {to_tier} tier instead of {from_tier}: the budget was near its cap"


def waiting_for_budget(approval_id: str) -> str:
    return f"waiting for budget — “approve {approval_id}” raises the cap, or wait for it to reset"


def action_line(action: dict) -> str:
    """One proposed action in a line, as the operator reads it in an approval or a report."""
    kind = action.get("type")
    if kind == "send_email":
        return f"email {action['to']}: “{action['subject']}”"
    if kind == "refund":
        return f"refund {money(action['amount_cents'] / 100)} to {action['customer']} (charge {action['charge_key']})"
    if kind == "charge":
        return f"charge {action['customer']} {money(action['amount_cents'] / 100)}"
    if kind in ("pause_access", "resume_access"):
        return f"{kind.split('_')[0]} {action['customer']}'s access"
    if kind == "provision_account":
        return f"provision an account for {action['name']} <{action['email']}>"
    if kind == "post_content":
        return f"{action['channel']} post “{action['title']}”"
    if kind == "categorise":
        return f"transaction {action['transaction_id']} → {action['category']}"
    return str(kind)


POST_HANDED_OVER = "handed to you to publish"


def action_outcome(result: BaseModel) -> str:
    """What a connector's result means for the operator, in a few words after the action's line."""
    match result:
        case SentEmail(to=to, duplicate=duplicate):
            return f"sent to {to}" + (" (already sent)" if duplicate else "")
        case PaymentReceipt(amount_cents=cents, duplicate=duplicate):
            return f"{'already charged' if duplicate else 'charged'} {money(cents / 100)}"
        case RefundReceipt(amount_cents=cents, duplicate=duplicate):
            return f"{'already refunded' if duplicate else 'refunded'} {money(cents / 100)}"
        case AccessChanged(access=access, duplicate=duplicate):
            return f"access {'already ' if duplicate else ''}{access}"
        case Provisioned(duplicate=duplicate):
            return "account already provisioned" if duplicate else "account provisioned"
        case Categorised(changed=changed, duplicate=duplicate):
            return "categorised" if changed and not duplicate else "already categorised"
    raise TypeError(f"no words for a {type(result).__name__}")


def proposal_request(*, title: str, actions: list[dict], rationale: str, intent: Intent,
                     refused: list[str]) -> ApprovalRequest:
    count = len(actions)
    facts = [Fact(label=f"{i}.", value=action_line(a)) for i, a in enumerate(actions, start=1)]
    if refused:
        facts.append(Fact(label="Left out", value="; ".join(refused)))
    preview = "\n\n".join(a["body"] for a in actions if a.get("body"))[:1500]
    return ApprovalRequest(
        what=f"{title}: {count} action{'s' if count != 1 else ''} need your approval",
        why=f"Intent #{intent.id} asks: “{intent.request}”. {rationale}",
        facts=facts,
        preview=preview,
    )


# A reply to "Which …?" per parameter, worded so that even the offline tier's rules read it (“about …”).
ANSWER_EXAMPLES = {"customer": "ana@example.com", "recipient": "ana@example.com", "period": "March",
                   "topic": "about pricing for solo founders"}


def _within(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "the hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def params_missing(intent: Intent, title: str, missing: list[str], *, reply_within: timedelta,
                   detail: str = "") -> Message:
    """A required parameter the request did not give: ask for it, do nothing until then; a reply answers it."""
    names = " and ".join(name.replace("_", " ") for name in missing)
    example = ANSWER_EXAMPLES.get(missing[0]) if len(missing) == 1 else None
    return Message(
        kind=MessageKind.NOTICE,
        title=f"Which {names}? I need it for the {title} and won't guess.",
        text=(f"{detail + ' ' if detail else ''}Nothing was done for “{intent.request[:120]}”. "
              f"Just reply with the {names}{f' (e.g. “{example}”)' if example else ''} within {_within(reply_within)} "
              f"and I'll carry on; after that, ask again in full."),
    )


def answer_taken(question: Intent, missing: list[str], intent: Intent, run: Run, workflow_title: str) -> Message:
    """The reply to an answer: which question it answered, and the request it completed."""
    names = " and ".join(name.replace("_", " ") for name in missing) or "missing detail"
    message = accepted(intent, run, workflow_title)
    message.title = (f"Taken as the {names} for intent #{question.id}: "
                     f"intent #{intent.id} → run #{run.id} ({workflow_title}).")
    message.text = f"Not what you meant? Say “cancel {run.id}” and ask in full."
    return message


def post_ready(channel: str, title: str, body: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Ready to publish ({channel}): {title}",
                   sections=[Section(text=body)])


def remembered(memory_id: int, subject: str, outcome: str) -> Message:
    how = {"inserted": "Remembered", "merged": "Already knew that; merged", "versioned": "Updated"}[outcome]
    return Message(kind=MessageKind.NOTICE, title=f"{how}: memory #{memory_id} about {subject}.")


def recalled(question: str, found: list[tuple[int, str, str, str, float]]) -> Message:
    if not found:
        return Message(kind=MessageKind.NOTICE, title=f"I remember nothing about “{question[:80]}”.")
    return Message(
        kind=MessageKind.NOTICE,
        title=f"What I remember about “{question[:80]}”",
        sections=[Section(facts=[
            Fact(label=f"#{memory_id} {subject}", value=f"{text} (from {source or 'unknown'})")
            for memory_id, subject, text, source, _score in found
        ])],
    )


def forget_request(memory_id: int, subject: str, preview: str) -> tuple[str, str]:
    return (f"Forget memory #{memory_id} about {subject}",
            f"The text is redacted and its embedding dropped; a tombstone and an audit event remain. "
            f"It reads: “{preview[:200]}”")


def forgotten(memory_id: int, versions: int) -> Message:
    return Message(kind=MessageKind.NOTICE,
                   title=f"Forgotten: memory #{memory_id} ({versions} version{'s' if versions != 1 else ''}).")


def action_chain(key: str, lines: list[tuple[str, str]]) -> Message:
    return Message(
        kind=MessageKind.EXPLANATION,
        title=f"Why this happened: {key}",
        sections=[Section(facts=[Fact(label=label, value=value) for label, value in lines])],
    )


# -- replay: a run rebuilt from its audit events, checked against the tables -------------------------

REPLAY_AGREES = "replay agrees with the tables"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def disagreement(d: Disagreement) -> str:
    if d.table == "no row":
        return "the log has it, the table has no row"
    if d.log == "no event":
        return "the table has it, the log never mentions it"
    return f"the table says {d.table}, the log says {d.log}"


def replay_verdict(report: ReplayReport, *, timeline_limit: int | None = None) -> Message:
    """What replaying a run found: the verdict first, then what differs, the chain, the rebuilt state, the timeline.

    `timeline_limit` keeps the latest events only (a chat reply); None shows every event (`opsos replay`).
    """
    replay, chain = report.replay, report.chain
    problems = []
    if report.disagreements:
        problems.append(f"{_plural(len(report.disagreements), 'disagreement')} with the tables")
    if replay.flags:
        problems.append(f"{_plural(len(replay.flags), 'event')} the replay could not apply")
    if not report.chain_holds:
        problems.append("the audit chain is broken")
    verdict = REPLAY_AGREES if report.agrees else ", ".join(problems)

    state = replay.state.value if replay.state else "never created"
    text = f"By its audit events run #{replay.run_id} is {state}"
    if replay.paused_from:
        text += f" (paused from {replay.paused_from.value})"
    if replay.reason:
        text += f": {replay.reason}"
    text += (f". {_plural(len(replay.timeline), 'event')}, {_plural(replay.tokens, 'token')}, "
             f"${replay.cost_usd:.4f} on models.")

    if chain.ok:
        chain_text = f"Intact: {_plural(chain.checked, 'event')} verified."
    elif report.chain_holds:
        chain_text = (f"Intact through this run's events; broken later, at event {chain.first_broken_id}: "
                      f"{chain.problem}. Run `opsos audit verify`.")
    else:
        chain_text = (f"BROKEN at event {chain.first_broken_id}: {chain.problem}. "
                      f"This replay rests on events the chain no longer vouches for.")

    sections = []
    if report.disagreements:
        sections.append(Section(title="Where the tables disagree with the log", facts=[
            Fact(label=f"{d.subject} {d.field}", value=disagreement(d)) for d in report.disagreements]))
    if replay.flags:
        sections.append(Section(title="Events the replay could not apply", facts=[
            Fact(label=f"event {f.event_id} {f.kind}", value=f.problem) for f in replay.flags]))
    sections.append(Section(title="Audit chain", text=chain_text))
    rebuilt = [Fact(label=f"step {s.name}", value=f"{s.state.value}, {_plural(s.attempts, 'attempt')}")
               for s in replay.steps]
    rebuilt += [Fact(label=f"approval {a.id}", value=a.state.value + (
        f" by {a.decided_by} via {a.decided_via}" if a.decided_by else "") + (f" ({a.step})" if a.step else ""))
        for a in replay.approvals]
    rebuilt += [Fact(label=f"agent call {c.id}", value=f"{c.step}: {c.tier} tier, {c.model}, "
                                                       f"{_plural(c.tokens, 'token')}, ${c.cost_usd:.4f}")
                for c in replay.calls]
    if rebuilt:
        sections.append(Section(title="Rebuilt from the log", facts=rebuilt))

    moments = replay.timeline
    lines = []
    if timeline_limit is not None and len(moments) > timeline_limit:
        lines.append(f"… {_plural(len(moments) - timeline_limit, 'earlier event')}: "
                     f"`opsos replay {replay.run_id}` prints them all")
        moments = moments[-timeline_limit:]
    # Columns padded to the widest shown, so a terminal reads the state after each event straight down.
    actor_width = max((len(m.actor) for m in moments), default=0)
    kind_width = max((len(m.kind) for m in moments), default=0)
    state_width = max((len(m.state or "—") for m in moments), default=0)
    for m in moments:
        line = (f"{m.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {m.actor:<{actor_width}}  {m.kind:<{kind_width}}  "
                f"→ {m.state or '—':<{state_width}}  {m.detail}")
        lines.append(line.rstrip())
    sections.append(Section(title="Timeline (UTC): time, actor, event, run state after, detail",
                            text="\n".join(lines) or "no events"))
    return Message(
        kind=MessageKind.REPORT if report.agrees else MessageKind.ALERT,
        title=f"Replay of run #{replay.run_id}: {verdict}",
        text=text,
        sections=sections,
        run_id=replay.run_id,
    )
