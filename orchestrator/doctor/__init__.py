"""`opsos doctor`: one harmless call to each configured part, and what is wrong with it in words, with the fix.

`examine` is every part (the model tiers only when asked: they cost money); `start_checks` the cheap ones that
`opsos serve` runs before it listens. One module per part; each check returns `Verdict`s.
"""
from orchestrator.doctor.checkup import examine, start_checks
from orchestrator.doctor.verdict import Outcome, Verdict, passed, summary

__all__ = ["Outcome", "Verdict", "examine", "passed", "start_checks", "summary"]
