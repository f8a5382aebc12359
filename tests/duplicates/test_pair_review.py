"""Review through the API, the web pages and the admin: decisions, deletions, undo, the log, check an upload."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from duplicates.models import DuplicateDecision, DuplicatePair
from gallery.models import Image
from tests.duplicates.conftest import distractor_files, group_files
from tests.images import encode, photo_like_image

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


@pytest.fixture
def library(ingest):
    """Three variants of one photo, two of another, two unrelated photos: 4 near-duplicate pairs."""
    labels = ingest({"g02": group_files("g02", 3), "g05": group_files("g05", 2), "d": distractor_files(2)})
    assert DuplicatePair.objects.filter(kind="near_duplicate").count() == 4
    return labels


def first_pair(**filters) -> DuplicatePair:
    return DuplicatePair.objects.filter(kind="near_duplicate", **filters).order_by("-similarity", "id").first()


# --- API -------------------------------------------------------------------------------------------------


def test_api_lists_pairs_with_filters_evidence_and_a_keep_suggestion(staff_api, library):
    body = staff_api.get("/api/duplicates/?kind=near_duplicate").json()
    assert body["count"] == 4
    item = body["results"][0]
    assert item["kind"] == "near_duplicate"
    assert item["review_status"] == "pending"
    assert item["image_a"]["id"] < item["image_b"]["id"]
    assert item["suggestion"]["keep"] in (item["image_a"]["id"], item["image_b"]["id"])
    assert item["suggestion"]["reason"]
    assert {"cosine", "phash_distance", "a", "b", "time_gap_seconds"} <= set(item["evidence"])
    assert staff_api.get(item["image_a"]["thumbnail_url"]).status_code == 200
    scores = [result["similarity"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert staff_api.get("/api/duplicates/?status=confirmed").json()["count"] == 0
    assert staff_api.get("/api/duplicates/?band=near_duplicate&page_size=1").json()["next"]
    image_id = item["image_a"]["id"]
    mine = staff_api.get(f"/api/duplicates/?image={image_id}&status=all").json()["results"]
    assert mine
    assert all(image_id in (p["image_a"]["id"], p["image_b"]["id"]) for p in mine)
    detail = staff_api.get(f"/api/duplicates/{item['id']}/").json()
    assert detail["id"] == item["id"]
    assert staff_api.get("/api/duplicates/999999/").status_code == 404


def test_api_resolve_is_staff_only(api, library):
    # given a pending pair, when a non-staff user tries to resolve it
    pair = first_pair()
    response = api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": "not_duplicate"})
    # then it is refused and nothing changes or is logged
    assert response.status_code == 403
    assert DuplicatePair.objects.get(pk=pair.pk).review_status == "pending"
    assert not DuplicateDecision.objects.exists()


def test_api_resolve_sets_the_status_and_logs_the_decision(api, staff_api, library):
    # given a pending pair, when staff dismisses it
    pair = first_pair()
    response = staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": "not_duplicate"}, format="json")
    # then the pair says so, by whom, and the logged decision can be undone
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pair"]["review_status"] == "not_duplicate"
    assert body["pair"]["reviewed_by"] == "sam"
    assert (body["decision"]["action"], body["decision"]["user"], body["decision"]["undoable"]) == (
        "not_duplicate",
        "sam",
        True,
    )
    assert body["decision"]["previous_status"] == "pending"
    # and the pair leaves the pending list
    assert staff_api.get("/api/duplicates/?status=pending&kind=near_duplicate").json()["count"] == 3


@pytest.fixture
def decided_twice(staff_api, library) -> tuple[DuplicatePair, DuplicateDecision]:
    """A pair dismissed, then confirmed, by staff: returns the pair and its first (older) decision."""
    pair = first_pair()
    for action in ("not_duplicate", "confirm"):
        response = staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": action}, format="json")
        assert response.status_code == 200, response.content
    return pair, DuplicateDecision.objects.filter(pair=pair).order_by("id").first()


def test_api_undo_of_an_older_decision_is_refused(staff_api, decided_twice):
    pair, first = decided_twice
    refused = staff_api.post(f"/api/duplicates/decisions/{first.pk}/undo/")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_latest"
    assert DuplicatePair.objects.get(pk=pair.pk).review_status == "confirmed"


def test_api_undo_is_staff_only(api, decided_twice):
    pair, first = decided_twice
    assert api.post(f"/api/duplicates/{pair.pk}/undo/").status_code == 403
    assert api.post(f"/api/duplicates/decisions/{first.pk}/undo/").status_code == 403
    assert DuplicatePair.objects.get(pk=pair.pk).review_status == "confirmed"


def test_api_undo_steps_back_one_decision_at_a_time_until_nothing_is_left(staff_api, decided_twice):
    pair, first = decided_twice
    # when the latest decision is undone through the pair, it is back to the dismissal, by sam
    undone = staff_api.post(f"/api/duplicates/{pair.pk}/undo/").json()
    assert (undone["pair"]["review_status"], undone["pair"]["reviewed_by"]) == ("not_duplicate", "sam")
    # when the first decision is undone by its id, the pair is pending and unreviewed again
    undone = staff_api.post(f"/api/duplicates/decisions/{first.pk}/undo/").json()
    assert (undone["pair"]["review_status"], undone["pair"]["reviewed_by"]) == ("pending", None)
    assert undone["decision"]["undone_at"]
    # then there is nothing left to undo
    nothing = staff_api.post(f"/api/duplicates/{pair.pk}/undo/")
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (409, "nothing_to_undo")


def test_api_decision_log_lists_a_pairs_decisions_newest_first_with_who_undid_them(staff_api, decided_twice):
    pair, first = decided_twice
    staff_api.post(f"/api/duplicates/{pair.pk}/undo/")
    staff_api.post(f"/api/duplicates/decisions/{first.pk}/undo/")
    log = staff_api.get(f"/api/duplicates/decisions/?pair={pair.pk}").json()
    assert [d["action"] for d in log["results"]] == ["confirm", "not_duplicate"]
    assert all(d["undone_by"] == "sam" for d in log["results"])


def test_api_keep_suggested_moves_the_other_image_to_the_trash_and_undo_restores_it(staff_api, library, committed):
    pair = first_pair(image_a__in=[pk for pk, label in library.items() if label == "g02"])
    smaller = min((pair.image_a, pair.image_b), key=lambda image: (image.width * image.height, image.file_size))
    names = [smaller.file.name, smaller.thumbnail.name]
    response = committed(staff_api.post, f"/api/duplicates/{pair.pk}/resolve/", {"action": "keep_suggested"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pair"] is None  # an image of it is in the trash: out of the review lists
    decision = DuplicateDecision.objects.get(pk=body["decision"]["id"])
    assert decision.deleted_image_id == smaller.pk
    assert (decision.suggested, decision.new_status, decision.pair_id) == (True, "confirmed", pair.pk)
    assert body["decision"]["undoable"] is True
    smaller.refresh_from_db()
    assert smaller.trashed_at is not None
    assert all(default_storage.exists(name) for name in names)  # the file is kept
    listed = [item["id"] for item in staff_api.get("/api/images/?page_size=100").json()["results"]]
    assert smaller.pk not in listed
    assert len(listed) == len(library) - 1
    assert all(
        smaller.pk not in (item["image_a"]["id"], item["image_b"]["id"])
        for item in staff_api.get("/api/duplicates/?status=all").json()["results"]
    )
    assert Image.objects.searchable().filter(pk=smaller.pk).count() == 0
    assert staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": "delete_a"}).status_code == 404

    undone = committed(staff_api.post, f"/api/duplicates/decisions/{decision.pk}/undo/")
    assert undone.status_code == 200, undone.content
    smaller.refresh_from_db()
    pair.refresh_from_db()
    assert smaller.trashed_at is None
    assert pair.review_status == "pending"
    assert Image.objects.searchable().filter(pk=smaller.pk).count() == 1
    assert undone.json()["pair"]["id"] == pair.pk


def test_api_undo_of_a_purged_trash_decision_is_refused(staff_api, library, committed):
    from gallery.services import image_purge

    pair = first_pair()
    body = committed(staff_api.post, f"/api/duplicates/{pair.pk}/resolve/", {"action": "delete_a"}).json()
    committed(image_purge, image=Image.objects.get(pk=pair.image_a_id))
    refused = staff_api.post(f"/api/duplicates/decisions/{body['decision']['id']}/undo/")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "cannot_undo_delete"
    assert "purged" in refused.json()["error"]["message"]


def test_api_delete_a_or_b_explicitly(staff_api, library, committed):
    pair = first_pair()
    a_id, b_id = pair.image_a_id, pair.image_b_id
    body = committed(staff_api.post, f"/api/duplicates/{pair.pk}/resolve/", {"action": "delete_a"}).json()
    assert body["decision"]["action"] == "delete_a"
    assert Image.objects.get(pk=a_id).trashed_at is not None
    assert Image.objects.get(pk=b_id).trashed_at is None
    assert staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": "delete_b"}).status_code == 404
    assert Image.objects.get(pk=b_id).trashed_at is None


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [({}, 400, "invalid"), ({"action": "burn"}, 400, "invalid"), ({"action": ""}, 400, "invalid")],
)
def test_api_resolve_bad_input(staff_api, library, payload, status, code):
    response = staff_api.post(f"/api/duplicates/{first_pair().pk}/resolve/", payload, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_check_before_upload_answers_bands_and_stores_nothing(api, library):
    g05 = [pk for pk, label in library.items() if label == "g05"]
    unseen = group_files("g05", 1, skip=2)[0]  # another variant of the g05 photo, not in the library
    before = (Image.objects.count(), DuplicatePair.objects.count())
    response = api.post("/api/duplicates/check/", {"file": SimpleUploadedFile(unseen.name, unseen.read_bytes())})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["exact_duplicate"] is None
    assert body["model"] == "mobilenet_v2"
    near = [match["image"]["id"] for match in body["matches"] if match["band"] == "near_duplicate"]
    assert set(near) == set(g05)
    assert body["matches"][0]["similarity"] >= body["near_duplicate_threshold"]
    assert (Image.objects.count(), DuplicatePair.objects.count()) == before

    stored = Image.objects.get(pk=g05[0])
    same = api.post("/api/duplicates/check/", {"file": SimpleUploadedFile("again.jpg", stored.file.read()), "k": 2})
    assert same.json()["exact_duplicate"]["id"] == stored.pk
    assert len(same.json()["matches"]) == 2
    assert Image.objects.count() == before[0]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"file": SimpleUploadedFile("x.jpg", b"not an image")}, 415, "not_an_image"),
        (
            {"file": SimpleUploadedFile("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")},
            415,
            "unsupported_format",
        ),
        ({"file": SimpleUploadedFile("x.jpg", encode(photo_like_image(1), "JPEG")), "k": 0}, 400, "invalid"),
        ({"file": SimpleUploadedFile("x.jpg", b"")}, 400, "empty_file"),
    ],
)
def test_check_before_upload_bad_input(api, data, status, code):
    response = api.post("/api/duplicates/check/", data, format="multipart")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert Image.objects.count() == 0


def test_anonymous_clients_are_refused(client):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/duplicates/").status_code in (401, 403)


# --- web pages -------------------------------------------------------------------------------------------


def test_web_review_page_shows_pairs_side_by_side_and_resolves(staff_web, library):
    page = staff_web.get("/duplicates/pairs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="pair panel"') == 4
    assert html.count("/thumbnail/") >= 8
    assert "keep ·" in html
    assert "Keep A, trash B" in html or "Keep B, trash A" in html
    pair = first_pair()
    here = "/duplicates/pairs/?kind=near_duplicate"
    response = staff_web.post(f"/duplicates/{pair.pk}/resolve/", {"action": "not_duplicate", "next": here})
    assert response.status_code == 302
    assert response["Location"] == here
    pair.refresh_from_db()
    assert pair.review_status == "not_duplicate"
    assert staff_web.get(here).content.decode().count('class="pair panel"') == 3
    dismissed = staff_web.get("/duplicates/pairs/?kind=near_duplicate&status=not_duplicate").content.decode()
    assert f'id="pair-{pair.pk}"' in dismissed
    assert "Undo" in dismissed

    staff_web.post(f"/duplicates/{pair.pk}/undo/", {"next": here})
    pair.refresh_from_db()
    assert pair.review_status == "pending"
    evil = staff_web.post(f"/duplicates/{pair.pk}/resolve/", {"action": "confirm", "next": "https://evil.example/"})
    assert evil["Location"] == "/duplicates/pairs/"
    assert staff_web.post(f"/duplicates/{pair.pk}/resolve/", {"action": "burn"}).status_code == 400
    assert staff_web.get("/duplicates/pairs/?kind=similar").status_code == 200


def test_web_delete_and_the_decision_log(staff_web, library, committed):
    pair = first_pair()
    victim = pair.image_b_id
    response = committed(staff_web.post, f"/duplicates/{pair.pk}/resolve/", {"action": "delete_b"}, follow=True)
    assert f"Moved #{victim}" in response.content.decode()
    assert Image.objects.get(pk=victim).trashed_at is not None
    log = staff_web.get("/duplicates/decisions/").content.decode()
    assert "Moved image B to the trash" in log
    other = first_pair(review_status="pending", image_a__trashed_at=None, image_b__trashed_at=None)
    staff_web.post(f"/duplicates/{other.pk}/resolve/", {"action": "confirm"})
    decision = DuplicateDecision.objects.get(pair=other)
    staff_web.post(f"/duplicates/decisions/{decision.pk}/undo/")
    other.refresh_from_db()
    assert other.review_status == "pending"
    assert "undone" in staff_web.get("/duplicates/decisions/").content.decode()
    detail = staff_web.get(f"/duplicates/{other.pk}/").content.decode()
    assert "Confirmed duplicate" in detail
    assert "undone" in detail


def test_web_pages_are_for_staff_and_the_image_page_lists_pairs(web, staff_web, library):
    assert web.get("/duplicates/").status_code == 403  # signed-in non-staff: the 403 page
    pair = first_pair()
    assert web.post(f"/duplicates/{pair.pk}/resolve/", {"action": "confirm"}).status_code == 403
    pair.refresh_from_db()
    assert pair.review_status == "pending"
    html = web.get(f"/images/{pair.image_a_id}/").content.decode()
    assert 'id="duplicates"' in html
    assert f"/images/{pair.image_b_id}/thumbnail/" in html
    assert f"/duplicates/{pair.pk}/" in staff_web.get(f"/images/{pair.image_a_id}/").content.decode()
    assert "/duplicates/" in staff_web.get("/").content.decode()  # the nav link for staff
    assert ">Duplicates<" not in web.get("/").content.decode()


# --- admin -----------------------------------------------------------------------------------------------


def test_admin_review_list_filters_and_bulk_decisions(staff_web, library):
    url = "/admin/duplicates/duplicatepair/"
    page = staff_web.get(url + "?kind__exact=near_duplicate&review_status__exact=pending")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("/thumbnail/") >= 8
    assert "keep" in html
    pairs = list(DuplicatePair.objects.filter(kind="near_duplicate").order_by("id")[:2])
    response = staff_web.post(url, {"action": "mark_not_duplicate", "_selected_action": [p.pk for p in pairs]})
    assert response.status_code == 302
    assert set(DuplicatePair.objects.filter(pk__in=[p.pk for p in pairs]).values_list("review_status", flat=True)) == {
        "not_duplicate"
    }
    assert DuplicateDecision.objects.filter(source="admin", action="not_duplicate").count() == 2
    assert staff_web.get(f"{url}{pairs[0].pk}/change/").status_code == 200

    log_url = "/admin/duplicates/duplicatedecision/"
    assert staff_web.get(log_url).status_code == 200
    decisions = DuplicateDecision.objects.values_list("pk", flat=True)
    staff_web.post(log_url, {"action": "undo", "_selected_action": list(decisions)})
    assert set(DuplicatePair.objects.filter(pk__in=[p.pk for p in pairs]).values_list("review_status", flat=True)) == {
        "pending"
    }


def test_admin_delete_suggested_asks_first(staff_web, library, committed):
    url = "/admin/duplicates/duplicatepair/"
    pair = first_pair()
    before = Image.objects.count()
    confirm = staff_web.post(url, {"action": "delete_suggested", "_selected_action": [pair.pk]})
    assert confirm.status_code == 200
    assert "trash" in confirm.content.decode()
    assert Image.objects.in_library().count() == before
    done = committed(
        staff_web.post, url, {"action": "delete_suggested", "_selected_action": [pair.pk], "confirmed": "yes"}
    )
    assert done.status_code == 302
    assert Image.objects.in_library().count() == before - 1
    assert Image.objects.count() == before  # in the trash, not deleted
    assert DuplicateDecision.objects.get(source="admin").suggested is True
