.PHONY: setup test test-fast test-slow-private test-slow-host lint demo

# Idle OpenMP threads sleep instead of spinning: jobs and tests run more busy processes than the
# machine has cores (engines, learner ranks, pytest-xdist workers), and a spinning thread steals
# the core another process needs (a learner rank's setup beside a world build under -n 2: 95 s
# spinning, 0.7 s passive). Every process started from here inherits it, Ray's workers too.
export OMP_WAIT_POLICY ?= PASSIVE

setup:
	bash scripts/setup.sh

# The fast tier on both cores (pure code: no Ray, so its tests share nothing); then the slow
# tier (one session Ray per process, engines and learner groups shared by fixtures) as two
# pytest processes side by side: one computes while the other waits (on Ray, a process start, a
# timeout). The cluster tests need the host's network (README's head node takes Ray's default
# ports), and the device scripts start Rays of their own beside it; the rest run in a private
# network namespace of their own (mtg_ray.netns), where their Rays cannot meet those ports
# (Ray's dashboard agent always takes 52365); the private-network test's run makes its own
# namespace inside that one. The study job's test runs in the host process too, to even out the
# two: its Ray starts after the device scripts' have ended and before the cluster tests replace
# it, as in one process. Where no namespace can be made: one process, tests/cluster last
# (tests/conftest.py orders them).
SLOW_HOST := tests/cluster tests/test_device_scripts.py tests/jobs/test_study_job.py
PYTEST_SLOW := .venv/bin/python -m pytest -q -m slow --durations=10

test: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" -n 2 --durations=10 tests
	if .venv/bin/python -m mtg_ray.netns --available; then \
		$(MAKE) --no-print-directory -j2 --output-sync=target test-slow-private test-slow-host; \
	else \
		$(PYTEST_SLOW) tests; \
	fi

test-slow-private:
	.venv/bin/python -m mtg_ray.netns $(PYTEST_SLOW) tests $(SLOW_HOST:%=--ignore=%)

test-slow-host:
	$(PYTEST_SLOW) $(SLOW_HOST)

# The fast tier: pure code and the drivers over in-process stand-ins (no Ray, vLLM, DeepSpeed).
test-fast: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" tests

lint: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .

demo: setup
	.venv/bin/python scripts/demo.py
