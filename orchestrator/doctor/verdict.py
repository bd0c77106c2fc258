"""A check's result: which part, whether it works, the line the operator reads and how to fix it."""
from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from orchestrator.words import doctor as said


class Outcome(StrEnum):
    OK = "ok"
    # Works, but not as it should be run (a managed database whose role could rewrite the audit log, a skewed clock).
    WARNING = "warning"
    FAILED = "failed"
    # The part is not configured, or not asked for (the model tiers without --models).
    SKIPPED = "skipped"


class Verdict(BaseModel):
    part: str
    outcome: Outcome
    line: str
    fix: str = ""

    def render(self) -> str:
        return said.verdict_line(said.MARKS[self.outcome.value], self.part, self.line, self.fix)


def ok(part: str, line: str) -> Verdict:
    return Verdict(part=part, outcome=Outcome.OK, line=line)


def warning(part: str, line: str, fix: str) -> Verdict:
    return Verdict(part=part, outcome=Outcome.WARNING, line=line, fix=fix)


def failed(part: str, line: str, fix: str) -> Verdict:
    return Verdict(part=part, outcome=Outcome.FAILED, line=line, fix=fix)


def skipped(part: str, line: str) -> Verdict:
    return Verdict(part=part, outcome=Outcome.SKIPPED, line=line)


def passed(verdicts: list[Verdict]) -> bool:
    """True when nothing configured failed: warnings and parts not configured do not count against it."""
    return all(v.outcome is not Outcome.FAILED for v in verdicts)


def summary(verdicts: list[Verdict]) -> str:
    return said.summary(sum(v.outcome is Outcome.FAILED for v in verdicts),
                        sum(v.outcome is Outcome.WARNING for v in verdicts))
