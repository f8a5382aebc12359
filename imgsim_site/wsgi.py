"""WSGI entry point (gunicorn imgsim_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsim_site.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (settings are configured by the line above)

if settings.IMGSIM_WARM_MODEL:
    from search.warm_up import warm_up_in_background

    warm_up_in_background()  # every web worker: the model and the index load while requests are served
