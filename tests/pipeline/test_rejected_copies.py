"""A blurred copy of a library photo: rejected as blurry, and named a copy of that photo (upload outcome, image
page, API), while it stays out of search, the index, duplicate detection and groups. Real photos
(distractors-dev) and the offline ImageNet MobileNet-V2."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from duplicates.models import DetectionCheck, DuplicateGroupMember, DuplicatePair
from duplicates.selectors import images_awaiting_detection, rejected_copy_threshold
from gallery.models import Image
from pipeline.services import embedding_run, image_retry
from search.library_view import LibrarySearch, forget_served_indexes
from search.selectors import similar_images
from search.services.index_lifecycle import index_rebuild
from tests.duplicates.conftest import distractor_files
from tests.images import blurred_jpeg, shared_path

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


def blurred(path: Path) -> bytes:
    """Gaussian blur of 0.6 % of the long side: rejected as blurry (sharpness about 0.45); the cosine of
    105019.jpg's copy to its original (0.88) stays well above the copy threshold."""
    return blurred_jpeg(path, 0.006)


def upload(api, data: bytes, name: str):
    return api.post("/api/images/", {"file": SimpleUploadedFile(name, data, "image/jpeg")}, format="multipart")


@pytest.fixture
def library(api, committed) -> list[Image]:
    """Six real photos uploaded and indexed (each with its pairs checked)."""
    photos = distractor_files(6)
    ids = [committed(upload, api, path.read_bytes(), path.name).json()["image"]["id"] for path in photos]
    assert Image.objects.filter(pk__in=ids, status=Image.Status.INDEXED).count() == 6
    return [Image.objects.get(pk=pk) for pk in ids]


@pytest.fixture
def blurred_copy(api, committed, library) -> tuple[Image, Image, dict]:
    """The last library photo uploaded again, blurred: (original, copy, the upload's API outcome)."""
    original = library[-1]
    path = next(p for p in distractor_files(6) if p.name == original.original_name)
    response = committed(upload, api, blurred(path), "blurred-" + path.name)
    assert response.status_code == 201, response.content
    return original, Image.objects.get(pk=response.json()["image"]["id"]), response.json()


def test_blurred_copy_is_rejected_and_named_a_copy_in_the_api(api, blurred_copy):
    original, copy, outcome = blurred_copy
    # The upload answers at once: rejected, and the copy check still to come (the page polls for it).
    assert outcome["outcome"] == "rejected"
    assert outcome["image"]["reason_code"] == "blurry"
    assert outcome["image"]["copy_check"] == "pending"
    assert outcome["image"]["copy_of"] is None

    detail = api.get(f"/api/images/{copy.pk}/").json()
    assert detail["status"] == "rejected"
    assert detail["reason_code"] == "blurry"
    assert detail["copy_check"] == "checked"
    assert detail["copy_of"]["id"] == original.pk
    assert detail["copy_of"]["similarity"] >= rejected_copy_threshold(model_name="mobilenet_v2")
    assert detail["copy_of"]["page_url"].endswith(f"/images/{original.pk}/")
    assert api.get(detail["copy_of"]["thumbnail_url"]).status_code == 200

    listed = {row["id"]: row for row in api.get("/api/images/", {"status": "rejected"}).json()["results"]}
    assert listed[copy.pk]["copy_of"]["id"] == original.pk
    originals = {row["id"]: row for row in api.get("/api/images/", {"status": "indexed"}).json()["results"]}
    assert originals[original.pk]["copy_of"] is None
    assert originals[original.pk]["copy_check"] is None


def test_a_heavy_blur_is_named_by_comparing_blurred_alike(api, committed, library):
    """1 % of the long side: the plain cosine to the original is far below any safe threshold, the cosine
    once both are blurred alike is not."""
    original = next(image for image in library if image.original_name == "100098.jpg")
    path = next(p for p in distractor_files(6) if p.name == original.original_name)
    response = committed(upload, api, blurred_jpeg(path, 0.010), "heavy-blur.jpg")
    copy = Image.objects.get(pk=response.json()["image"]["id"])
    assert float(copy.vector @ original.vector) < 0.65
    body = api.get(f"/api/images/{copy.pk}/").json()
    assert body["copy_of"]["id"] == original.pk
    assert body["copy_of"]["similarity"] >= rejected_copy_threshold(model_name="mobilenet_v2")


