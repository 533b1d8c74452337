.PHONY: setup test test-fast lint demo

setup:
	bash scripts/setup.sh

# The fast tier on both cores (pure code: no Ray, so its tests share nothing). Then the slow
# tier as two processes at once, which share nothing either: tests/actors/ and the rest (one
# local Ray, engines shared by fixtures) and tests/cluster/ (its own simulated cluster, then a
# head node); both spend much of their time waiting on engines and jobs. The cluster part's
# output follows the other's.
test: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" -n 2 tests
	@log=$$(mktemp); \
	.venv/bin/python -m pytest -q -m slow -p no:cacheprovider tests/cluster > $$log 2>&1 & \
	cluster=$$!; \
	.venv/bin/python -m pytest -q -m slow tests --ignore=tests/cluster; status=$$?; \
	wait $$cluster || status=1; \
	echo "--- tests/cluster:"; cat $$log; rm -f $$log; exit $$status

# The fast tier: pure code and the drivers over in-process stand-ins (no Ray, vLLM, DeepSpeed).
test-fast: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" tests

lint: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .

demo: setup
	.venv/bin/python scripts/demo.py
