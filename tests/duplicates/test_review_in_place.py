"""The review page pages by the list's order and continues in place: paging with decisions in between never
skips a pending group, the next cards are the first pending groups not on the page, and an undone group's
card comes back ready to decide again (web pages and the API, real made photos)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from duplicates.models import DuplicateGroup
from duplicates.views import groups as group_views
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db

CARD = re.compile(r'<article class="group[^"]*" id="group-(\d+)"')
NEXT = re.compile(r'<a class="btn" href="([^"]+)" rel="next"')


def shown(html: str) -> list[int]:
    return [int(pk) for pk in CARD.findall(html)]


def review_order() -> list[int]:
    pending = DuplicateGroup.objects.filter(kind="near_duplicate", status="pending")
    return list(pending.order_by("-size", "-max_similarity", "id").values_list("id", flat=True))


def keep_all(client: Any, pk: int) -> None:
    version = DuplicateGroup.objects.get(pk=pk).version
    response = client.post(f"/api/duplicate-groups/{pk}/resolve/", {"action": "keep_all", "version": version})
    assert response.status_code == 200, response.content


@pytest.fixture
def three_per_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_views, "GROUPS_PER_PAGE", 3)


def test_paging_with_decisions_in_between_never_skips_a_pending_group(staff_web, staff_api, three_per_page):
    make_groups([4, 3, 3, 2, 2, 2, 2, 2], seed=11)
    order = review_order()
    page = staff_web.get("/duplicates/").content.decode()
    assert shown(page) == order[:3]
    seen = []
    while True:
        cards = shown(page)
        seen += cards
        for pk in cards[:2]:  # decided on the page without a reload; the last card is left for later
            keep_all(staff_api, pk)
        link = NEXT.search(page)
        if link is None:
            break
        page = staff_web.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert seen == order  # every pending group, once each, in the list's order
    left = [pk for pk in order if DuplicateGroup.objects.get(pk=pk).status == "pending"]
    assert shown(staff_web.get("/duplicates/").content.decode()) == left[:3]


def test_previous_goes_back_to_the_groups_before_the_page(staff_web, three_per_page):
    make_groups([4, 3, 3, 2, 2, 2, 2], seed=12)
    order = review_order()
    second = staff_web.get(NEXT.search(staff_web.get("/duplicates/").content.decode()).group(1).replace("&amp;", "&"))
    html = second.content.decode()
    assert shown(html) == order[3:6]
    previous = re.search(r'<a class="btn" href="([^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    assert shown(staff_web.get(previous).content.decode()) == order[:3]
    assert "4 more groups after these" not in html
    assert "1 more group after these" in html


def test_next_cards_are_the_first_pending_groups_not_on_the_page(staff_web, staff_api, three_per_page):
    make_groups([4, 3, 3, 2, 2, 2, 2], seed=13)
    order = review_order()
    on_page = shown(staff_web.get("/duplicates/").content.decode())
    keep_all(staff_api, on_page[0])
    keep_all(staff_api, on_page[1])
    response = staff_web.get("/duplicates/cards/", {"exclude": ",".join(map(str, on_page)), "limit": 2})
    assert response.status_code == 200
    assert shown(response.content.decode()) == order[3:5]
    assert response["X-Groups-Remaining"] == "2"
    assert "after=" in response["X-Next-Url"]
    # A group decided elsewhere is not offered; the page's own cards never come twice.
    keep_all(staff_api, order[3])
    again = staff_web.get("/duplicates/cards/", {"exclude": ",".join(map(str, on_page)), "limit": 5})
    assert shown(again.content.decode()) == order[4:]
    assert again["X-Groups-Remaining"] == "0"


def test_a_page_reached_by_its_link_continues_from_its_first_group(staff_web, three_per_page):
    make_groups([4, 3, 3, 2, 2, 2, 2], seed=14)
    order = review_order()
    link = NEXT.search(staff_web.get("/duplicates/").content.decode()).group(1).replace("&amp;", "&")
    html = staff_web.get(link).content.decode()
    cards_url = re.search(r'data-cards="([^"]+)"', html).group(1).replace("&amp;", "&")
    more = staff_web.get(cards_url + "&exclude=" + ",".join(map(str, shown(html))))
    assert shown(more.content.decode()) == order[6:]  # not the groups before this page


def test_undone_card_is_rendered_pending_again(staff_web, staff_api):
    (group,) = make_groups([3], seed=15)
    keep_all(staff_api, group.pk)
    decided = staff_web.get("/duplicates/cards/", {"card": group.pk}).content.decode()
    assert 'data-status="resolved"' in decided
    assert 'class="group-actions"' not in decided
    assert 'data-action="undo"' in decided
    assert staff_api.post(f"/api/duplicate-groups/{group.pk}/undo/").status_code == 200
    card = staff_web.get("/duplicates/cards/", {"card": group.pk}).content.decode()
    assert shown(card) == [group.pk]
    assert 'data-status="pending"' in card
    assert 'class="group-actions"' in card
    assert card.count('name="keep"') == 3  # the members can be ticked again
    assert 'name="next" value="/duplicates/' in card  # and the forms work without JavaScript


@pytest.mark.parametrize(
    "query",
    [{"exclude": "1,x"}, {"from": "3:abc:1"}, {"limit": "0"}, {"limit": "999"}],
)
def test_cards_refuses_malformed_parameters(staff_web, query):
    assert staff_web.get("/duplicates/cards/", query).status_code == 400


def test_cards_of_a_missing_group_is_404_and_not_for_non_staff(staff_web, web):
    assert staff_web.get("/duplicates/cards/", {"card": 999999}).status_code == 404
    assert web.get("/duplicates/cards/").status_code in (302, 403)
