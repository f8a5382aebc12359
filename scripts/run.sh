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

python manage.py qcluster &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null; wait $WORKER_PID 2>/dev/null' EXIT INT TERM

echo
echo "imgsim is running at http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/, API docs: http://$HOST:$PORT/api/docs/)"
echo "Background worker pid $WORKER_PID. Stop both with Ctrl-C."
echo
gunicorn imgsim_site.wsgi --bind "$HOST:$PORT" --workers "${IMGSIM_WEB_WORKERS:-2}" --threads 4 \
  --timeout 120 --access-logfile - --log-level info
