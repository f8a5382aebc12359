"""k-NN search end to end with real photos (../shared/data) and the offline ImageNet backbone.

Covers the three paths a query can take (exact index for small libraries, the exact "tail" of vectors
newer than the build, HNSW), the rating weight and fallback, self-repair of a damaged index file, and the
web and API surfaces with their errors.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image as PILImage

from gallery.models import Image
from pipeline.services import image_ingest
from search import selectors
from search.library_view import forget_served_indexes, served_index
from search.models import IndexBuild
from search.services.embedding_queue import embedder_get
from search.services.index_lifecycle import RebuildAlreadyRunningError, index_path, index_rebuild
from search.thresholds import thresholds_for
from tests.images import encode, photo_like_image, shared_path

pytestmark = [pytest.mark.django_db, pytest.mark.ml]

GROUPS = ["g00", "g01", "g02", "g03"]
PER_GROUP = 6
DISTRACTORS = 30


def dev_photos() -> list[tuple[Path, str]]:
    """Six variants of each of four photos (crops, rescales, recompressions) and 30 unrelated photos."""
    root = shared_path("data", "neardup-dev")
    by_group: dict[str, list[Path]] = {}
    with (root / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_group.setdefault(row["group_id"], []).append(root / row["file"])
    photos = [(path, group) for group in GROUPS for path in by_group[group][:PER_GROUP]]
    # 135037.jpg (an eagle against a defocused sky) is the one real photo the blur check rejects.
    distractors = [
        path for path in sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg")) if path.stem != "135037"
    ][:DISTRACTORS]
    return photos + [(path, f"distractor-{path.stem}") for path in distractors]


def ingest(committed, photos) -> dict[int, str]:
    """Upload through the pipeline (validation, EXIF, quality) and embed via the task; id -> group."""
    groups: dict[int, str] = {}

    def run() -> None:
        for path, group in photos:
            result = image_ingest(data=path.read_bytes(), original_name=path.name)
            groups[result.image.pk] = group

    committed(run)
    assert Image.objects.filter(pk__in=groups, status=Image.Status.INDEXED).count() == len(groups)
    return groups


def neighbour_groups(groups: dict[int, str], image_id: int, k: int) -> list[str]:
    result = selectors.similar_to_image(image=Image.objects.get(pk=image_id), k=k)
    return [groups[item.image.pk] for item in result.results]


def assert_right_neighbours(groups: dict[int, str]) -> None:
    """Each photo's three nearest neighbours are its own variants (some variants are heavy crops)."""
    for image_id, group in groups.items():
        if group.startswith("distractor"):
            continue
        members = sum(1 for other in groups.values() if other == group) - 1
        want = min(3, members)
        assert neighbour_groups(groups, image_id, want) == [group] * want, f"image {image_id} of {group}"


def all_results(k: int, groups: dict[int, str]) -> dict[int, list[int]]:
    return {
        image_id: [
            item.image.pk for item in selectors.similar_to_image(image=Image.objects.get(pk=image_id), k=k).results
        ]
        for image_id in groups
    }


def test_small_library_is_searched_exactly_with_the_right_neighbours(committed):
    groups = ingest(committed, dev_photos())
    build = IndexBuild.objects.ready().get()
    assert build.kind == "exact"
    assert build.vector_count == len(groups)
    assert_right_neighbours(groups)


def test_new_images_are_searchable_before_the_next_rebuild(committed, settings):
    photos = dev_photos()
    first = ingest(committed, photos[PER_GROUP:])  # everything but g00
    settings.IMGSIM_REBUILD_FRACTION = 10.0  # no automatic rebuild: g00 stays in the tail
    later = ingest(committed, photos[:PER_GROUP])
    build = IndexBuild.objects.ready().get()
    assert build.vector_count == len(first)
    assert not set(later) & set(served_index(model_name="mobilenet_v2")[1].ids.tolist())
    assert_right_neighbours({**first, **later})
    assert selectors.index_status()["pending"] == len(later)


