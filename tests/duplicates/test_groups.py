"""Duplicate groups end to end with real photos: grouping after detection, decisions, undo, races, the trash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.test import RequestFactory
from django_q.models import Schedule
from rest_framework.test import APIClient

from duplicates.api.pair_serializers import PairImageSerializer
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicatePair
from duplicates.services.groups import duplicate_groups_refresh
from gallery.api.serializers import ImageSerializer
from gallery.models import Image
from pipeline.services import image_ingest
from tests.duplicates.conftest import distractor_files, group_files

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


@pytest.fixture
def library(ingest: Any) -> dict[int, str]:
    """Four variants of one photo, three of another, two unrelated photos; groups refreshed after detection
    (as the detection step does once it has written its pairs)."""
    labels = ingest({"g02": group_files("g02", 4), "g05": group_files("g05", 3), "d": distractor_files(2)})
    duplicate_groups_refresh(image_ids=list(labels))
    return labels


def response_request(client: APIClient) -> Any:
    """A request like the test client's (same host), for serializing the expected answer."""
    return RequestFactory().get("/api/duplicate-groups/")


def ids_of(labels: dict[int, str], label: str) -> list[int]:
    return sorted(pk for pk, name in labels.items() if name == label)


def near_group(image_id: int, status: str = "pending") -> DuplicateGroup:
    return DuplicateGroup.objects.get(kind="near_duplicate", status=status, members__image_id=image_id)


def member_ids(group: DuplicateGroup) -> list[int]:
    return sorted(group.members.values_list("image_id", flat=True))


def add_variant(committed: Any, group: str, skip: int) -> int:
    """Upload one more copy of a photo (detection runs in the embedding task) and refresh its groups."""
    path = group_files(group, 1, skip=skip)[0]
    image_id = committed(lambda: image_ingest(data=path.read_bytes(), original_name=path.name)).image.pk
    duplicate_groups_refresh(image_ids=[image_id])
    return image_id


# --- grouping --------------------------------------------------------------------------------------------


def test_detection_then_refresh_makes_one_group_per_photo_and_grows_it_incrementally(library, committed):
    g02, g05 = ids_of(library, "g02"), ids_of(library, "g05")
    first, second = near_group(g02[0]), near_group(g05[0])
    assert member_ids(first) == g02
    assert member_ids(second) == g05
    assert DuplicateGroup.objects.filter(kind="near_duplicate", status="pending").count() == 2
    assert first.suggested_keep_id in g02
    assert first.suggestion_reason
    best = max(Image.objects.filter(pk__in=g02), key=lambda image: (image.width * image.height, image.file_size))
    assert first.suggested_keep_id == best.pk
    assert not DuplicateGroup.objects.filter(kind="near_duplicate", members__image_id__in=ids_of(library, "d")).exists()

    newcomer = add_variant(committed, "g02", skip=4)
    grown = near_group(newcomer)
    assert grown.pk == first.pk  # the same group, one member more
    assert member_ids(grown) == sorted([*g02, newcomer])
    assert grown.size == 5
    assert grown.version == first.version


def test_one_wrong_pair_does_not_chain_two_groups(library):
    g02, g05 = ids_of(library, "g02"), ids_of(library, "g05")
    wrong = DuplicatePair.objects.create(
        image_a_id=min(g02[0], g05[0]), image_b_id=max(g02[0], g05[0]), similarity=0.97, kind="near_duplicate"
    )
    duplicate_groups_refresh(image_ids=[wrong.image_a_id, wrong.image_b_id])
    assert member_ids(near_group(g02[0])) == g02
    assert member_ids(near_group(g05[0])) == g05


def test_not_a_duplicate_splits_a_member_off(library, staff_api, committed):
    g05 = ids_of(library, "g05")
    loner = g05[-1]
    for pair in DuplicatePair.objects.filter(kind="near_duplicate").involving(loner):
        response = committed(staff_api.post, f"/api/duplicates/{pair.pk}/resolve/", {"action": "not_duplicate"})
        assert response.status_code == 200
    assert member_ids(near_group(g05[0])) == g05[:-1]
    assert not DuplicateGroup.objects.filter(status="pending", kind="near_duplicate", members__image_id=loner).exists()


