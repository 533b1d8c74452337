.PHONY: setup test test-fast lint demo

# Idle OpenMP threads sleep instead of spinning: jobs and tests run more busy processes than the
# machine has cores (engines, learner ranks, pytest-xdist workers), and a spinning thread steals
# the core another process needs (a learner rank's setup beside a world build under -n 2: 95 s
# spinning, 0.7 s passive). Every process started from here inherits it, Ray's workers too.
export OMP_WAIT_POLICY ?= PASSIVE

setup:
	bash scripts/setup.sh

# The fast tier on both cores (pure code: no Ray, so its tests share nothing); then the slow
# tier in one process (one session Ray, engines shared by fixtures; tests/cluster/ last). The
# slow tier cannot run beside tests/cluster: README's head node takes Ray's default ports
# (its dashboard agent's 52365 collides with any other Ray on the machine).
test: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" -n 2 --durations=10 tests
	.venv/bin/python -m pytest -q -m slow --durations=10 tests

# The fast tier: pure code and the drivers over in-process stand-ins (no Ray, vLLM, DeepSpeed).
test-fast: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" tests

lint: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .

demo: setup
	.venv/bin/python scripts/demo.py
