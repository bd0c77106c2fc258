"""`opsos demo` on a fresh data folder: exits 0 and its transcript shows every stage of the slice."""
import os
import subprocess
import sys


def test_opsos_demo_exits_zero_and_shows_each_stage(test_root):
    tmp_path = test_root / "demo-run"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OPSOS_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for stage in [
        "you   ▸ grow MRR: launch a win-back campaign to lapsed subscribers",
        "On it: intent #1 → run #1",
        "Approval needed for run #1: Email 5 lapsed subscribers",
        "[approve]   [reject]   [why]",
        "Why I ask:",
        "Approved by console:operator via console",
        "Payment failed: Eve Lindqvist",
        "Compensating step: paused Eve Lindqvist's access",
        "Run #1 succeeded: win-back campaign",
        "Where each action came from",
        "audit chain: intact",
        "emails: 5 .eml files",
        "Eve Lindqvist's access: paused",
    ]:
        assert stage in out, f"missing from the transcript: {stage}"
    assert len(list((tmp_path / "demo" / "outbox-email").glob("*.eml"))) == 5
