# The two set-up commands: `make run` starts the product, `make test` runs the tests.
.PHONY: run test quick lint format bench-ingest bench-search

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

# The check for a change: lint, the layering contract, and the tests that build no network and drive no
# browser (markers ml and browser), on SQLite. `make test` stays the full run.
quick:
	IMGSIM_TEST_DATABASES=sqlite bash scripts/test.sh -m "not ml and not browser" -p no:cacheprovider

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench-ingest:
	.venv/bin/python bench/ingest.py

bench-search:
	.venv/bin/python bench/search.py
