"""The web process starts without importing torch (it loads the model lazily, on the first query upload)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_web_start_up_does_not_import_torch():
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'imgsim_site.settings'; "
        "from imgsim_site.wsgi import application; "
        "from django.urls import resolve; import imgsim_site.urls; "
        "from django.contrib import admin; admin.autodiscover(); "
        "print('torch' in sys.modules, 'torchvision' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"
