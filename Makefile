.PHONY: setup test test-fast lint demo

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