def test_scan_duplicates_rebuilds_the_groups(library):
    DuplicateGroup.objects.all().delete()
    call_command("scan_duplicates", verbosity=0)
    groups = DuplicateGroup.objects.filter(kind="near_duplicate", status="pending")
    assert sorted(member_ids(group) for group in groups) == sorted([ids_of(library, "g02"), ids_of(library, "g05")])


# --- the API ---------------------------------------------------------------------------------------------


def test_api_lists_groups_with_members_evidence_and_the_suggestion(library, staff_api, api, client):
    body = staff_api.get("/api/duplicate-groups/?kind=near_duplicate").json()
    assert body["count"] == 2
    group = body["results"][0]
    assert group["size"] == 4
    assert len(group["members"]) == 4
    assert group["status"] == "pending"
    assert group["version"] == 1
    suggestion = group["suggestion"]
    assert suggestion["action"] == "keep"
    assert len(suggestion["keep"]) == 1
    assert len(suggestion["trash"]) == 3
    assert suggestion["reason"]
    assert suggestion["bytes_to_trash"] == sum(
        member["image"]["file_size"] for member in group["members"] if member["image"]["id"] in suggestion["trash"]
    )
    kept = [member for member in group["members"] if member["suggested"]]
    assert [member["image"]["id"] for member in kept] == suggestion["keep"]
    others = [member for member in group["members"] if not member["suggested"]]
    assert all(member["evidence"]["other"] == suggestion["keep"][0] for member in others)
    assert all(member["evidence"]["cosine"] > 0.7 for member in others)
    assert any("largest resolution" in member["highlights"] for member in group["members"])
    image = Image.objects.get(pk=group["members"][0]["image"]["id"])
    # The image as DRF's declared fields serialize it (PairImageSerializer builds it by hand, for speed).
    declared = ImageSerializer(image, context={"request": response_request(staff_api)}).data
    expected = {name: declared[name] for name in PairImageSerializer.Meta.fields}
    assert group["members"][0]["image"] == json.loads(json.dumps(expected, cls=DjangoJSONEncoder))
    assert staff_api.get("/api/duplicate-groups/?min_size=4").json()["count"] == 1
    assert staff_api.get("/api/duplicate-groups/?status=resolved").json()["count"] == 0
    assert staff_api.get(f"/api/duplicate-groups/{group['id']}/").json()["id"] == group["id"]
    for bad in ("?kind=burst", "?status=done", "?min_size=two"):
        response = staff_api.get("/api/duplicate-groups/" + bad)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
    assert api.get("/api/duplicate-groups/").status_code == 403  # signed in, not staff
    assert api.post(f"/api/duplicate-groups/{group['id']}/resolve/", {"action": "keep_all"}).status_code == 403
    assert api.get("/api/trash/").status_code == 403
    assert APIClient().get("/api/duplicate-groups/").status_code in (401, 403)


