#!/usr/bin/env bash
# Runs the whole test suite: lint and the import layering contract, then pytest on SQLite and on PostgreSQL.
# IMGSIM_TEST_DATABASES=sqlite (or postgres) runs one of the two; TEST_DATABASE_URL names the PostgreSQL
# server (default: postgres://postgres@127.0.0.1:5432/test, trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
unset DATABASE_URL IMGSIM_REDIS_URL

ruff check .
ruff format --check .
lint-imports  # the layering contract in pyproject.toml: the pipeline runs one way

databases="${IMGSIM_TEST_DATABASES:-sqlite postgres}"
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if [[ " $databases " == *" postgres "* ]]; then
  if ! python scripts/wait_for_postgres.py "$pg_url" 2; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      echo "PostgreSQL is not answering; starting it"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    python scripts/wait_for_postgres.py "$pg_url" 30 || {
      echo "PostgreSQL at $pg_url is not reachable. Start it, set TEST_DATABASE_URL, or run IMGSIM_TEST_DATABASES=sqlite $0" >&2
      exit 1
    }
  fi
fi

# The browser tests (tests/browser, marker "browser") drive Debian's chromium through Playwright; no
# browser download is possible on these machines, so the distribution's package is installed when missing.
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "The browser tests need Debian's chromium at $CHROMIUM and it could not be installed (not root, or no apt-get)." >&2
    echo "Install it with: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

status=0
for db in $databases; do
  echo "=== tests on $db ==="
  if [ "$db" = postgres ]; then
    DATABASE_URL="$pg_url" python -m pytest "$@" || status=$?
  else
    python -m pytest "$@" || status=$?
  fi
done
exit $status
