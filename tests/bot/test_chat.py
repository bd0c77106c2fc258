"""`opsos chat`: the console front end answers typed lines on the embedded stack and queues only what it understands."""
import os
import subprocess
import sys


def test_chat_answers_status_and_refuses_what_it_does_not_understand(test_root):
    data = test_root / "chat-run"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OPSOS_DATA_DIR"] = str(data)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input="book me a flight\nstatus\nhelp\n",
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "I don't know how to do that yet, so nothing was queued." in out
    assert "── Live runs" in out and "none" in out
    assert "Here is what I can do" in out
