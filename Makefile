.PHONY: setup test test-fast lint demo

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q tests

# The fast tier: pure code and the drivers over in-process stand-ins (no Ray, vLLM, DeepSpeed).
test-fast: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q -m "not slow" tests

lint: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .

demo: setup
	.venv/bin/python scripts/demo.py
