"""/api/images/ lists every image of the library with its place in a stack (stack_of, stack_size), and hides
stacked copies only when asked (?hide_stacked=true), as the library grid always does."""

from __future__ import annotations

import pytest

from duplicates.services.trash import images_trash
from gallery.models import Image
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db


def stacked_group(staff_api, committed) -> tuple[int, list[int], int]:
    """A stack of three copies (cover and two under it) and one unrelated pair left pending."""
    group, other = make_groups([3, 2], seed=700)
    response = committed(staff_api.post, f"/api/duplicate-groups/{group.pk}/resolve/", {"action": "stack"})
    assert response.status_code == 200, response.content
    group.refresh_from_db()
    cover = group.suggested_keep_id
    copies = sorted(set(group.members.values_list("image_id", flat=True)) - {cover})
    return cover, copies, other.pk


def listed(api, query: str = "") -> dict[int, dict]:
    response = api.get(f"/api/images/{query}")
    assert response.status_code == 200, response.content
    return {row["id"]: row for row in response.json()["results"]}


def test_api_lists_stacked_copies_with_their_stack(api, staff_api, committed):
    cover, copies, _ = stacked_group(staff_api, committed)
    rows = listed(api)
    assert len(rows) == 5  # every image, stacked copies included
    assert rows[cover]["stack_of"] is None
    assert rows[cover]["stack_size"] == 3
    for copy in copies:
        assert rows[copy]["stack_of"] == cover
        assert rows[copy]["stack_size"] == 1
    loners = [row for pk, row in rows.items() if pk != cover and pk not in copies]
    assert [(row["stack_of"], row["stack_size"]) for row in loners] == [(None, 1), (None, 1)]

    detail = api.get(f"/api/images/{copies[0]}/")
    assert detail.status_code == 200  # a stacked copy is still reachable
    assert detail.json()["stack_of"] == cover


def test_hide_stacked_lists_a_stack_as_its_cover(api, staff_api, committed, web):
    cover, copies, _ = stacked_group(staff_api, committed)
    rows = listed(api, "?hide_stacked=true")
    assert cover in rows
    assert not set(copies) & set(rows)
    assert rows[cover]["stack_size"] == 3
    assert len(listed(api, "?hide_stacked=false")) == 5

    grid = web.get("/").content.decode()  # the library grid: the cover with its count, not the copies
    assert f"/images/{cover}/" in grid
    for copy in copies:
        assert f'href="/images/{copy}/"' not in grid


def test_a_trashed_copy_leaves_the_stack_count(api, staff_api, committed):
    cover, copies, _ = stacked_group(staff_api, committed)
    committed(images_trash, images=[Image.objects.get(pk=copies[0])], user=None)
    rows = listed(api)
    assert copies[0] not in rows
    assert rows[cover]["stack_size"] == 2


def test_hide_stacked_must_be_a_boolean(api, staff_api, committed):
    stacked_group(staff_api, committed)
    response = api.get("/api/images/?hide_stacked=maybe")
    assert response.status_code == 400
    assert "hide_stacked" in response.content.decode()