def test_hnsw_results_match_exact_search_in_membership(committed, settings):
    groups = ingest(committed, dev_photos())
    exact = all_results(8, groups)
    settings.IMGSIM_EXACT_SEARCH_BELOW = 0
    settings.IMGSIM_PCA_DIM = 4096  # no PCA: 54 photos are too few to fit 128 components of 1280
    build = index_rebuild()
    assert build.kind == "hnsw"
    forget_served_indexes()
    hnsw = all_results(8, groups)
    assert {key: set(value) for key, value in hnsw.items()} == {key: set(value) for key, value in exact.items()}
    assert_right_neighbours(groups)


def test_pca_hnsw_path_on_a_large_structured_library(settings):
    """6,000 clustered 1280-d vectors: enough rows to fit PCA-128; results close to exact search."""
    rng = np.random.default_rng(7)
    spectrum = (np.arange(1, 1281) ** -0.8).astype(np.float32)
    centres = rng.normal(size=(80, 1280)).astype(np.float32) * spectrum
    vectors = centres[rng.integers(0, 80, 6000)] + 0.35 * rng.normal(size=(6000, 1280)).astype(np.float32) * spectrum
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    Image.objects.bulk_create(
        Image(
            sha256=f"{n:064x}",
            width=100,
            height=100,
            format="JPEG",
            file_size=1,
            file=f"originals/{n}.jpg",
            status=Image.Status.INDEXED,
            embedding=vectors[n].tobytes(),
            embedding_model="mobilenet_v2",
        )
        for n in range(6000)
    )
    settings.IMGSIM_EXACT_SEARCH_BELOW = 1000
    build = index_rebuild()
    assert (build.kind, build.index_dim) == ("hnsw", 128 + 2)
    ids = np.array(Image.objects.order_by("id").values_list("id", flat=True))
    overlaps = []
    for row in rng.choice(6000, 40, replace=False):
        query = vectors[row]
        truth = set(ids[np.argsort(-(vectors @ query))[:10]].tolist())
        found = {item.image.pk for item in selectors.similar_images(vector=query, k=10).results}
        overlaps.append(len(truth & found) / 10)
    assert np.mean(overlaps) >= 0.95


def test_rating_breaks_ties_between_visually_equal_images(committed, settings):
    base = photo_like_image(80, (320, 240))
    ids = {}

    def run() -> None:
        for rating, quality in [(1, 91), (3, 92), (5, 93)]:
            exif = PILImage.Exif()
            exif[0x4746] = rating
            data = encode(base, "JPEG", quality=quality, exif=exif.tobytes())
            ids[rating] = image_ingest(data=data, original_name=f"r{rating}.jpg").image.pk

    committed(run)
    query = Image.objects.get(pk=ids[3]).vector
    for rating, first in [(5, ids[5]), (1, ids[1])]:
        result = selectors.similar_images(vector=query * 0.999, k=3, rating=rating)
        assert result.results[0].image.pk == first, rating
    settings.IMGSIM_RATING_WEIGHT = 0.0
    unweighted = selectors.similar_images(vector=query, k=3, rating=5)
    assert unweighted.results[0].image.pk == ids[3]  # purely visual: the query's own pixels win


def test_rating_fallback_when_nothing_matches(committed, settings):
    photos = dev_photos()[PER_GROUP * len(GROUPS) :][:12]
    groups = ingest(committed, photos)
    for n, image_id in enumerate(groups):
        Image.objects.filter(pk=image_id).update(rating=n % 6)
    settings.IMGSIM_MATCH_THRESHOLD = 0.999  # nothing in an unrelated library reaches it
    query = photo_like_image(81, (320, 240))
    vector = embedder_get().embed_images([query])[0]
    selectors.similar_images(vector=vector, k=4)  # the view applies the logged rating changes (their vectors)
    with CaptureQueriesContext(connection) as queries:
        result = selectors.similar_images(vector=vector, k=4, rating=4)
    # Ids only per rating step, the chosen rows at the end: no stored embedding is read back.
    assert not any('"embedding"' in entry["sql"].split(" FROM ")[0] for entry in queries.captured_queries)
    assert result.matched is False
    assert result.fallback is True
    ratings = [item.image.rating for item in result.results]
    assert ratings[:2] == [4, 4]
    assert set(ratings[2:]) <= {3, 5}
    no_rating = selectors.similar_images(vector=vector, k=4, rating=None)
    assert (no_rating.matched, no_rating.fallback, len(no_rating.results)) == (False, False, 4)


