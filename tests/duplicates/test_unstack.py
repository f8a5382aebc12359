"""Unstacking from the image page and the library grid (the stack's group is pending review again), and the
image page's link to a stack's group on the right tab of the Duplicates page."""

from __future__ import annotations

import pytest

from duplicates.models import DuplicateGroup, DuplicatePair
from gallery.models import Image
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db


def stack(
    staff_api, committed, *, kind: str = DuplicatePair.Kind.NEAR_DUPLICATE
) -> tuple[DuplicateGroup, int, list[int]]:
    """A stacked group of three made photos: the group, its cover, the copies under it."""
    (group,) = make_groups([3], seed=910, kind=kind)
    response = committed(staff_api.post, f"/api/duplicate-groups/{group.pk}/resolve/", {"action": "stack"})
    assert response.status_code == 200, response.content
    group.refresh_from_db()
    copies = sorted(set(group.members.values_list("image_id", flat=True)) - {group.suggested_keep_id})
    return group, group.suggested_keep_id, copies


def test_unstack_from_the_image_page_of_a_stacked_copy(staff_api, staff_web, committed):
    group, _, copies = stack(staff_api, committed)
    page = staff_web.get(f"/images/{copies[0]}/").content.decode()
    assert f'action="/duplicates/images/{copies[0]}/unstack/"' in page

    response = committed(staff_web.post, f"/duplicates/images/{copies[0]}/unstack/", {"next": f"/images/{copies[0]}/"})
    assert response.status_code == 302
    assert response["Location"] == f"/images/{copies[0]}/"
    assert not Image.objects.filter(stack_cover__isnull=False).exists()
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.PENDING  # back in the review queue
    page = staff_web.get(response["Location"]).content.decode()
    assert f"group #{group.pk} is pending review" in page
    assert "In a stack under" not in page


def test_unstack_from_the_library_grid(staff_api, staff_web, committed):
    _, cover, copies = stack(staff_api, committed)
    grid = staff_web.get("/?sort=added").content.decode()
    assert f'action="/duplicates/images/{cover}/unstack/"' in grid  # on the stack's card
    assert f"/duplicates/images/{copies[0]}/unstack/" not in grid

    response = committed(staff_web.post, f"/duplicates/images/{cover}/unstack/", {"next": "/?sort=added"})
    assert response["Location"] == "/?sort=added"
    grid = staff_web.get(response["Location"]).content.decode()
    assert all(f'href="/images/{pk}/"' in grid for pk in [cover, *copies])
    assert "/unstack/" not in grid


def test_unstack_is_for_staff_and_goes_back_only_within_the_site(staff_api, staff_web, web, committed):
    _, cover, _ = stack(staff_api, committed)
    assert "/unstack/" not in web.get("/").content.decode()
    assert web.post(f"/duplicates/images/{cover}/unstack/").status_code == 403
    assert Image.objects.filter(stack_cover=cover).count() == 2

    response = committed(staff_web.post, f"/duplicates/images/{cover}/unstack/", {"next": "https://elsewhere.test/"})
    assert response["Location"] == f"/images/{cover}/"
    again = staff_web.post(f"/duplicates/images/{cover}/unstack/", {"next": f"/images/{cover}/"}, follow=True)
    assert f"Image #{cover} is not in a stack." in again.content.decode()


def test_a_stack_of_similar_photos_links_to_its_group_on_the_similar_tab(staff_api, staff_web, committed):
    group, cover, _ = stack(staff_api, committed, kind=DuplicatePair.Kind.SIMILAR)
    page = staff_web.get(f"/images/{cover}/").content.decode()
    link = f"/duplicates/?kind=similar&amp;status=stacked&amp;group={group.pk}"
    assert link in page

    review = staff_web.get(link.replace("&amp;", "&")).content.decode()
    assert '<a href="?kind=similar&status=stacked" class="active">' in review
    assert f'id="group-{group.pk}"' in review
