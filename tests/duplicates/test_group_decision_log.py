"""Group decisions in the decision log (web page and API) with their undo, and the DuplicateGroup admin."""

from __future__ import annotations

import pytest

from duplicates.models import DuplicateGroup, DuplicateGroupDecision
from gallery.models import Image
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db


def resolve_suggestion(staff_api, group: DuplicateGroup) -> DuplicateGroupDecision:
    response = staff_api.post(f"/api/duplicate-groups/{group.pk}/resolve/", {"action": "suggestion"}, format="json")
    assert response.status_code == 200, response.content
    return DuplicateGroupDecision.objects.get(pk=response.json()["decision"]["id"])


def test_log_page_lists_group_decisions_and_undoes_the_latest(staff_web, staff_api, committed):
    (group,) = make_groups([3], seed=11)
    decision = committed(resolve_suggestion, staff_api, group)
    assert Image.objects.trashed().count() == 2

    page = staff_web.get("/duplicates/decisions/").content.decode()
    row = page[page.index(f'data-decision="{decision.pk}"') :].split("</tr>")[0]
    assert f"Group #{group.pk}" in row
    assert f"?group={group.pk}" in row  # links to the review card
    assert "2 to the trash" in row
    assert f"/duplicates/decisions/groups/{decision.pk}/undo/" in row

    response = committed(staff_web.post, f"/duplicates/decisions/groups/{decision.pk}/undo/", follow=True)
    assert response.status_code == 200
    assert f"Group decision #{decision.pk} undone" in response.content.decode()
    assert not Image.objects.trashed().exists()
    group.refresh_from_db()
    assert group.status == "pending"
    row = response.content.decode().split(f'data-decision="{decision.pk}"')[1].split("</tr>")[0]
    assert "undone by sam" in row
    assert "/undo/" not in row

    # Undoing it again: a clear error, nothing changes.
    again = staff_web.post(f"/duplicates/decisions/groups/{decision.pk}/undo/", follow=True)
    assert "was already undone" in again.content.decode()
    group.refresh_from_db()
    assert group.status == "pending"
    assert not Image.objects.trashed().exists()


def test_only_the_latest_standing_decision_offers_undo(staff_web, staff_api, committed):
    first, second = make_groups([2, 2], seed=21)
    one = committed(resolve_suggestion, staff_api, first)
    two = committed(resolve_suggestion, staff_api, second)
    page = staff_web.get("/duplicates/decisions/").content.decode()
    for decision in (one, two):
        row = page.split(f'data-decision="{decision.pk}"')[1].split("</tr>")[0]
        assert f"/duplicates/decisions/groups/{decision.pk}/undo/" in row
    assert staff_web.post("/duplicates/decisions/groups/999999/undo/").status_code == 404


def test_api_lists_filters_and_undoes_group_decisions(staff_api, committed):
    first, second = make_groups([3, 2], seed=31)
    decision = committed(resolve_suggestion, staff_api, first)
    committed(resolve_suggestion, staff_api, second)

    body = staff_api.get("/api/duplicate-groups/decisions/").json()
    assert body["count"] == 2
    only = staff_api.get(f"/api/duplicate-groups/decisions/?group={first.pk}").json()
    assert [row["id"] for row in only["results"]] == [decision.pk]
    assert only["results"][0]["trashed_ids"] == decision.trashed_ids
    assert staff_api.get("/api/duplicate-groups/decisions/?group=abc").status_code == 400
    assert staff_api.get(f"/api/duplicate-groups/decisions/{decision.pk}/").json()["group"] == first.pk

    undone = committed(staff_api.post, f"/api/duplicate-groups/decisions/{decision.pk}/undo/")
    assert undone.status_code == 200
    assert undone.json()["decision"]["undone_at"]
    assert undone.json()["group"]["status"] == "pending"
    assert not Image.objects.filter(pk__in=decision.trashed_ids, trashed_at__isnull=False).exists()

    again = staff_api.post(f"/api/duplicate-groups/decisions/{decision.pk}/undo/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_undone"
    assert Image.objects.trashed().count() == 1  # the other group's decision stands


def test_group_decision_log_is_staff_only(web, api, staff_api, committed):
    (group,) = make_groups([2], seed=41)
    decision = committed(resolve_suggestion, staff_api, group)
    assert web.get("/duplicates/decisions/").status_code == 403  # signed in, not staff: the 403 page
    assert web.post(f"/duplicates/decisions/groups/{decision.pk}/undo/").status_code == 403
    assert api.get("/api/duplicate-groups/decisions/").status_code == 403
    assert api.post(f"/api/duplicate-groups/decisions/{decision.pk}/undo/").status_code == 403
    decision.refresh_from_db()
    assert decision.undone_at is None


def test_admin_lists_groups_with_filters_and_shows_members_read_only(staff_web, staff_api, committed):
    big, small = make_groups([6, 2], seed=51)
    committed(resolve_suggestion, staff_api, small)
    listing = staff_web.get("/admin/duplicates/duplicategroup/").content.decode()
    assert f"?group={big.pk}" in listing
    assert f"?group={small.pk}" in listing

    by_size = staff_web.get("/admin/duplicates/duplicategroup/?size=6-10").content.decode()
    assert f"?group={big.pk}" in by_size
    assert f"?group={small.pk}" not in by_size
    resolved = staff_web.get("/admin/duplicates/duplicategroup/?status__exact=resolved&kind__exact=near_duplicate")
    assert f"?group={small.pk}" in resolved.content.decode()
    assert f"?group={big.pk}" not in resolved.content.decode()

    detail = staff_web.get(f"/admin/duplicates/duplicategroup/{big.pk}/change/").content.decode()
    for image_id in big.members.values_list("image_id", flat=True):
        assert f"/images/{image_id}/" in detail
    assert "review card" in detail
    assert 'name="members-0-decision"' not in detail  # read-only: no form fields
    posted = staff_web.post(f"/admin/duplicates/duplicategroup/{big.pk}/change/", {"status": "resolved"})
    assert posted.status_code == 403
    big.refresh_from_db()
    assert big.status == "pending"