def test_damaged_index_file_is_detected_and_rebuilt_while_search_answers(committed):
    groups = ingest(committed, dev_photos())
    build = IndexBuild.objects.ready().get()
    path = index_path(build)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    forget_served_indexes()  # as a process starting now would

    committed(assert_right_neighbours, groups)  # answered from the exact tail meanwhile

    build.refresh_from_db()
    assert build.status == IndexBuild.Status.FAILED
    assert "truncated" in build.error or "corrupt" in build.error
    fresh = IndexBuild.objects.ready().get()
    assert fresh.pk != build.pk
    assert index_path(fresh).exists()
    index_path(fresh).unlink()
    forget_served_indexes()
    committed(assert_right_neighbours, groups)
    assert IndexBuild.objects.ready().get().pk > fresh.pk


def test_deleted_images_never_appear_in_results(committed, staff_api):
    groups = ingest(committed, dev_photos())
    victim = next(image_id for image_id, group in groups.items() if group == "g02")
    query = next(image_id for image_id, group in groups.items() if group == "g02" and image_id != victim)
    committed(staff_api.delete, f"/api/images/{victim}/")
    found = [item.image.pk for item in selectors.similar_to_image(image=Image.objects.get(pk=query), k=10).results]
    assert victim not in found
    assert len(found) == 10


# --- the API and the web pages ----------------------------------------------------------------------------


def test_api_search_by_upload_returns_scored_results_with_thumbnails(api, committed):
    groups = ingest(committed, dev_photos())
    path = shared_path("data", "neardup-dev", "labels.csv").parent / "images"
    probe = sorted(path.glob("*.jpg"))
    query_file = next(
        p
        for p in probe
        if p.name not in {Image.objects.get(pk=i).original_name for i in groups} and _group_of(p) == "g02"
    )
    response = api.post("/api/search/", {"file": SimpleUploadedFile(query_file.name, query_file.read_bytes()), "k": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["matched"], body["fallback"]) == (True, False)
    assert [groups[item["image"]["id"]] for item in body["results"]] == ["g02"] * 3
    scores = [item["similarity"] for item in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(item["match"] for item in body["results"])
    assert api.get(body["results"][0]["image"]["thumbnail_url"]).status_code == 200
    assert Image.objects.count() == len(groups)  # the query was not stored


def _group_of(path: Path) -> str:
    with shared_path("data", "neardup-dev", "labels.csv").open() as handle:
        return {Path(row["file"]).name: row["group_id"] for row in csv.DictReader(handle)}[path.name]


def test_api_search_can_add_the_query_to_the_library(api, committed):
    ingest(committed, dev_photos()[:6])
    data = encode(photo_like_image(82, (320, 240)), "JPEG", quality=90)
    response = committed(
        api.post, "/api/search/", {"file": SimpleUploadedFile("new.jpg", data), "add_to_library": "true"}
    )
    assert response.status_code == 200
    assert response.json()["added"]["outcome"] == "accepted"
    assert Image.objects.filter(original_name="new.jpg", status="indexed").exists()


def test_api_similar_by_id_and_index_status(api, committed):
    groups = ingest(committed, dev_photos())
    image_id = next(image_id for image_id, group in groups.items() if group == "g02")
    body = api.get(f"/api/images/{image_id}/similar/?k=3").json()
    assert [groups[item["image"]["id"]] for item in body["results"]] == ["g02"] * 3
    assert image_id not in [item["image"]["id"] for item in body["results"]]
    for item in body["results"]:  # each result's links are its own (reversed once per answer, ids filled in)
        shown = item["image"]
        assert shown["page_url"] == f"http://testserver/images/{shown['id']}/"
        assert shown["thumbnail_url"] == f"http://testserver/images/{shown['id']}/thumbnail/"
        assert shown["file_url"] == f"http://testserver/images/{shown['id']}/file/"
        assert api.get(shown["thumbnail_url"]).status_code == 200
    status = api.get("/api/index/").json()
    assert (status["model"], status["indexed"], status["pending"], status["kind"]) == (
        "mobilenet_v2",
        len(groups),
        0,
        "exact",
    )


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"file": SimpleUploadedFile("x.jpg", b"not an image")}, 415, "not_an_image"),
        ({"file": SimpleUploadedFile("x.jpg", encode(photo_like_image(1), "JPEG")), "k": 0}, 400, "invalid"),
        ({"file": SimpleUploadedFile("x.jpg", encode(photo_like_image(1), "JPEG")), "k": 1000}, 400, "invalid"),
    ],
)
def test_api_search_bad_input(api, data, status, code):
    response = api.post("/api/search/", data, format="multipart")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