def test_image_page_names_the_original(web, blurred_copy):
    original, copy, _ = blurred_copy
    page = web.get(f"/images/{copy.pk}/").content.decode()
    assert "Rejected: Blurry." in page
    assert "It looks like a blurred copy of" in page
    assert f'href="/images/{original.pk}/"' in page
    assert f'src="/images/{original.pk}/thumbnail/"' in page
    assert "Checking whether it is a copy" not in page
    # The original's own page says nothing of the kind.
    assert "blurred copy" not in web.get(f"/images/{original.pk}/").content.decode()


def test_admin_shows_the_original_and_filters_blurred_copies(staff_web, blurred_copy):
    original, copy, _ = blurred_copy
    change = staff_web.get(f"/admin/gallery/image/{copy.pk}/change/").content.decode()
    assert "Blurred copy of" in change
    assert f'href="/admin/gallery/image/{original.pk}/change/"' in change
    assert f'src="/images/{original.pk}/thumbnail/"' in change
    assert 'name="copy_of"' not in change  # the copy check's finding, read-only
    assert (
        f'href="/admin/gallery/image/{copy.pk}/change/"'
        not in staff_web.get(f"/admin/gallery/image/{original.pk}/change/").content.decode()
    )

    def listed(query: str) -> set[int]:
        response = staff_web.get(f"/admin/gallery/image/{query}")
        assert response.status_code == 200
        return {image.pk for image in response.context["cl"].result_list}

    assert "By blurred copy of a library image" in staff_web.get("/admin/gallery/image/").content.decode()
    assert listed("?blurred_copy=yes") == {copy.pk}
    assert copy.pk not in listed("?blurred_copy=no")
    assert original.pk in listed("?blurred_copy=no")


def test_blurred_photo_that_is_not_in_the_library_is_rejected_without_copy_of(api, web, committed, library):
    stranger = sorted(shared_path("data", "distractors-dev", "val").glob("*.jpg"))[0]
    response = committed(upload, api, blurred(stranger), "blurred-stranger.jpg")
    body = api.get(f"/api/images/{response.json()['image']['id']}/").json()
    assert body["reason_code"] == "blurry"
    assert body["copy_check"] == "checked"
    assert body["copy_of"] is None
    page = web.get(f"/images/{body['id']}/").content.decode()
    assert "Rejected: Blurry." in page
    assert "blurred copy" not in page
    assert "Checking whether" not in page


