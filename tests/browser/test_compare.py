"""The compare view of group review in the browser harness (live server, real photos, fails on console errors):
a member opens at full resolution, zooms and pans, two members side by side (shown unaligned) share one zoom
and pan, the arrow keys step through the group, Esc closes, and none of its keys reach the page's review
shortcuts. Aligned by content: tests/browser/test_compare_alignment.py."""

from __future__ import annotations

from typing import Any

from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.services.groups import duplicate_groups_refresh
from gallery.services import image_create
from tests.browser.conftest import PHONE
from tests.duplicates.conftest import group_files


def photo_group() -> DuplicateGroup:
    """Three copies of one real photo, paired as near-duplicates (detection's output) and grouped."""
    images = [image_create(data=path.read_bytes(), original_name=path.name).image for path in group_files("g02", 3)]
    for x, first in enumerate(images):
        for second in images[x + 1 :]:
            DuplicatePair.objects.create(image_a=first, image_b=second, kind="near_duplicate", similarity=0.97)
    duplicate_groups_refresh(image_ids=[image.pk for image in images])
    return DuplicateGroup.objects.get(kind="near_duplicate")


def transforms(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#compare .pane:not([hidden]) img", "images => images.map(image => image.style.transform)"
    )


def test_compare_zoom_pan_side_by_side_and_step_with_the_keyboard(session):
    group = photo_group()
    members = sorted(group.members.values_list("image_id", flat=True))
    page = session.page
    session.go("/duplicates/")
    card = page.locator(f"#group-{group.pk}")
    ticked = card.locator("input[name=keep]:checked").count()

    first = card.locator(".member [data-compare]").first
    first.click()
    page.wait_for_function("document.getElementById('compare').open")
    assert card.locator("input[name=keep]:checked").count() == ticked  # opening it toggled nothing
    shown = page.locator("#pane-a")
    page.wait_for_function("document.querySelector('#pane-a img').complete")
    natural = page.eval_on_selector("#pane-a img", "image => [image.naturalWidth, image.naturalHeight]")
    image = group.members.get(image_id=int(shown.get_attribute("data-image"))).image
    assert natural == [image.width, image.height]  # the original itself, at full resolution

    page.keyboard.press("+")
    page.keyboard.press("+")
    assert float(page.locator("#compare").get_attribute("data-scale")) > 1.5
    stage = shown.locator(".stage").bounding_box()
    page.mouse.move(stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.mouse.down()
    page.mouse.move(stage["x"] + stage["width"] / 2 + 60, stage["y"] + stage["height"] / 2 + 30, steps=4)
    page.mouse.up()
    assert "translate(60px, 30px)" in transforms(page)[0]

    page.keyboard.press("c")  # pin this one on the left, the next beside it
    assert page.locator("#pane-b").is_visible()
    left, right = (
        page.locator("#pane-a").get_attribute("data-image"),
        page.locator("#pane-b").get_attribute("data-image"),
    )
    assert left != right
    page.wait_for_function("document.getElementById('compare').dataset.alignment === 'aligned'")  # copies
    assert transforms(page)[1].startswith("matrix3d(")  # the right one warped into the left one's frame
    page.keyboard.press("a")  # unaligned: both panes share one zoom and pan by screen position
    beside = page.locator("#pane-b .stage").bounding_box()
    page.mouse.move(beside["x"] + beside["width"] / 3, beside["y"] + beside["height"] / 3)
    page.mouse.wheel(0, -200)  # zoom in around the pointer, on the right pane
    page.wait_for_function("Number(document.getElementById('compare').dataset.scale) > 2")
    a, b = transforms(page)
    assert a == b
    assert "scale(1)" not in a

    page.keyboard.press("ArrowRight")  # the right pane steps through the group, the left stays pinned
    assert page.locator("#pane-a").get_attribute("data-image") == left
    stepped = page.locator("#pane-b").get_attribute("data-image")
    assert stepped not in (left, right)
    assert {int(left), int(right), int(stepped)} == set(members)
    assert page.locator("#compare-title").inner_text().startswith(f"Group #{group.pk}")
    page.keyboard.press("1")  # a review shortcut: ignored while comparing
    page.keyboard.press("Enter")
    assert card.locator("input[name=keep]:checked").count() == ticked
    session.shot("group-compare")

    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('compare').open")

    # From the keyboard: Enter on a focused picture opens the compare view and decides nothing.
    card.locator(".member [data-compare]").nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('compare').open")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('compare').open")
    assert card.get_attribute("data-status") == "pending"
    group.refresh_from_db()
    assert group.status == "pending"


def test_compare_on_a_phone_stacks_the_panes(session):
    group = photo_group()
    page = session.page
    page.set_viewport_size(PHONE)
    session.go("/duplicates/")
    page.locator(f"#group-{group.pk} .member [data-compare]").first.click()
    page.wait_for_function("document.getElementById('compare').open")
    # Pinch: two touch pointers moving apart from 40 px to 120 px zoom both panes three times.
    page.evaluate(
        """() => {
        const stage = document.querySelector('#pane-a .stage'), box = stage.getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        const touch = (type, id, dx) => stage.dispatchEvent(new PointerEvent(type,
            {pointerId: id, pointerType: 'touch', isPrimary: id === 1, clientX: x + dx, clientY: y, bubbles: true}));
        touch('pointerdown', 1, -20); touch('pointerdown', 2, 20); touch('pointermove', 2, 20);
        touch('pointermove', 2, 60); touch('pointermove', 1, -60);
        touch('pointerup', 1, -60); touch('pointerup', 2, 60);
        }"""
    )
    assert page.locator("#compare").get_attribute("data-scale") == "3.000"
    page.keyboard.press("c")
    a, b = page.locator("#pane-a").bounding_box(), page.locator("#pane-b").bounding_box()
    assert b["y"] >= a["y"] + a["height"] - 1  # one above the other
    assert a["width"] <= PHONE["width"]
    assert b["y"] + b["height"] <= PHONE["height"]
    page.wait_for_function("document.getElementById('compare').dataset.alignment === 'aligned'")
    page.locator("#compare-align").click()  # unaligned
    assert len(set(transforms(page))) == 1
    assert "scale(3)" in transforms(page)[0]
    session.shot("group-compare-phone")
    page.locator("#compare-close").click()
    page.wait_for_function("!document.getElementById('compare').open")