def test_search_by_an_upload_over_the_size_cap_is_refused_on_both_surfaces(api, web, settings):
    # given a size cap smaller than the query photo
    settings.IMGSIM_MAX_UPLOAD_BYTES = 2048
    data = encode(photo_like_image(2, (320, 240)), "JPEG", quality=95)
    assert len(data) > 2048
    # when it is searched with through the API and the web page
    answer = api.post("/api/search/", {"file": SimpleUploadedFile("big.jpg", data), "k": 3}, format="multipart")
    page = web.post("/search/", {"file": SimpleUploadedFile("big.jpg", data), "k": 3})
    # then both refuse it with 413 and say why, and nothing is stored
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "file_too_large")
    assert page.status_code == 413
    assert "too large" in page.content.decode()
    assert Image.objects.count() == 0


def test_api_similar_bad_input(api, committed):
    groups = ingest(committed, dev_photos()[:2])
    image_id = next(iter(groups))
    assert api.get("/api/images/999999/similar/").status_code == 404
    assert api.get(f"/api/images/{image_id}/similar/?k=abc").status_code == 400
    assert api.get(f"/api/images/{image_id}/similar/?k=0").status_code == 400
    Image.objects.filter(pk=image_id).update(status="queued", embedding=None)
    response = api.get(f"/api/images/{image_id}/similar/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_embedded"


def test_rebuild_endpoint_is_staff_only(api, staff_api, committed):
    ingest(committed, dev_photos()[:3])
    assert api.post("/api/index/rebuild/").status_code == 403
    before = IndexBuild.objects.count()
    response = committed(staff_api.post, "/api/index/rebuild/")
    assert response.status_code == 202
    assert IndexBuild.objects.count() == before + 1


def test_web_search_page_and_find_similar(web, committed, settings):
    groups = ingest(committed, dev_photos())
    image_id = next(image_id for image_id, group in groups.items() if group == "g00")
    page = web.get(f"/images/{image_id}/similar/?k=10")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("/thumbnail/") >= 11
    # Each result at or above the near-duplicate threshold is labelled "same photo", and only those. The 10
    # results hold g00's 5 other variants and unrelated photos.
    shown = selectors.similar_to_image(image=Image.objects.get(pk=image_id), k=10)
    near = thresholds_for(settings.IMGSIM_MODEL).near_duplicate
    duplicates = [item for item in shown.results if item.similarity >= near]
    assert 3 <= len(duplicates) < len(shown.results) == 10
    assert {groups[item.image.pk] for item in duplicates} == {"g00"}
    assert html.count('data-label="same_photo"') == len(duplicates)
    assert html.count('class="badge result-label ') == 10 + 4  # every result, and the legend's four labels
    detail = web.get(f"/images/{image_id}/").content.decode()
    assert f"/images/{image_id}/similar/" in detail

    query = Image.objects.get(pk=image_id).file.read()
    response = web.post("/search/", {"file": SimpleUploadedFile("q.jpg", query), "k": 5})
    assert response.status_code == 200
    assert response.content.decode().count("/thumbnail/") == 5
    assert 'id="query-photo"' in response.content.decode()  # the query shown beside its results
    assert "data:image/webp;base64," in response.content.decode()
    bad = web.post("/search/", {"file": SimpleUploadedFile("q.jpg", b"<svg></svg>"), "k": 5})
    assert bad.status_code == 415
    assert "SVG" in bad.content.decode()


def test_web_fallback_notice(web, committed, settings):
    groups = ingest(committed, dev_photos()[PER_GROUP * len(GROUPS) :][:6])
    Image.objects.filter(pk__in=groups).update(rating=2)
    settings.IMGSIM_MATCH_THRESHOLD = 0.999
    data = encode(photo_like_image(83, (320, 240)), "JPEG", quality=90)
    html = web.post("/search/", {"file": SimpleUploadedFile("q.jpg", data), "k": 3, "rating": "2"}).content.decode()
    assert 'data-fallback="true"' in html
    assert "Shown: the images whose rating is closest to 2 ★, most similar first." in html
    assert html.count('class="badge">rating fallback<') == 3


def test_admin_rebuild_button(staff_web, committed):
    ingest(committed, dev_photos()[:3])
    page = staff_web.get("/admin/search/indexbuild/")
    assert page.status_code == 200
    assert "Rebuild index now" in page.content.decode()
    before = IndexBuild.objects.count()
    response = committed(staff_web.post, "/admin/search/indexbuild/rebuild/")
    assert response.status_code == 302
    assert IndexBuild.objects.count() == before + 1
    assert IndexBuild.objects.order_by("-id").first().requested_by == "sam"


def test_rebuild_index_command(committed):
    from io import StringIO

    from django.core.management import call_command

    ingest(committed, dev_photos()[:3])
    out = StringIO()
    call_command("rebuild_index", stdout=out)
    assert "ready: 3 images, exact" in out.getvalue()


def test_only_one_rebuild_runs_at_a_time(staff_api, committed):
    ingest(committed, dev_photos()[:3])
    running = IndexBuild.objects.create(model_name="mobilenet_v2")  # another machine is building
    with pytest.raises(RebuildAlreadyRunningError):
        index_rebuild()
    response = staff_api.post("/api/index/rebuild/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "rebuild_running"
    running.status = IndexBuild.Status.FAILED
    running.save()
    assert index_rebuild().status == IndexBuild.Status.READY


def test_query_rating_comes_from_the_photos_exif(api, committed):
    ingest(committed, dev_photos()[:6])
    from tests.images import jpeg_with_rating

    response = api.post("/api/search/", {"file": SimpleUploadedFile("q.jpg", jpeg_with_rating(84, 4)), "k": 2})
    assert response.json()["query_rating"] == 4
    chosen = api.post(
        "/api/search/", {"file": SimpleUploadedFile("q.jpg", jpeg_with_rating(84, 4)), "k": 2, "rating": 1}
    )
    assert chosen.json()["query_rating"] == 1


def test_rebuild_also_triggers_on_the_absolute_number_of_pending_vectors(committed, settings):
    photos = dev_photos()
    ingest(committed, photos[PER_GROUP:])
    first = IndexBuild.objects.ready().get()
    settings.IMGSIM_REBUILD_FRACTION = 10.0
    settings.IMGSIM_REBUILD_MAX_PENDING = 3
    ingest(committed, photos[:PER_GROUP])  # more than 3 new vectors: rebuilt although far below the fraction
    latest = IndexBuild.objects.ready().get()
    assert latest.pk != first.pk
    assert selectors.index_status()["pending"] == 0
