"""README's cluster commands, run verbatim on this machine: a head node with token
authentication, the smoke job submitted to it; then `ray job stop` on a second job leaves no
engine or learner process behind.

The commands are read from README.md (between its cluster-commands markers), so the test and
README cannot drift apart. They use Ray's default ports (6379, 8265); the head and everything it
starts run in a session of their own, which the test ends (not `ray stop`, which would end every
Ray on the machine).
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mtg_ray.paths import REPO_ROOT

from .conftest import actor_processes, eventually

pytestmark = pytest.mark.slow

BEGIN = "<!-- cluster commands: tests/cluster/test_readme.py runs the block below verbatim -->"
END = "<!-- end of cluster commands -->"
DASHBOARD = "http://127.0.0.1:8265"


def readme_commands() -> str:
    """The indented code block between README's markers, as a shell script."""
    text = (REPO_ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "README.md lost its cluster-commands markers"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    lines = [line[4:] for line in block.splitlines() if line.startswith("    ")]
    assert lines and lines[0].startswith("export RAY_AUTH_MODE=token"), block
    return "\n".join(lines) + "\n"


def session_processes(sid: int) -> list[psutil.Process]:
    """Processes of session `sid` and everything they started (Ray's daemons keep the session
    of the shell that ran `ray start`; a job's driver may start one of its own)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                found[proc.pid] = proc
                found.update((c.pid, c) for c in proc.children(recursive=True))
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return list(found.values())


def actors(sid: int, kind: str) -> list[psutil.Process]:
    """Session `sid`'s Ray actor processes of class `kind`."""
    return actor_processes(session_processes(sid), kind)


def end_session(sid: int) -> None:
    procs = session_processes(sid)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


@pytest.fixture
def shell_env() -> Iterator[dict[str, str]]:
    """The environment activated (README: "with the environment activated"), no Ray token yet."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", VIRTUAL_ENV=str(Path(bin_dir).parent))
    yield env


def test_readme_cluster_commands_work_as_written_and_job_stop_cleans_up(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    script = readme_commands()
    stop_id = f"mtg-stop-{os.getpid()}"
    # The README lines, then (same shell, same token) a second job that is stopped midway: an
    # online run, which has its engine and its learner rank up within seconds. Its own absolute
    # output_dir: jobs of the same code share one unpacked working folder.
    token_file = tmp_path / "token"
    script += f'echo "$RAY_AUTH_TOKEN" > {token_file}\n'
    script += (
        f"ray job submit --address {DASHBOARD} --submission-id {stop_id} --no-wait "
        "--working-dir . -- python scripts/run.py online --config online resources=cluster "
        f"rollout.num_engines=1 learner.num_workers=1 output_dir={tmp_path / 'stopped'}\n"
    )
    log_path = tmp_path / "shell.log"
    with open(log_path, "w") as log:
        shell = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, env=shell_env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        sid = shell.pid
        try:
            assert shell.wait(timeout=900) == 0, log_path.read_text()[-4000:]
            output = log_path.read_text()
            assert "succeeded" in output and "demo: base=" in output, output[-4000:]

            # The second job: wait for its engine and learner rank, stop it, see them go.
            started = eventually(lambda: actors(sid, "LearnerActor"), timeout=180)
            assert started and actors(sid, "RolloutActor"), log_path.read_text()[-3000:]
            token = token_file.read_text().strip()
            stop = subprocess.run(
                ["ray", "job", "stop", "--address", DASHBOARD, stop_id],
                env={**shell_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert stop.returncode == 0, stop.stdout + stop.stderr
            gone = eventually(
                lambda: not actors(sid, "RolloutActor") and not actors(sid, "LearnerActor"), 60
            )
            assert gone, [p.cmdline() for p in actors(sid, "")]
        finally:
            end_session(sid)
