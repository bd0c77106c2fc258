"""Replay: a run's state rebuilt from its audit events alone (`fold`, pure), and every place the tables disagree
with it (`compare`). `opsos replay N`, `replay N` in chat and the run page all read `snapshot`."""
from orchestrator.replay.folding import fold
from orchestrator.replay.model import (
    ApprovalReplay,
    CallReplay,
    Disagreement,
    Flag,
    Moment,
    ReplayReport,
    RunReplay,
    StepReplay,
)
from orchestrator.replay.verdict import SNAPSHOT, check, compare, snapshot

__all__ = ["SNAPSHOT", "ApprovalReplay", "CallReplay", "Disagreement", "Flag", "Moment", "ReplayReport", "RunReplay",
           "StepReplay", "check", "compare", "fold", "snapshot"]