def test_api_keep_selected_trashes_the_rest_and_undo_restores_them(library, staff_api, committed):
    group = near_group(ids_of(library, "g02")[0])
    keep, trash = member_ids(group)[:1], member_ids(group)[1:]
    names = [name for image in Image.objects.filter(pk__in=trash) for name in (image.file.name, image.thumbnail.name)]
    response = committed(
        staff_api.post,
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "keep", "keep": keep, "trash": trash, "version": 1},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group"]["status"] == "resolved"
    assert body["group"]["version"] == 2
    assert body["decision"]["trashed_ids"] == trash
    assert body["decision"]["bytes_trashed"] > 0
    assert Image.objects.filter(pk__in=trash, trashed_at__isnull=False).count() == 3
    assert all(default_storage.exists(name) for name in names)  # files kept in the trash
    assert set(
        DuplicatePair.objects.filter(image_a_id__in=keep + trash, image_b_id__in=keep + trash).values_list(
            "review_status", flat=True
        )
    ) == {"confirmed"}
    listed = {item["id"] for item in staff_api.get("/api/images/?page_size=100").json()["results"]}
    assert not listed & set(trash)
    assert {item["id"] for item in staff_api.get("/api/trash/").json()["results"]} == set(trash)
    assert staff_api.get("/api/duplicate-groups/?kind=near_duplicate").json()["count"] == 1

    undone = committed(staff_api.post, f"/api/duplicate-groups/{group.pk}/undo/")
    assert undone.status_code == 200, undone.content
    assert undone.json()["group"]["status"] == "pending"
    assert undone.json()["group"]["version"] == 3
    assert Image.objects.filter(pk__in=trash, trashed_at__isnull=True).count() == 3
    assert member_ids(near_group(keep[0])) == keep + trash
    assert near_group(keep[0]).pk == group.pk
    assert set(
        DuplicatePair.objects.filter(image_a_id__in=keep + trash, image_b_id__in=keep + trash).values_list(
            "review_status", flat=True
        )
    ) == {"pending"}
    assert DuplicateGroupDecision.objects.get(pk=body["decision"]["id"]).undone_at is not None
    again = staff_api.post(f"/api/duplicate-groups/{group.pk}/undo/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "nothing_to_undo"


def test_api_keep_all_dismisses_the_pairs_and_stack_keeps_them(library, staff_api, staff_web, committed):
    g02, g05 = ids_of(library, "g02"), ids_of(library, "g05")
    first, second = near_group(g02[0]), near_group(g05[0])
    response = committed(staff_api.post, f"/api/duplicate-groups/{first.pk}/resolve/", {"action": "keep_all"})
    assert response.status_code == 200, response.content
    assert set(
        DuplicatePair.objects.filter(image_a_id__in=g02, image_b_id__in=g02).values_list("review_status", flat=True)
    ) == {"not_duplicate"}
    assert not Image.objects.filter(pk__in=g02, trashed_at__isnull=False).exists()
    duplicate_groups_refresh(image_ids=g02)  # a later refresh does not bring the dismissed group back
    assert not DuplicateGroup.objects.filter(status="pending", members__image_id__in=g02).exists()

    stacked = committed(staff_api.post, f"/api/duplicate-groups/{second.pk}/resolve/", {"action": "stack"}).json()
    assert stacked["group"]["status"] == "stacked"
    assert not Image.objects.filter(pk__in=g05, trashed_at__isnull=False).exists()
    cover = next(m["image"]["id"] for m in stacked["group"]["members"] if m["suggested"])
    under = [x for x in g05 if x != cover]
    grid = staff_web.get("/").content.decode()
    assert f"/images/{cover}/" in grid
    assert ">+2</span>" in grid  # the stack's badge
    assert not any(f'href="/images/{x}/"' in grid for x in under)
    detail = staff_web.get(f"/images/{cover}/").content.decode()
    assert "A stack of 3" in detail
    assert all(f"/images/{x}/" in detail for x in under)
    assert "In a stack under" in staff_web.get(f"/images/{under[0]}/").content.decode()
    committed(staff_api.post, f"/api/duplicate-groups/{second.pk}/undo/")  # unstack
    assert near_group(g05[0]).pk == second.pk
    assert not Image.objects.filter(stack_cover__isnull=False).exists()
    grid = staff_web.get("/").content.decode()
    assert all(f'href="/images/{x}/"' in grid for x in g05)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"action": "keep", "keep": [999_999], "trash": []}, "not_members"),
        ({"action": "keep", "keep": ["first"], "trash": ["first"]}, "keep_and_trash"),
        ({"action": "keep", "keep": [], "trash": ["first"]}, "keep_required"),
        ({"action": "keep", "keep": ["first"]}, "trash_required"),
        ({"action": "keep_all", "trash": ["first"]}, "nothing_to_trash"),
        ({"action": "burn"}, "invalid"),
        ({"action": "keep", "keep": "all"}, "invalid"),
        ({"action": "keep_all", "version": "new"}, "invalid"),
    ],
)
def test_api_resolve_bad_input_is_400_and_changes_nothing(library, staff_api, payload, code):
    group = near_group(ids_of(library, "g02")[0])
    first = member_ids(group)[0]
    for key in ("keep", "trash"):
        if isinstance(payload.get(key), list):
            payload[key] = [first if value == "first" else value for value in payload[key]]
    response = staff_api.post(f"/api/duplicate-groups/{group.pk}/resolve/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    group.refresh_from_db()
    assert (group.status, group.version) == ("pending", 1)
    assert not Image.objects.filter(trashed_at__isnull=False).exists()
    assert not DuplicateGroupDecision.objects.exists()


def test_two_reviewers_one_wins_the_other_gets_409_with_the_current_state(library, staff_api, committed):
    other = get_user_model().objects.create_user(username="kim", password="pw-kim-12345", is_staff=True)
    second = APIClient()
    second.force_authenticate(other)
    group = near_group(ids_of(library, "g05")[0])
    seen = member_ids(group)
    first = committed(
        staff_api.post,
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "keep", "keep": seen[:1], "trash": seen[1:], "version": 1},
        format="json",
    )
    assert first.status_code == 200
    late = second.post(
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "keep", "keep": seen[1:2], "trash": [seen[0], seen[2]], "version": 1},
        format="json",
    )
    assert late.status_code == 409
    error = late.json()["error"]
    assert error["code"] == "already_decided"
    assert error["group"]["status"] == "resolved"
    assert error["group"]["version"] == 2
    assert Image.objects.get(pk=seen[0]).trashed_at is None  # the winner's choice stands
    assert DuplicateGroupDecision.objects.count() == 1