def test_the_rejected_copy_never_becomes_searchable(api, staff_api, blurred_copy):
    original, copy, _ = blurred_copy
    copy.refresh_from_db()
    assert copy.vector is not None
    assert copy.status == Image.Status.REJECTED
    library_ids = set(Image.objects.filter(status=Image.Status.INDEXED).values_list("id", flat=True))

    def assert_out_of_search() -> None:
        # Its own vector finds the original first and never itself, in the served index and its tail alike.
        result = similar_images(vector=copy.vector, k=10)
        found = [item.image.pk for item in result.results]
        assert found[0] == original.pk
        assert copy.pk not in found
        assert LibrarySearch(model_name="mobilenet_v2").size == len(library_ids)
        similar = api.get(f"/api/images/{original.pk}/similar/", {"k": 10}).json()
        assert copy.pk not in [row["image"]["id"] for row in similar["results"]]
        searched = api.post(
            "/api/search/",
            {"file": SimpleUploadedFile("q.jpg", copy.file.open("rb").read(), "image/jpeg")},
            format="multipart",
        ).json()
        assert copy.pk not in [row["image"]["id"] for row in searched["results"]]
        assert searched["results"][0]["image"]["id"] == original.pk

    assert_out_of_search()
    # Not detected, not paired, not grouped, not counted as searchable.
    assert not images_awaiting_detection().filter(pk=copy.pk).exists()
    assert not DetectionCheck.objects.filter(image_id=copy.pk).exists()
    assert not DuplicatePair.objects.involving(copy.pk).exists()
    assert not DuplicateGroupMember.objects.filter(image_id=copy.pk).exists()
    assert api.get("/api/index/").json()["searchable"] == len(library_ids)
    # The library grid is as before: the copy is its own rejected card, never stacked under the original.
    indexed = {row["id"] for row in api.get("/api/images/", {"status": "indexed"}).json()["results"]}
    assert indexed == library_ids
    assert Image.objects.get(pk=copy.pk).stack_cover_id is None
    assert not Image.objects.filter(stack_cover_id=copy.pk).exists()
    # "Find similar" for the rejected image itself is refused, as before it had a vector.
    assert api.get(f"/api/images/{copy.pk}/similar/").status_code == 409

    # After an index rebuild (and in a process that starts afresh) it is still nowhere.
    build = index_rebuild(requested_by="test")
    assert build.vector_count == len(library_ids)
    assert_out_of_search()
    forget_served_indexes()
    assert_out_of_search()
    # Another embedding run (the two-minute schedule) neither re-embeds nor re-checks it.
    embedding_run()
    copy.refresh_from_db()
    assert copy.status == Image.Status.REJECTED
    assert copy.copy_of_id == original.pk
    assert not DuplicatePair.objects.involving(copy.pk).exists()


def test_accept_anyway_turns_the_copy_into_a_near_duplicate_pair(staff_api, committed, blurred_copy):
    original, copy, _ = blurred_copy
    committed(image_retry, image=copy)
    copy.refresh_from_db()
    assert copy.status == Image.Status.INDEXED
    assert copy.copy_of_id is None
    assert copy.copy_similarity is None
    body = staff_api.get(f"/api/images/{copy.pk}/").json()
    assert body["copy_of"] is None
    assert body["copy_check"] is None
    assert DuplicatePair.objects.involving(copy.pk).filter(image_a_id=original.pk).exists()


def test_an_unreadable_rejected_file_is_checked_without_copy_and_stays_rejected(api, committed, library):
    path = distractor_files(6)[-1]

    def upload_and_lose_the_file() -> int:
        pk = upload(api, blurred(path), "lost.jpg").json()["image"]["id"]
        image = Image.objects.get(pk=pk)
        image.file.storage.delete(image.file.name)
        return pk

    pk = committed(upload_and_lose_the_file)
    image = Image.objects.get(pk=pk)
    assert image.status == Image.Status.REJECTED
    assert image.reason_code == "blurry"
    assert image.copy_checked_at is not None
    assert image.copy_of_id is None
    assert image.embedding is None
    assert api.get(f"/api/images/{pk}/").json()["copy_check"] == "checked"


def test_other_rejections_are_not_embedded(api, committed, library):
    tiny = io.BytesIO()
    with PILImage.open(distractor_files(6)[-1]) as image:
        image.convert("RGB").resize((48, 32)).save(tiny, "JPEG", quality=90)
    body = committed(upload, api, tiny.getvalue(), "tiny.jpg").json()["image"]
    assert body["reason_code"] == "too_small"
    assert body["copy_check"] is None
    assert body["copy_of"] is None
    assert Image.objects.get(pk=body["id"]).embedding is None


def test_without_the_model_the_rejected_image_is_checked_without_copy_and_stays_rejected(
    api, committed, library, settings, tmp_path
):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "missing.pth")
    path = distractor_files(6)[-1]
    pk = committed(upload, api, blurred(path), "no-model.jpg").json()["image"]["id"]
    body = api.get(f"/api/images/{pk}/").json()
    assert body["status"] == "rejected"  # not "failed": the rejection is what the user needs to know
    assert body["copy_check"] == "checked"
    assert body["copy_of"] is None
    assert Image.objects.get(pk=pk).embedding is None
