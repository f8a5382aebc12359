"""The web process starts without importing torch (it loads the model lazily, on the first query upload)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.images import OFFLINE_WEIGHTS

REPO = Path(__file__).resolve().parents[2]


def test_web_start_up_does_not_import_torch():
    """Without the warm-up (IMGSIM_WARM_MODEL=0), nothing imports torch before a query upload does."""
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'imgsim_site.settings'; "
        "from imgsim_site.wsgi import application; "
        "from django.urls import resolve; import imgsim_site.urls; "
        "from django.contrib import admin; admin.autodiscover(); "
        "print('torch' in sys.modules, 'torchvision' in sys.modules)"
    )
    env = {**os.environ, "IMGSIM_WARM_MODEL": "0"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_web_workers_load_the_model_in_a_background_thread_at_start(tmp_path):
    """The WSGI module returns at once (torch only in the warm-up thread), and the model is loaded and has run
    once when the thread ends, so the first query upload does not wait for it."""
    code = (
        "import os, sys, threading; os.environ['DJANGO_SETTINGS_MODULE'] = 'imgsim_site.settings'; "
        "from imgsim_site.wsgi import application; "
        "from search import warm_up; "
        "print(warm_up._thread is not None and warm_up._thread.daemon, warm_up._thread.name); "
        "warm_up._thread.join(300); "
        "from search import embedding; "
        "print('torch' in sys.modules, [key[0] for key in embedding._embedders])"
    )
    env = {
        **os.environ,
        "IMGSIM_WARM_MODEL": "1",
        "IMGSIM_MODEL": "mobilenet_v2",
        "IMGSIM_WEIGHTS": str(OFFLINE_WEIGHTS),
        "IMGSIM_VAR_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, env=env, timeout=600
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "True imgsim-warm-up"
    assert lines[-1] == "True ['mobilenet_v2']"
    assert "warm-up: the search index could not be loaded" in result.stderr  # no database here: logged, no crash