def test_stale_version_is_409(library, staff_api):
    group = near_group(ids_of(library, "g05")[0])
    DuplicateGroup.objects.filter(pk=group.pk).update(version=5)
    response = staff_api.post(
        f"/api/duplicate-groups/{group.pk}/resolve/", {"action": "keep_all", "version": 4}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert response.json()["error"]["group"]["version"] == 5


def test_a_member_added_after_the_page_loaded_stays_pending(library, staff_api, committed):
    g02 = ids_of(library, "g02")
    page = staff_api.get("/api/duplicate-groups/?kind=near_duplicate&min_size=4").json()["results"][0]
    seen = [member["image"]["id"] for member in page["members"]]
    newcomer = add_variant(committed, "g02", skip=4)
    assert newcomer in member_ids(near_group(g02[0]))
    keep = page["suggestion"]["keep"]
    response = committed(
        staff_api.post,
        f"/api/duplicate-groups/{page['id']}/resolve/",
        {"action": "keep", "keep": keep, "trash": [x for x in seen if x not in keep], "version": page["version"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert Image.objects.get(pk=newcomer).trashed_at is None
    assert sorted(response.json()["group"]["members"][i]["image"]["id"] for i in range(4)) == sorted(seen)
    pending = near_group(newcomer)  # the newcomer with the kept copy, still to review
    assert member_ids(pending) == sorted([*keep, newcomer])


def test_bulk_resolve_applies_the_suggestion_and_reports_files_and_bytes(library, staff_api, committed):
    groups = staff_api.get("/api/duplicate-groups/?kind=near_duplicate").json()["results"]
    items = [{"id": group["id"], "action": "suggestion", "version": group["version"]} for group in groups]
    items.append({"id": 999_999, "action": "suggestion"})
    response = committed(staff_api.post, "/api/duplicate-groups/resolve/", {"groups": items}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [result["status"] for result in body["results"]] == [200, 200, 404]
    expected_files = sum(len(group["suggestion"]["trash"]) for group in groups)
    assert body["resolved"] == 2
    assert body["trashed_files"] == expected_files == 5
    assert body["trashed_bytes"] == sum(group["suggestion"]["bytes_to_trash"] for group in groups)
    kept = {group["suggestion"]["keep"][0] for group in groups}
    assert set(Image.objects.in_library().values_list("id", flat=True)) == kept | set(ids_of(library, "d"))
    repeat = committed(staff_api.post, "/api/duplicate-groups/resolve/", {"groups": items[:1]}, format="json")
    assert repeat.json()["results"][0]["status"] == 409
    assert staff_api.post("/api/duplicate-groups/resolve/", {"groups": []}, format="json").status_code == 400


# --- the trash -------------------------------------------------------------------------------------------


def test_trash_api_restore_brings_an_image_back_into_search_and_its_group(library, staff_api, committed):
    group = near_group(ids_of(library, "g02")[0])
    seen = member_ids(group)
    committed(
        staff_api.post,
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "keep", "keep": seen[:2], "trash": seen[2:]},
        format="json",
    )
    similar = staff_api.get(f"/api/images/{seen[0]}/similar/?k=10").json()
    assert not {result["image"]["id"] for result in similar["results"]} & set(seen[2:])
    listing = staff_api.get("/api/trash/").json()
    assert listing["count"] == 2
    assert listing["results"][0]["purge_after"]
    assert staff_api.post(f"/api/trash/{seen[0]}/restore/").status_code == 404  # not in the trash
    restored = committed(staff_api.post, f"/api/trash/{seen[2]}/restore/")
    assert restored.status_code == 200
    assert restored.json()["trashed_at"] is None
    similar = staff_api.get(f"/api/images/{seen[0]}/similar/?k=10").json()
    assert seen[2] in {result["image"]["id"] for result in similar["results"]}
    assert member_ids(near_group(seen[2])) == seen[:3]  # back for review with the kept copies


def test_trash_api_purge_deletes_for_good(library, staff_api, committed):
    victim = ids_of(library, "g05")[0]
    group = near_group(victim)
    seen = member_ids(group)
    committed(
        staff_api.post,
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "keep", "keep": [x for x in seen if x != victim], "trash": [victim]},
        format="json",
    )
    image = Image.objects.get(pk=victim)
    names = [image.file.name, image.thumbnail.name]
    response = committed(staff_api.post, f"/api/trash/{victim}/purge/")
    assert response.status_code == 204
    assert not Image.objects.filter(pk=victim).exists()
    assert not any(default_storage.exists(name) for name in names)
    undo = staff_api.post(f"/api/duplicate-groups/{group.pk}/undo/")
    assert undo.status_code == 409
    assert undo.json()["error"]["code"] == "purged"
    assert staff_api.post(f"/api/trash/{victim}/purge/").status_code == 404


def test_scheduled_purge_after_the_trash_period(library, staff_api, committed, settings):
    from datetime import timedelta

    from django.utils import timezone

    from gallery.tasks import purge_expired_trash

    assert Schedule.objects.filter(func="gallery.tasks.purge_expired_trash").exists()  # the data migration
    settings.IMGSIM_TRASH_DAYS = 30
    old, recent = ids_of(library, "d")
    Image.objects.filter(pk=old).update(trashed_at=timezone.now() - timedelta(days=31))
    Image.objects.filter(pk=recent).update(trashed_at=timezone.now() - timedelta(days=29))
    assert committed(purge_expired_trash) == {"purged": 1}
    assert not Image.objects.filter(pk=old).exists()
    assert Image.objects.get(pk=recent).trashed_at is not None


def test_trash_web_page_restores_and_purges(library, staff_web, web, committed):
    old, other = ids_of(library, "d")
    from duplicates.services.trash import images_trash

    images_trash(images=list(Image.objects.filter(pk__in=[old, other])), user=None)
    assert web.get("/trash/").status_code == 403  # staff only
    html = staff_web.get("/trash/").content.decode()
    assert f'data-image="{old}"' in html
    assert f"/images/{old}/thumbnail/" in html
    assert "In the trash" in staff_web.get(f"/images/{old}/").content.decode()
    assert f"/images/{old}/" not in staff_web.get("/").content.decode()  # out of the library grid
    response = committed(staff_web.post, f"/trash/{old}/restore/", follow=True)
    assert "Restored" in response.content.decode()
    assert Image.objects.get(pk=old).trashed_at is None
    committed(staff_web.post, f"/trash/{other}/purge/")
    assert not Image.objects.filter(pk=other).exists()
    assert staff_web.post(f"/trash/{old}/purge/").status_code == 404  # not in the trash: nothing happens
    assert Image.objects.filter(pk=old).exists()


# --- the web review page ---------------------------------------------------------------------------------


def test_web_review_page_shows_one_card_per_group_and_resolves_with_the_form(library, staff_web, web, committed):
    assert web.get("/duplicates/").status_code == 403  # staff only
    page = staff_web.get("/duplicates/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="group panel') == 2
    assert "group-review.js" in html
    g02 = ids_of(library, "g02")
    group = near_group(g02[0])
    card = html[html.index(f'id="group-{group.pk}"') :]
    card = card[: card.index("</article>")]
    assert card.count('name="member"') == 4
    assert f'name="keep" value="{group.suggested_keep_id}" checked' in card  # the suggestion is pre-selected
    assert card.count(" checked") == 1
    assert f"keep · {group.suggestion_reason}" in card
    assert "largest resolution" in card
    for shortcut in ("<kbd>Enter</kbd>", "<kbd>a</kbd>", "<kbd>s</kbd>", "<kbd>1</kbd>"):
        assert shortcut in card
    files = sum(len(m) - 1 for m in (g02, ids_of(library, "g05")))
    assert f"Apply the suggestion to this page ({files} files" in html

    keep = [g02[0], g02[1]]
    response = committed(
        staff_web.post,
        f"/duplicates/groups/{group.pk}/resolve/",
        {"action": "keep", "member": g02, "keep": keep, "version": "1", "next": "/duplicates/"},
        follow=True,
    )
    assert response.status_code == 200
    assert "kept 2, moved 2 to the trash" in response.content.decode()
    assert set(Image.objects.trashed().values_list("id", flat=True)) == set(g02[2:])
    resolved = staff_web.get("/duplicates/?status=resolved").content.decode()
    assert f'id="group-{group.pk}"' in resolved
    assert "Moved to the trash" in resolved
    undone = committed(staff_web.post, f"/duplicates/groups/{group.pk}/undo/", {"next": "/duplicates/"}, follow=True)
    assert "back to pending" in undone.content.decode()
    assert not Image.objects.trashed().exists()


def test_web_resolve_bad_input_and_races_answer_4xx_and_change_nothing(library, staff_web):
    group = near_group(ids_of(library, "g05")[0])
    members = member_ids(group)
    stranger = ids_of(library, "d")[0]
    cases = [
        ({"action": "keep", "member": members, "keep": [stranger]}, 400),
        ({"action": "keep", "member": [*members, stranger], "keep": members[:1]}, 400),
        ({"action": "keep", "member": ["x"], "keep": []}, 400),
        ({"action": "keep_all", "member": members, "version": "²"}, 400),  # str.isdigit() says yes
        ({"action": "explode", "member": members}, 400),
        ({"action": "keep_all", "member": members, "version": "7"}, 409),
    ]
    for payload, status in cases:
        response = staff_web.post(f"/duplicates/groups/{group.pk}/resolve/", payload)
        assert response.status_code == status, payload
        assert 'class="error"' in response.content.decode()
    group.refresh_from_db()
    assert (group.status, group.version) == ("pending", 1)
    assert not Image.objects.trashed().exists()
    assert staff_web.post(f"/duplicates/groups/{group.pk}/undo/").status_code == 409
    assert staff_web.post("/duplicates/groups/apply-suggestions/", {}).status_code == 400


def test_web_apply_the_suggestion_to_the_page(library, staff_web, committed):
    groups = list(DuplicateGroup.objects.filter(kind="near_duplicate", status="pending"))
    payload = {
        "group": [g.pk for g in groups],
        **{f"version-{g.pk}": g.version for g in groups},
        "next": "/duplicates/",
    }
    payload["next"] = "/duplicates/"
    response = committed(staff_web.post, "/duplicates/groups/apply-suggestions/", payload, follow=True)
    assert "Applied the suggestion to 2 group(s): 5 file(s)" in response.content.decode()
    kept = {g.suggested_keep_id for g in groups}
    assert set(Image.objects.in_library().values_list("id", flat=True)) == kept | set(ids_of(library, "d"))
