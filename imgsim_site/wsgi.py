"""WSGI entry point (gunicorn imgsim_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsim_site.settings")
application = get_wsgi_application()
