.PHONY: setup test lint demo

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -q tests

lint: setup
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .

demo: setup
	.venv/bin/python scripts/demo.py
