"""A hard per-check timeout: symbolic checks run in a worker process that is killed when late.

One long-lived worker per calling process (recreated after a fork), started with
`python -m mtg_ray.grading._worker` rather than multiprocessing, so no caller's `__main__` is
re-imported. Thread-safe; a check that overruns its deadline returns False, the worker is killed
and a fresh one starts at once, so the next call does not pay for the restart.
"""

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

STARTUP_TIMEOUT = 120.0  # imports (sympy, antlr) on a loaded 2-core machine


class SandboxWorker:
    """One worker subprocess and the pipes to it."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtg_ray.grading._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.ready = False
        self._buffer = b""

    def _readline(self, timeout: float) -> str | None:
        """The next line, or None on deadline or EOF. Reads the raw fd: a buffered reader could
        hold lines that `select` no longer sees."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode().strip()

    def wait_ready(self) -> bool:
        if not self.ready:
            self.ready = self._readline(STARTUP_TIMEOUT) == "ready"
        return self.ready

    def check(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool | None]:
        """Verdicts in order; None from the first pair that missed its deadline on."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps([list(p) for p in pairs]) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # the worker died: every pair is undecided
            return [None] * len(pairs)
        verdicts: list[bool | None] = []
        for _ in pairs:
            line = self._readline(timeout)
            if line not in ("0", "1"):
                break
            verdicts.append(line == "1")
        return verdicts + [None] * (len(pairs) - len(verdicts))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Sandbox:
    """Runs symbolic checks in a worker with a hard deadline per pair."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: SandboxWorker | None = None
        self._pid = os.getpid()

    def _live_worker(self) -> SandboxWorker:
        if self._worker is None or self._worker.proc.poll() is not None:
            self._worker = SandboxWorker()
        if not self._worker.wait_ready():
            self._restart()
            raise RuntimeError("grading sandbox worker failed to start")
        return self._worker

    def _restart(self) -> None:
        if self._worker is not None:
            self._worker.kill()
        self._worker = SandboxWorker()  # starts importing now, ready by the next call

    def check(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool]:
        """Symbolic verdict per pair; a pair that overruns `timeout` seconds is False."""
        if self._pid != os.getpid():  # forked: the parent's worker and lock are not ours
            self._lock, self._worker, self._pid = threading.Lock(), None, os.getpid()
        results: list[bool] = []
        with self._lock:
            todo = list(pairs)
            while todo:
                verdicts = self._live_worker().check(todo, timeout)
                done = [v for v in verdicts if v is not None]
                results.extend(done)
                if len(done) < len(todo):
                    results.append(False)  # the pair that hung or crashed the worker
                    self._restart()
                todo = todo[len(done) + 1 :]
        return results

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
                self._worker = None


_SANDBOX = Sandbox()
atexit.register(_SANDBOX.close)


def symbolic_check(pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool]:
    """Module-level entry: this process's shared sandbox."""
    return _SANDBOX.check(pairs, timeout)
