"""The first search after a web worker starts, with and without the background warm-up.

Run from the repository root (about a minute; needs ../shared/models and ../shared/data):

    .venv/bin/python bench/first_search.py

Sets up a SQLite library of 2,000 images (synthetic 1280-d vectors for the offline MobileNet-V2 weights,
ResNet-18's cannot be downloaded here) with its index, then starts fresh processes the way a gunicorn
worker starts (importing imgsim_site.wsgi) and times POST /api/search/ with a real photo through DRF's
test client: the first request and the median of the next ones (warm), for IMGSIM_WARM_MODEL=0, and
for IMGSIM_WARM_MODEL=1 both with the first request arriving once the warm-up is done and arriving at
once (it then waits for the warm-up's model load instead of starting its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet_features.pth"
PHOTO = next(iter(sorted((SHARED / "data" / "distractors-dev" / "train").glob("*.jpg"))), None)

SETUP = """
import numpy as np, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from gallery.models import Image
from search.services.index_lifecycle import index_rebuild
get_user_model().objects.create_user(username="bench", password="x")
rng = np.random.default_rng(0)
vectors = rng.standard_normal((2000, 1280)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
Image.objects.bulk_create(
    Image(sha256=f"{n:064x}", width=640, height=480, format="JPEG", file_size=1, file=f"originals/{n}.jpg",
          status="indexed", embedding=vectors[n].tobytes(), embedding_model="mobilenet_v2")
    for n in range(2000)
)
index_rebuild()
"""

WORKER = """
import json, sys, time
started = time.perf_counter()
from imgsim_site.wsgi import application  # what a gunicorn worker does at start
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from search import warm_up
warm_seconds = None
if {wait} and warm_up._thread is not None:
    warm_up._thread.join()
    warm_seconds = time.perf_counter() - started
client = APIClient()
client.force_authenticate(get_user_model().objects.get(username="bench"))
photo = open({photo!r}, "rb").read()
times = []
for n in range(6):
    begin = time.perf_counter()
    response = client.post("/api/search/", {{"file": __import__("io").BytesIO(photo), "k": 10}}, format="multipart")
    assert response.status_code == 200, response.content[:300]
    times.append((time.perf_counter() - begin) * 1000)
print(json.dumps({{"first_ms": times[0], "warm_ms": sorted(times[1:])[2], "warm_up_s": warm_seconds}}))
"""


def main() -> None:
    if PHOTO is None or not WEIGHTS.exists():
        raise SystemExit(f"needs {WEIGHTS} and photos in {SHARED / 'data' / 'distractors-dev'}")
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-first-search-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
        "IMGSIM_VAR_DIR": str(workdir),
        "IMGSIM_MODEL": "mobilenet_v2",
        "IMGSIM_WEIGHTS": str(WEIGHTS),
        "IMGSIM_SEARCH_RATE": "100000/hour",
        "IMGSIM_TASKS_SYNC": "1",
    }
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env={**env, "IMGSIM_WARM_MODEL": "0"}, check=True)
    print("== first search after a worker starts (POST /api/search/, 2,000 images, MobileNet-V2, SQLite)")
    for label, warm, wait in (
        ("IMGSIM_WARM_MODEL=0 (before)", "0", False),
        ("IMGSIM_WARM_MODEL=1, first request after the warm-up", "1", True),
        ("IMGSIM_WARM_MODEL=1, first request at once", "1", False),
    ):
        result = subprocess.run(
            [sys.executable, "-c", WORKER.format(wait=wait, photo=str(PHOTO))],
            cwd=REPO,
            env={**env, "IMGSIM_WARM_MODEL": warm},
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        extra = f", warm-up took {figures['warm_up_s']:.1f}s after start" if figures["warm_up_s"] else ""
        print(
            f"   {label:<55} first {figures['first_ms']:7.0f} ms, warm {figures['warm_ms']:5.0f} ms, "
            f"first - warm {figures['first_ms'] - figures['warm_ms']:6.0f} ms{extra}"
        )
    print("   goal: the first search within 1 s of a warm one")


if __name__ == "__main__":
    main()
