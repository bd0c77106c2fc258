"""Replay in words: the verdict, where the tables disagree with the log, the timeline."""
from __future__ import annotations

from datetime import UTC

from orchestrator.messages import Fact, Message, MessageKind, Section
from orchestrator.replay.model import Disagreement, ReplayReport
from orchestrator.words.audit import chain_verdict
from orchestrator.words.common import plural

REPLAY_AGREES = "replay agrees with the tables"


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
        problems.append(f"{plural(len(report.disagreements), 'disagreement')} with the tables")
    if replay.flags:
        problems.append(f"{plural(len(replay.flags), 'event')} the replay could not apply")
    if not report.chain_holds:
        problems.append("the audit chain is broken")
    verdict = REPLAY_AGREES if report.agrees else ", ".join(problems)

    state = replay.state.value if replay.state else "never created"
    text = f"By its audit events run #{replay.run_id} is {state}"
    if replay.paused_from:
        text += f" (paused from {replay.paused_from.value})"
    if replay.reason:
        text += f": {replay.reason}"
    text += (f". {plural(len(replay.timeline), 'event')}, {plural(replay.tokens, 'token')}, "
             f"${replay.cost_usd:.4f} on models.")

    if chain.ok:
        chain_text = chain_verdict(chain)
    elif report.chain_holds:
        chain_text = (f"Intact through this run's events; broken later, at event {chain.first_broken_id}: "
                      f"{chain.problem}. Run `opsos audit verify --full`.")
    else:
        chain_text = f"{chain_verdict(chain)} This replay rests on events the chain no longer vouches for."

    sections = []
    if report.disagreements:
        sections.append(Section(title="Where the tables disagree with the log", facts=[
            Fact(label=f"{d.subject} {d.field}", value=disagreement(d)) for d in report.disagreements]))
    if replay.flags:
        sections.append(Section(title="Events the replay could not apply", facts=[
            Fact(label=f"event {f.event_id} {f.kind}", value=f.problem) for f in replay.flags]))
    sections.append(Section(title="Audit chain", text=chain_text))
    rebuilt = [Fact(label=f"step {s.name}", value=f"{s.state.value}, {plural(s.attempts, 'attempt')}")
               for s in replay.steps]
    rebuilt += [Fact(label=f"approval {a.id}", value=a.state.value + (
        f" by {a.decided_by} via {a.decided_via}" if a.decided_by else "") + (f" ({a.step})" if a.step else ""))
        for a in replay.approvals]
    rebuilt += [Fact(label=f"agent call {c.id}", value=f"{c.step}: {c.tier} tier, {c.model}, "
                                                       f"{plural(c.tokens, 'token')}, ${c.cost_usd:.4f}")
                for c in replay.calls]
    if rebuilt:
        sections.append(Section(title="Rebuilt from the log", facts=rebuilt))

    moments = replay.timeline
    lines = []
    if timeline_limit is not None and len(moments) > timeline_limit:
        lines.append(f"… {plural(len(moments) - timeline_limit, 'earlier event')}: "
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
