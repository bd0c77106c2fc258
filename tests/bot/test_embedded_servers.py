"""The embedded PostgreSQL and Redis stop with the last opsos process that uses their data folder, and not before."""
import json
import signal
import subprocess
import sys

import psutil

from tests.bot.embedded import BANNER, env_for, opsos, postgres_pid, redis_pid


def test_a_short_command_on_a_fresh_folder_leaves_no_server_running(data_dir):
    """`opsos audit verify` starts PostgreSQL (and restarts it to size its shared buffers) and Redis; once it
    exits, neither server is left running for its data folder."""
    done = opsos(data_dir, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert postgres_pid(data_dir) is None
    assert redis_pid(data_dir) is None


def test_the_servers_stay_while_another_opsos_process_uses_them_and_stop_when_it_is_terminated(data_dir):
    """`opsos chat` holds the servers; an `opsos audit verify` that starts and ends meanwhile leaves them up
    (same postmaster, same redis-server); SIGTERM to the chat then stops both."""
    chat = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat"], env=env_for(data_dir), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert chat.stdout is not None
        for line in chat.stdout:
            if line.startswith(BANNER):
                break
        postgres, redis = postgres_pid(data_dir), redis_pid(data_dir)
        assert postgres is not None and redis is not None

        done = opsos(data_dir, "audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (postgres_pid(data_dir), redis_pid(data_dir)) == (postgres, redis)

        chat.send_signal(signal.SIGTERM)
        assert chat.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
    assert not psutil.pid_exists(postgres)
    assert not psutil.pid_exists(redis)
    assert postgres_pid(data_dir) is None


def test_a_user_that_died_without_letting_go_does_not_keep_the_server_up(data_dir):
    """A process killed with SIGKILL stays on pgserver's list of the server's users; the next opsos process
    strikes it off, so when that one exits the server stops (before the fix it stayed up for good)."""
    assert opsos(data_dir, "audit", "verify").returncode == 0
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()
    (data_dir / "postgres" / ".handle_pids.json").write_text(json.dumps([gone.pid]))

    done = opsos(data_dir, "audit", "verify")

    assert done.returncode == 0, done.stdout + done.stderr
    assert postgres_pid(data_dir) is None
    assert json.loads((data_dir / "postgres" / ".handle_pids.json").read_text()) == []
