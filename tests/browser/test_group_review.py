"""The group review page in the browser harness (live server, real photos, fails on console errors): the card
fits 1440x900, the keyboard decides and undoes without reloading, and the next pending group gets the focus; a
camera's bracket is one card on the Similar tab, look-alike photos none."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from duplicates.models import DuplicateGroup
from duplicates.services.detection import duplicate_pairs_detect
from duplicates.services.group_review import GroupAction, duplicate_group_resolve
from duplicates.services.groups import duplicate_groups_refresh
from gallery.models import Image
from pipeline.services import image_ingest
from tests.browser.conftest import DESKTOP, PHONE
from tests.duplicates.conftest import distractor_files, group_files
from tests.duplicates.test_similar_scenes import (
    LOOK_ALIKE_COSINE,
    NEAR_DUPLICATE_COSINE,
    camera_brackets,
    library_image,
    vectors_at,
)
from tests.images import shared_path

CATS = ("134008.jpg", "134052.jpg")  # a cheetah and a leopard on dry grass


def test_review_groups_with_the_keyboard_without_reloading(session):
    ids = []
    for paths in (group_files("g02", 3), group_files("g05", 2), distractor_files(1)):
        ids += [image_ingest(data=path.read_bytes(), original_name=path.name).image.pk for path in paths]
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == len(ids)
    duplicate_groups_refresh(image_ids=ids)
    first, second = DuplicateGroup.objects.filter(kind="near_duplicate").order_by("-size", "-max_similarity", "id")
    page = session.page
    session.go("/duplicates/")
    card = page.locator(f"#group-{first.pk}")
    assert page.locator("article.group").count() == 2
    actions = card.locator(".group-actions").bounding_box()
    assert actions["y"] + actions["height"] <= 900  # the card and its actions fit the screen
    page.wait_for_function(f"document.activeElement.id === 'group-{first.pk}'")
    assert card.locator("input[name=keep]:checked").count() == 1  # the suggestion, pre-selected
    page.evaluate("window.notReloaded = true")

    unticked = card.locator("input[name=keep]").evaluate_all("boxes => boxes.findIndex(box => !box.checked)")
    page.keyboard.press(str(unticked + 1))  # keep a second copy too
    assert card.locator("input[name=keep]:checked").count() == 2
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#group-{first.pk}').dataset.status === 'resolved'")
    assert "moved 1 to the trash" in card.locator(".group-status").inner_text()
    assert Image.objects.trashed().count() == 1
    page.wait_for_function(f"document.activeElement.id === 'group-{second.pk}'")  # the next pending group
    assert page.evaluate("window.notReloaded") is True

    page.keyboard.press("k")
    page.keyboard.press("u")
    page.wait_for_function(f"document.querySelector('#group-{first.pk}').dataset.status === 'pending'")
    assert not Image.objects.trashed().exists()
    page.keyboard.press("j")
    page.keyboard.press("a")  # keep all: not duplicates
    page.wait_for_function(f"document.querySelector('#group-{second.pk}').dataset.status === 'resolved'")
    second.refresh_from_db()
    assert second.status == "resolved"
    page.keyboard.press("?")
    assert page.evaluate("document.getElementById('shortcuts').open") is True
    assert page.evaluate("window.notReloaded") is True
    session.shot("group-review")


def test_unstack_from_the_library_grid_and_from_the_image_page(session):
    ids = [image_ingest(data=path.read_bytes(), original_name=path.name).image.pk for path in group_files("g02", 3)]
    duplicate_groups_refresh(image_ids=ids)
    group = DuplicateGroup.objects.get(kind="near_duplicate")
    page = session.page
    for where in ("grid", "image page"):
        duplicate_group_resolve(group=group, action=GroupAction.STACK, user=session.user)
        cover = DuplicateGroup.objects.get(pk=group.pk).suggested_keep_id
        if where == "grid":
            session.go("/")
            expect(page.locator(".grid .card")).to_have_count(1)
            session.shot("library-stack")
            page.locator(".grid .card").get_by_role("button", name=re.compile("^Unstack")).click()
            expect(page.locator(".grid .card")).to_have_count(3)
        else:
            page.set_viewport_size(PHONE)
            session.go(f"/images/{cover}/")
            session.shot("image-stack", full_page=True)
            page.locator("#stack").get_by_role("button", name="Unstack").click()
            expect(page.locator("#stack")).to_have_count(0)
        expect(page.locator(".messages")).to_contain_text(f"group #{group.pk} is pending review")
        assert not Image.objects.filter(stack_cover__isnull=False).exists()


def test_a_cameras_bracket_is_one_card_on_the_similar_tab_and_stacks_into_one(session):
    # a five-frame bracket of one photo (camera EXIF), and a cheetah and a leopard alike only to the embedding
    frames = camera_brackets(distractor_files(1)[0])
    vectors = vectors_at(NEAR_DUPLICATE_COSINE, len(frames), seed=5)
    shots = [library_image(data, f"frame{n}.jpg", vectors[n]).pk for n, data in enumerate(frames)]
    folder = shared_path("data", "distractors-dev", "train")
    alike = vectors_at(LOOK_ALIKE_COSINE, 2, seed=6)
    cats = [library_image((folder / name).read_bytes(), name, alike[n]).pk for n, name in enumerate(CATS)]
    duplicate_pairs_detect(image_ids=shots + cats)
    page = session.page
    session.go("/duplicates/?kind=similar")
    cards = page.locator("article.group")
    expect(cards).to_have_count(1)  # the bracket; the two big cats make no group
    card = cards.first
    members = card.locator("input[name=member]").evaluate_all("inputs => inputs.map(input => Number(input.value))")
    assert sorted(members) == shots
    session.shot("similar-bracket")
    page.set_viewport_size(PHONE)
    session.shot("similar-bracket", full_page=True)
    page.set_viewport_size(DESKTOP)
    card.focus()
    # stack: keep all five, shown as one; the page then fetches the next card, which leaving it would cut off
    with page.expect_response(lambda response: "/duplicates/cards/" in response.url):
        page.keyboard.press("s")
    expect(card).to_have_attribute("data-status", "stacked")
    assert Image.objects.filter(pk__in=shots, stack_cover__isnull=False).count() == 4
    session.go("/")
    expect(page.locator(".grid .card")).to_have_count(3)  # the stack and the two big cats
