"""Review you can trust (stored pairs, no model): the suggestion trashes only members verified against the kept
copy, a decision covers a whole group however many members the card shows, and a copy whose matches are not
shared still joins its photo's group."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.services.detection import duplicate_pairs_detect
from duplicates.services.groups import duplicate_groups_refresh
from gallery.models import Image
from gallery.services import image_create
from gallery.templatetags.gallery_tags import filesize
from tests.duplicates.conftest import distractor_files, group_files, make_groups
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db

API = "/api/duplicate-groups/"


def images(count: int, *, seed: int, width: int = 96) -> list[Image]:
    """Distinct real (made) photos, each wider than the one before (the last is the suggested copy to keep)."""
    return [
        image_create(data=photo_jpeg(seed + k, size=(width + k, 72)), original_name=f"p{seed + k}.jpg").image
        for k in range(count)
    ]


def pair(first: Image, second: Image, similarity: float, kind: str = DuplicatePair.Kind.NEAR_DUPLICATE) -> None:
    a, b = sorted([first, second], key=lambda image: image.pk)
    DuplicatePair.objects.create(
        image_a=a, image_b=b, kind=kind, similarity=similarity, evidence={"cosine": similarity, "phash_distance": 20}
    )


@pytest.fixture
def weakly_linked() -> dict[str, Any]:
    """Copies a, b and the kept copy k (all paired); w matches a and b but only weakly k (similar band, 0.78);
    v matches a and b and has no pair with k at all. w and v are linked to the group only through a and b."""
    w, v, a, b, k = images(5, seed=10)
    for x, y in ((a, b), (a, k), (b, k)):
        pair(x, y, 0.95)
    for loose in (w, v):
        pair(loose, a, 0.90)
        pair(loose, b, 0.89)
    pair(w, k, 0.78, kind=DuplicatePair.Kind.SIMILAR)
    duplicate_groups_refresh(image_ids=[w.pk, v.pk, a.pk, b.pk, k.pk])
    group = DuplicateGroup.objects.get(kind="near_duplicate", status="pending")
    assert group.suggested_keep_id == k.pk
    assert sorted(group.members.values_list("image_id", flat=True)) == sorted(x.pk for x in (w, v, a, b, k))
    return {"group": group, "w": w, "v": v, "a": a, "b": b, "k": k}


def card_of(html: str, group: DuplicateGroup) -> str:
    card = html[html.index(f'id="group-{group.pk}"') :]
    return card[: card.index("</article>")]


def test_api_suggestion_leaves_a_weakly_linked_member_for_review(weakly_linked, staff_api):
    group, w, v, a, b, k = (weakly_linked[name] for name in ("group", "w", "v", "a", "b", "k"))
    listed = staff_api.get(f"{API}?kind=near_duplicate").json()["results"][0]
    assert listed["suggestion"]["keep"] == [k.pk]
    assert sorted(listed["suggestion"]["trash"]) == sorted([a.pk, b.pk])
    assert sorted(listed["suggestion"]["aside"]) == sorted([w.pk, v.pk])
    assert listed["suggestion"]["bytes_to_trash"] == a.file_size + b.file_size
    members = {member["image"]["id"]: member for member in listed["members"]}
    assert [members[x]["verified"] for x in (k.pk, a.pk, b.pk, w.pk, v.pk)] == [True, True, True, False, False]
    assert members[w.pk]["check"].startswith("weaker match 0.78 with the kept copy")
    assert members[v.pk]["check"].startswith("not checked against the kept copy: linked through #")

    response = staff_api.post(
        f"{API}{group.pk}/resolve/",
        {"action": "suggestion", "version": listed["version"], "members_digest": listed["members_digest"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    decision = response.json()["decision"]
    assert sorted(decision["trashed_ids"]) == sorted([a.pk, b.pk])
    assert decision["kept_ids"] == [k.pk]
    assert set(Image.objects.in_library().values_list("id", flat=True)) == {k.pk, w.pk, v.pk}
    # w and v were never decided: they stay pending, as their own group (their pair a-b links are gone with
    # a and b, so here they are left in the library unreviewed rather than trashed blindly).
    assert not DuplicateGroup.objects.filter(status="resolved", members__image_id__in=[w.pk, v.pk]).exists()


def test_web_card_shows_a_weakly_linked_member_apart_and_unticked(weakly_linked, staff_web):
    group, w, v, a, k = (weakly_linked[name] for name in ("group", "w", "v", "a", "k"))
    card = card_of(staff_web.get("/duplicates/").content.decode(), group)
    main, aside = card[: card.index('class="aside"')], card[card.index('class="aside"') :]
    assert f'name="keep" value="{k.pk}" checked' in main
    assert f'name="member" value="{a.pk}"' in main
    assert f'data-image="{w.pk}"' not in main
    assert "Not verified as the same photo as the kept copy (2)" in aside
    assert f'<input type="checkbox" name="trash" value="{w.pk}" aria-label' in aside  # unticked
    assert f'name="trash" value="{w.pk}" checked' not in aside
    assert "weaker match 0.78 with the kept copy" in aside
    assert "not checked against the kept copy: linked through #" in aside
    assert f'name="member" value="{w.pk}"' not in card  # the form's "the rest" never includes it
    assert "The suggestion: 2 files" in card
    assert "2 left for review" in card
    assert "<kbd>4</kbd>" in aside  # numbered after the three verified members

    # Enter (keep the ticked, trash the rest) as the form posts it: w stays; ticking v sends it to the trash.
    members = [k.pk, a.pk, weakly_linked["b"].pk]
    digest = card.split('name="members_digest" value="')[1].split('"')[0]
    response = staff_web.post(
        f"/duplicates/groups/{group.pk}/resolve/",
        {"action": "keep", "member": members, "keep": [k.pk], "trash": [v.pk], "members_digest": digest, "version": 1},
    )
    assert response.status_code == 302
    assert set(Image.objects.trashed().values_list("id", flat=True)) == {a.pk, weakly_linked["b"].pk, v.pk}
    assert Image.objects.get(pk=w.pk).trashed_at is None


def test_web_apply_to_the_page_leaves_weakly_linked_members(weakly_linked, staff_web):
    group, w, v, k = (weakly_linked[name] for name in ("group", "w", "v", "k"))
    html = staff_web.get("/duplicates/").content.decode()
    assert f'name="digest-{group.pk}"' in html
    assert "Apply the suggestion to this page (2 files" in html
    digest = html.split(f'name="digest-{group.pk}" value="')[1].split('"')[0]
    payload = {"group": [group.pk], f"version-{group.pk}": 1, f"digest-{group.pk}": digest, "next": "/duplicates/"}
    response = staff_web.post("/duplicates/groups/apply-suggestions/", payload, follow=True)
    assert "Applied the suggestion to 1 group(s): 2 file(s)" in response.content.decode()
    assert set(Image.objects.in_library().values_list("id", flat=True)) == {k.pk, w.pk, v.pk}


def test_a_group_of_40_is_decided_in_one_action_on_the_card(staff_web):
    (group,) = make_groups([40], seed=700)
    everyone = list(group.members.values_list("image_id", flat=True))
    total = sum(Image.objects.filter(pk__in=everyone).values_list("file_size", flat=True))
    card = card_of(staff_web.get("/duplicates/").content.decode(), group)
    assert card.count('name="member"') == 16
    assert f"40 files · {filesize(total)}" in card
    assert "+24 more, decided with the rest" in card
    shown = [int(x.split('"')[0]) for x in card.split('name="member" value="')[1:]]
    digest = card.split('name="members_digest" value="')[1].split('"')[0]
    response = staff_web.post(
        f"/duplicates/groups/{group.pk}/resolve/",
        {
            "action": "keep",
            "member": shown,
            "keep": [group.suggested_keep_id],
            "members_digest": digest,
            "version": 1,
            "next": "/duplicates/",
        },
        follow=True,
    )
    assert "kept 1, moved 39 to the trash" in response.content.decode()
    assert Image.objects.trashed().count() == 39
    assert not DuplicateGroup.objects.filter(kind="near_duplicate", status="pending").exists()  # never twice


def test_api_decides_a_group_of_40_in_one_action_and_refuses_a_stale_digest(staff_api):
    first, second = make_groups([40, 40], seed=900)
    listed = {group["id"]: group for group in staff_api.get(f"{API}?kind=near_duplicate").json()["results"]}
    assert len(listed[first.pk]["members"]) == 16
    assert listed[first.pk]["member_count"] == 40
    assert len(listed[first.pk]["suggestion"]["trash"]) == 39

    newcomer = images(1, seed=990, width=50)[0]  # joins the second group after it was listed
    for member in second.members.all():
        pair(newcomer, member.image, 0.93)
    duplicate_groups_refresh(image_ids=[newcomer.pk])
    items = [
        {"id": pk, "action": "suggestion", "version": group["version"], "members_digest": group["members_digest"]}
        for pk, group in listed.items()
    ]
    body = staff_api.post(f"{API}resolve/", {"groups": items}, format="json").json()
    outcome = {result["id"]: result for result in body["results"]}
    assert outcome[first.pk]["status"] == 200
    assert len(outcome[first.pk]["decision"]["trashed_ids"]) == 39
    assert outcome[second.pk]["status"] == 409
    assert outcome[second.pk]["error"]["code"] == "members_changed"
    assert outcome[second.pk]["error"]["group"]["member_count"] == 41
    assert Image.objects.trashed().count() == 39
    assert Image.objects.get(pk=newcomer.pk).trashed_at is None


def test_grouping_keeps_a_copy_whose_matches_are_not_shared():
    """c matches a and b, whose own pair was not found: no match of c's is shared, yet both say it is the photo."""
    a, b, d, e, f, c = images(6, seed=40)
    family = [a, b, d, e, f]
    for x in family:
        for y in family:
            if x.pk < y.pk and {x.pk, y.pk} != {a.pk, b.pk}:
                pair(x, y, 0.95)
    pair(c, a, 0.90)
    pair(c, b, 0.90)
    other = images(3, seed=60)  # another photo's family
    for x in other:
        for y in other:
            if x.pk < y.pk:
                pair(x, y, 0.95)
    duplicate_groups_refresh(image_ids=[x.pk for x in [*family, c, *other]])
    groups = DuplicateGroup.objects.filter(kind="near_duplicate", status="pending")
    found = sorted(sorted(g.members.values_list("image_id", flat=True)) for g in groups)
    assert found == sorted([sorted(x.pk for x in [*family, c]), sorted(x.pk for x in other)])


