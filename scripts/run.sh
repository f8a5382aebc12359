#!/usr/bin/env bash
# Runs imgsim on the embedded default: virtualenv, install, migrate, admin account, then the web server
# and a django-q2 worker side by side until Ctrl-C. Settings come from the environment (.env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

export DJANGO_SETTINGS_MODULE=imgsim_site.settings
HOST="${IMGSIM_HOST:-127.0.0.1}"
PORT="${IMGSIM_PORT:-8000}"

python manage.py migrate --noinput
python manage.py collectstatic --noinput -v 0
python manage.py ensure_admin
python manage.py check_model || true

# The background worker, restarted whenever it exits (a process supervisor does this in production: the
# qcluster watchdog exits with code 3 when the cluster keeps wedging, and a crash is a crash).
run_worker() {
  local child=""
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' INT TERM
  while true; do
    python manage.py qcluster &
    child=$!
    code=0
    wait "$child" || code=$?
    echo "background worker exited (code $code); restarting it in ${IMGSIM_WORKER_RESTART_DELAY:-2} s" >&2
    sleep "${IMGSIM_WORKER_RESTART_DELAY:-2}"
  done
}
run_worker &
WORKER_PID=$!
trap 'kill -TERM $WORKER_PID 2>/dev/null; wait $WORKER_PID 2>/dev/null' EXIT INT TERM

echo
echo "imgsim is running at http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/, API docs: http://$HOST:$PORT/api/docs/)"
echo "Background worker (restarted if it exits): supervisor pid $WORKER_PID. Stop both with Ctrl-C."
echo
gunicorn imgsim_site.wsgi --bind "$HOST:$PORT" --workers "${IMGSIM_WEB_WORKERS:-2}" --threads 4 \
  --timeout 120 --access-logfile - --log-level info
