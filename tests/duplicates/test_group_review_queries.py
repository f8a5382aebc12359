"""The review page and the group list API read a page of groups in a fixed number of queries, however many
groups and members the page holds (no query per group, member or image), and a large group's card shows
its first members with a link to the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from duplicates.api.pair_serializers import PairImageSerializer
from duplicates.models import DuplicateGroup
from gallery.api.serializers import ImageSerializer
from gallery.models import Image
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db

PAGE = "/duplicates/"
API = "/api/duplicate-groups/?kind=near_duplicate&page_size=20"


@pytest.fixture(autouse=True)
def _no_shared_cache(settings: Any) -> None:
    """The detection backlog is shared through the cache for a few seconds: without one here, it is counted on
    every request, and a request's queries do not depend on how soon it follows the previous one."""
    settings.CACHES = {**settings.CACHES, "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(captured.captured_queries)


def test_query_count_does_not_grow_with_groups_or_members(staff_web, staff_api):
    make_groups([2, 3], seed=1)
    small_page, small_api = queries(staff_web, PAGE), queries(staff_api, API)

    make_groups([20, 9, 8, 7, 6, 5, 4, 4, 3, 3, 2, 2], seed=50)  # more than a page, one group over a card
    assert DuplicateGroup.objects.filter(kind="near_duplicate", status="pending").count() == 14
    big_page, big_api = queries(staff_web, PAGE), queries(staff_api, API)

    # Every member's id and file size is read in one query whatever the sizes (a decision covers them all).
    assert big_page == small_page
    assert big_api == small_api
    assert queries(staff_api, API + "&member_limit=0") == small_api


def test_pinned_query_counts(staff_web, staff_api, django_assert_max_num_queries):
    make_groups([20, 5, 4, 3, 3, 2], seed=7)
    # session, user; page of groups and the count of those after it; members with their images (16 at most
    # per group); every member's id and size; the pairs with the suggested copy; the latest decisions; tab
    # counts; the worker status in the header (6, the images here being queued); the thresholds in force;
    # the detection backlog (its settings key reads the thresholds, then the images awaiting detection are
    # counted; none of the images here is searchable, so no pace is read)
    with django_assert_max_num_queries(18):
        assert staff_web.get(PAGE).status_code == 200
    # count and page of groups, members with their images, every member's id and size, pairs, decisions
    with django_assert_max_num_queries(6):
        assert staff_api.get(API).status_code == 200


def test_a_large_group_shows_16_members_and_links_to_the_rest(staff_web, staff_api):
    (group,) = make_groups([20], seed=300)
    keep = group.suggested_keep_id
    page = staff_web.get(PAGE).content.decode()
    card = page[page.index(f'id="group-{group.pk}"') :]
    assert card.count('name="member"') == 16
    assert f'name="member" value="{keep}"' in card  # the suggested copy is always among those shown
    assert "+4 more, decided with the rest: open the whole group" in card
    assert "20 files" in card

    whole = staff_web.get(f"{PAGE}?group={group.pk}").content.decode()
    assert whole.count('name="member"') == 20
    assert "more: open the whole group" not in whole

    listed = staff_api.get(API).json()["results"][0]
    assert len(listed["members"]) == 16
    assert listed["hidden_members"] == 4
    assert listed["members"][0]["image"]["id"] == keep
    shown = [member["image"]["id"] for member in listed["members"]]
    assert len(listed["suggestion"]["trash"]) == 19  # every member verified against the kept copy, listed or not
    assert set(shown) - {keep} < set(listed["suggestion"]["trash"])
    assert listed["member_count"] == 20

    whole = staff_api.get(API + "&member_limit=0").json()["results"][0]
    assert len(whole["members"]) == 20
    assert whole["hidden_members"] == 0
    assert len(staff_api.get(API + "&member_limit=3").json()["results"][0]["members"]) == 3
    assert len(staff_api.get(f"/api/duplicate-groups/{group.pk}/").json()["members"]) == 20


@pytest.mark.parametrize("value", ["abc", "-1", "1001"])
def test_api_member_limit_must_be_a_sensible_number(staff_api, value):
    make_groups([3], seed=400)
    response = staff_api.get(f"{API}&member_limit={value}")
    assert response.status_code == 400
    assert "member_limit" in response.content.decode()


def test_members_and_pairs_show_an_image_as_the_declared_fields_do(staff_api):
    """PairImageSerializer builds its block by hand (for speed): the same as DRF's declared fields give."""
    (group,) = make_groups([2], seed=500)
    listed = staff_api.get(API).json()["results"][0]["members"]
    pair = staff_api.get("/api/duplicates/?kind=near_duplicate").json()["results"][0]
    request = RequestFactory().get("/")
    for image in Image.objects.filter(pk__in=[member["image"]["id"] for member in listed]):
        declared = ImageSerializer(image, context={"request": request}).data
        expected = json.loads(json.dumps({name: declared[name] for name in PairImageSerializer.Meta.fields}))
        assert next(m["image"] for m in listed if m["image"]["id"] == image.pk) == expected
        assert pair["image_a" if pair["image_a"]["id"] == image.pk else "image_b"] == expected
    assert group.size == 2