def test_detection_checks_a_member_against_the_kept_copy_and_verifies_it(staff_api):
    """Four copies of one real photo with stored vectors: h matches a and b (cosine 0.91) but only 0.67 the
    kept copy k (below the similar floor); detection checks it against k geometrically and stores their pair,
    so the suggestion trashes it too. A distinct photo linked the same way fails the check and stays aside."""
    made = [image_create(data=path.read_bytes(), original_name=path.name).image for path in group_files("g02", 4)]
    k = max(made, key=lambda image: (image.width * image.height, image.file_size))
    a, b, h = [image for image in made if image.pk != k.pk]
    stranger = image_create(data=distractor_files(1)[0].read_bytes(), original_name="other.jpg").image
    angles = {k.pk: 0.0, a.pk: 24.0, b.pk: 25.0, h.pk: 48.0, stranger.pk: 49.0}  # degrees in one plane
    for pk, degrees in angles.items():
        vector = np.zeros(8, dtype=np.float32)
        vector[0], vector[1] = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        Image.objects.filter(pk=pk).update(
            status=Image.Status.INDEXED, embedding=vector.tobytes(), embedding_model="mobilenet_v2"
        )
    duplicate_pairs_detect(image_ids=list(angles), verify=True)

    group = DuplicateGroup.objects.get(kind="near_duplicate", status="pending")
    assert group.suggested_keep_id == k.pk
    checked = DuplicatePair.objects.get(image_a_id=min(k.pk, h.pk), image_b_id=max(k.pk, h.pk))
    assert checked.kind == "near_duplicate"
    assert checked.evidence["checked_against_kept"] is True
    assert checked.evidence["geometric_inliers"] >= 20
    assert checked.similarity == pytest.approx(np.cos(np.radians(48.0)), abs=1e-4)
    assert not DuplicatePair.objects.filter(
        image_a_id=min(k.pk, stranger.pk), image_b_id=max(k.pk, stranger.pk)
    ).exists()
    suggestion = staff_api.get(f"{API}{group.pk}/").json()["suggestion"]
    assert h.pk in suggestion["trash"]
    assert stranger.pk not in suggestion["trash"]
