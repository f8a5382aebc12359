"""A card with a member not verified against the kept copy, in the browser (live server, real photos, stored
pairs, fails on console errors and accessibility violations): it is shown apart and unticked, Enter leaves
it, and its number key ticks it for the trash; on a desktop and a phone."""

from __future__ import annotations

from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.services.groups import duplicate_groups_refresh
from gallery.models import Image
from gallery.services import image_create
from tests.browser.conftest import PHONE
from tests.duplicates.conftest import distractor_files, group_files


def pair(first: Image, second: Image, similarity: float, kind: str = DuplicatePair.Kind.NEAR_DUPLICATE) -> None:
    a, b = sorted([first, second], key=lambda image: image.pk)
    DuplicatePair.objects.create(
        image_a=a, image_b=b, kind=kind, similarity=similarity, evidence={"cosine": similarity}
    )


def test_a_member_not_verified_against_the_kept_copy_is_apart_and_needs_its_key(session):
    copies = [image_create(data=path.read_bytes(), original_name=path.name).image for path in group_files("g02", 3)]
    other = image_create(data=distractor_files(1)[0].read_bytes(), original_name="elephant.jpg").image
    for x, first in enumerate(copies):
        for second in copies[x + 1 :]:
            pair(first, second, 0.95)
    keep = max(copies, key=lambda image: (image.width * image.height, image.file_size))
    linked = [image for image in copies if image.pk != keep.pk]
    for image in linked:  # a wrong pair through two copies only
        pair(other, image, 0.89)
    pair(other, keep, 0.74, kind=DuplicatePair.Kind.SIMILAR)
    duplicate_groups_refresh(image_ids=[*(image.pk for image in copies), other.pk])
    group = DuplicateGroup.objects.get(kind="near_duplicate", status="pending")
    assert group.suggested_keep_id == keep.pk
    assert group.members.count() == 4

    page = session.page
    session.go("/duplicates/")
    card = page.locator(f"#group-{group.pk}")
    aside = card.locator(".aside")
    assert aside.locator(".member").count() == 1
    assert "weaker match 0.74 with the kept copy" in aside.inner_text()
    assert aside.locator("input[name=trash]:checked").count() == 0
    assert "4 files" in card.locator(".group-size").inner_text()
    session.shot("group-review-aside")
    page.set_viewport_size(PHONE)
    session.shot("group-review-aside", full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.wait_for_function(f"document.activeElement.id === 'group-{group.pk}'")
    page.keyboard.press("4")  # the member apart: ticked for the trash
    assert aside.locator("input[name=trash]:checked").count() == 1
    page.keyboard.press("4")  # and unticked again
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#group-{group.pk}').dataset.status === 'resolved'")
    assert set(Image.objects.trashed().values_list("id", flat=True)) == {image.pk for image in linked}
    assert Image.objects.get(pk=other.pk).trashed_at is None
