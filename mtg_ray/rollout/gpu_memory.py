"""Waiting for a GPU's memory before a vLLM engine starts on it.

vLLM refuses to start when the GPU has less free memory than `gpu_memory_utilization` of its
total. An engine restarted after a failure often lands on the GPU its killed predecessor held,
whose memory the driver releases only some time after the process is told to die; the new
engine waits for it instead of failing a check that a second later would pass."""

import time
from collections.abc import Callable


def wait_for_free_memory(
    share: float, timeout_s: float, mem_get_info: Callable[[], tuple[int, int]],
    poll_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:  # fmt: skip
    """Block until `mem_get_info()` (free, total bytes: `torch.cuda.mem_get_info`) shows at
    least `share` of the total free, for at most `timeout_s`. Returns the seconds waited;
    raises RuntimeError naming what is free, what is needed and the keys to change."""
    start = clock()
    while True:
        free, total = mem_get_info()
        needed = share * total
        if free >= needed:
            return clock() - start
        if clock() - start >= timeout_s:
            raise RuntimeError(
                f"GPU has {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB after "
                f"{timeout_s:.0f} s; vLLM needs rollout.gpu_memory_utilization={share} of it "
                f"({needed / 2**30:.1f} GiB): another process still holds the rest (a killed "
                "engine not yet gone, or a learner rank on the same GPU); raise "
                "rollout.start_memory_timeout_s or lower rollout.gpu_memory_utilization"
            )
        sleep(poll_s)
