"""A starting GPU engine waits for its GPU's memory (a fake clock and memory reading)."""

import pytest

from mtg_ray.rollout.gpu_memory import wait_for_free_memory

GIB = 2**30


class Gpu:
    """80 GiB, of which a killed engine's 64 GiB are released at t = `released_at`."""

    def __init__(self, released_at: float) -> None:
        self.now, self.released_at = 0.0, released_at

    def mem_get_info(self) -> tuple[int, int]:
        held = 64 * GIB if self.now < self.released_at else 0
        return 80 * GIB - held - 2 * GIB, 80 * GIB

    def sleep(self, s: float) -> None:
        self.now += s


def test_waits_until_the_killed_engines_memory_is_released() -> None:
    gpu = Gpu(released_at=3.0)
    waited = wait_for_free_memory(
        0.8, 60, gpu.mem_get_info, poll_s=0.5, clock=lambda: gpu.now, sleep=gpu.sleep
    )
    assert waited == 3.0


def test_fails_after_the_timeout_naming_free_needed_and_keys() -> None:
    gpu = Gpu(released_at=1e9)
    with pytest.raises(RuntimeError) as raised:
        wait_for_free_memory(0.8, 10, gpu.mem_get_info, clock=lambda: gpu.now, sleep=gpu.sleep)
    message = str(raised.value)
    assert "14.0 GiB free of 80.0 GiB" in message and "(64.0 GiB)" in message
    assert "rollout.start_memory_timeout_s" in message and gpu.now >= 10


def test_no_wait_when_the_memory_is_free() -> None:
    gpu = Gpu(released_at=0.0)
    assert wait_for_free_memory(0.8, 10, gpu.mem_get_info, clock=lambda: gpu.now) == 0.0
