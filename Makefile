# The two set-up commands: `make run` starts the product, `make test` runs the tests.
.PHONY: run test lint format bench-ingest bench-search

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench-ingest:
	.venv/bin/python bench/ingest.py

bench-search:
	.venv/bin/python bench/search.py
