"""The group review page (staff): one card per group, decided with forms (no JavaScript needed) or, with
static/group-review.js, through the API without reloading the page and with the keyboard."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.query_params import InvalidQueryParameter, query_int, whole_number
from core.redirects import redirect_back
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicatePair
from duplicates.selectors import detection as detection_selectors
from duplicates.selectors import groups as group_selectors
from duplicates.selectors import thresholds as threshold_selectors
from duplicates.selectors.groups import GroupCursor
from duplicates.services.group_review import (
    GroupAction,
    GroupReviewError,
    duplicate_group_decision_undo,
    duplicate_group_resolve,
    duplicate_group_undo_latest,
    image_unstack,
)
from gallery.models import Image

GROUPS_PER_PAGE = 10
# In-place loading (review_cards): cards per answer, and the ids of the cards already on a page it skips
# (past that many, the page follows its "Next groups" link instead).
MAX_CARDS_PER_REQUEST = 20
MAX_EXCLUDED = 500
# How often an open review page asks for the detection backlog while images await detection.
DETECTION_POLL_MS = 10_000
# Members per card: the strip scrolls sideways inside the card, which stays one screen high at 1440x900;
# larger groups show the rest on their own page (?group=id); a decision on the card covers them all.
MEMBERS_PER_CARD = 16
BROWSER_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")


def _choice(value: str, allowed: list[str], default: str) -> str:
    return value if value in allowed else default


def _ids(values: list[str]) -> list[int] | None:
    """Posted ids as numbers; None when one isn't (the caller answers 400)."""
    try:
        return [whole_number(value, name="id", minimum=1) for value in values]
    except InvalidQueryParameter:
        return None


def _version(value: str) -> int | None:
    """A posted group version; None when it is empty or not a number."""
    try:
        return whole_number(value, name="version") if value else None
    except InvalidQueryParameter:
        return None


def _list_filters(request: HttpRequest) -> tuple[str, str, int | None]:
    """The list a review page shows: the band, the status, or one whole group (?group=id)."""
    kind = _choice(request.GET.get("kind", ""), DuplicatePair.Kind.values, DuplicatePair.Kind.NEAR_DUPLICATE)
    state = _choice(request.GET.get("status", ""), [*DuplicateGroup.Status.values, "all"], "pending")
    return kind, state, query_int(request.GET, "group", minimum=1)


def _groups(kind: str, state: str, single: int | None) -> QuerySet[DuplicateGroup]:
    if single is not None:
        return group_selectors.duplicate_group_list(status="all", min_size=0).filter(pk=single)
    return group_selectors.duplicate_group_list(kind=kind, status=state, member_limit=MEMBERS_PER_CARD)


def _cursor(request: HttpRequest, name: str) -> GroupCursor | None:
    text = request.GET.get(name, "")
    cursor = GroupCursor.parse(text) if text else None
    if text and cursor is None:
        raise InvalidQueryParameter(name, f"{name} must be a place in the list as the page links write it.")
    return cursor


def _url(path: str, request: HttpRequest, **changes: str) -> str:
    """`path` with the request's list filters (band, status, group) and `changes`."""
    query = QueryDict(mutable=True)
    for name in ("kind", "status", "group"):
        if request.GET.get(name):
            query[name] = request.GET[name]
    query.update(changes)
    return f"{path}?{query.urlencode()}" if query else path


def _card_context(reviews: list[group_selectors.GroupReview], here: str) -> dict[str, object]:
    """What _group_card.html needs besides its review: the page its forms return to (`here`), the formats the
    compare view shows as they are (others as a large WebP rendition)."""
    return {"reviews": reviews, "here": here, "browser_formats": BROWSER_FORMATS}


def _page(request: HttpRequest, status: int = 200) -> HttpResponse:
    """One page of the list, from a cursor (?after= or ?before= a group's place, as the links write it)."""
    kind, state, single = _list_filters(request)
    groups = _groups(kind, state, single)
    after, before = _cursor(request, "after"), _cursor(request, "before")
    if before is not None:
        rows = list(group_selectors.groups_before(groups, before).reverse()[:GROUPS_PER_PAGE])[::-1]
    else:
        rows = list((groups if after is None else group_selectors.groups_after(groups, after))[:GROUPS_PER_PAGE])
    first, last = (GroupCursor.of(rows[0]), GroupCursor.of(rows[-1])) if rows else (None, None)
    remaining = group_selectors.groups_after(groups, last).count() if last is not None else 0
    earlier = first is not None and (after or before) and group_selectors.groups_before(groups, first).exists()
    reviews = group_selectors.group_reviews(rows, member_limit=None if single is not None else MEMBERS_PER_CARD)
    here = request.get_full_path() if request.method == "GET" else _url(reverse("duplicates:review"), request)
    pending = [review for review in reviews if review.group.status == DuplicateGroup.Status.PENDING]
    thresholds = threshold_selectors.thresholds_overview()  # read once: the bands and the thresholds panel
    review_url = reverse("duplicates:review")
    # In-place loading continues this page: from its first group on (from the start on the first page).
    cards = {"from": str(first)} if first is not None and (after or before) else {}
    return render(
        request,
        "duplicates/review.html",
        {
            **_card_context(reviews, here),
            "counts": group_selectors.duplicate_group_counts(),
            "kind": kind,
            "status": state,
            "single": single,
            "bands": threshold_selectors.duplicate_bands(thresholds=thresholds.thresholds),
            "thresholds_overview": thresholds,
            "backlog": detection_selectors.detection_backlog(),
            "detection_poll_ms": DETECTION_POLL_MS,
            "page_files": sum(len(review.suggested_trash) for review in pending),
            "page_bytes": sum(review.bytes_suggested_trash for review in pending),
            "page_groups": pending,
            "remaining": remaining,
            "per_page": GROUPS_PER_PAGE,
            "paged": bool(after or before),
            "first_url": _url(review_url, request),
            "next_url": _url(review_url, request, after=str(last)) if remaining else "",
            "previous_url": _url(review_url, request, before=str(first)) if earlier else "",
            "cards_url": _url(reverse("duplicates:review-cards"), request, **cards),
        },
        status=status,
    )


@staff_required
def review_cards(request: HttpRequest) -> HttpResponse:
    """The cards that continue a review page in place (static/group-review.js): the first `limit` groups of
    the list that are not on the page yet (`exclude`, comma-separated ids), from the page's first group on
    (`from`); or the one group `card` as it stands now. X-Groups-Remaining counts the list's groups still
    neither on the page nor in this answer; X-Next-Url is the page after the last of them. `here`: the page
    the cards' forms return to without JavaScript."""
    kind, state, single = _list_filters(request)
    groups = _groups(kind, state, single)
    card = query_int(request.GET, "card", minimum=1)
    limit = query_int(request.GET, "limit", default=GROUPS_PER_PAGE, minimum=1, maximum=MAX_CARDS_PER_REQUEST)
    exclude = _ids([value for value in request.GET.get("exclude", "").split(",") if value])
    if exclude is None or len(exclude) > MAX_EXCLUDED:
        raise InvalidQueryParameter("exclude", f"exclude must be up to {MAX_EXCLUDED} comma-separated group ids.")
    start = _cursor(request, "from")
    members = None if single is not None else MEMBERS_PER_CARD
    if card is not None:
        listed = group_selectors.duplicate_group_list(status="all", min_size=0, member_limit=members)
        rows, remaining = list(listed.filter(pk=card)), None
        if not rows:
            raise Http404(f"No group #{card}.")
    else:
        rest = (groups if start is None else group_selectors.groups_after(groups, start, inclusive=True)).exclude(
            pk__in=exclude
        )
        rows = list(rest[:limit])
        remaining = rest.exclude(pk__in=[row.pk for row in rows]).count()
    reviews = group_selectors.group_reviews(rows, member_limit=members)
    here = request.GET.get("here", "")
    if not here.startswith("/duplicates/"):
        here = _url(reverse("duplicates:review"), request)
    response = render(request, "duplicates/_group_cards.html", _card_context(reviews, here))
    if remaining is not None:
        response["X-Groups-Remaining"] = str(remaining)
        if rows:  # the page's "Next groups" link once these cards are on it
            response["X-Next-Url"] = _url(reverse("duplicates:review"), request, after=str(GroupCursor.of(rows[-1])))
    return response


@staff_required
def review(request: HttpRequest) -> HttpResponse:
    return _page(request)


@staff_required
@require_POST
def group_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    """The card's form: `action`, the `member` ids shown, the `keep` ids ticked, the members shown apart that
    were ticked for the `trash`, the `version` and `members_digest` shown (the decision covers every member)."""
    group = get_object_or_404(DuplicateGroup, pk=pk)
    action = request.POST.get("action", "")
    members, keep = _ids(request.POST.getlist("member")), _ids(request.POST.getlist("keep"))
    aside_trash = _ids(request.POST.getlist("trash"))
    version = request.POST.get("version", "")
    if members is None or keep is None or aside_trash is None or (version and _version(version) is None):
        messages.error(request, "Member ids and the version must be whole numbers. Nothing was changed.")
        return _page(request, status=400)
    fields: dict[str, object] = {"members": members or None}
    if action == GroupAction.KEEP:
        fields = {"keep": keep, "trash": [x for x in members if x not in keep] + aside_trash}
    fields["members_digest"] = request.POST.get("members_digest") or None
    try:
        decision = duplicate_group_resolve(
            group=group,
            action=action,
            user=request.user,
            version=_version(version),
            source="web",
            **fields,  # type: ignore[arg-type]
        )
    except GroupReviewError as error:
        messages.error(request, f"{error.message}")
        return _page(request, status=error.status)
    if decision.trashed_ids:
        messages.success(
            request,
            f"Group #{pk}: kept {len(decision.kept_ids)}, moved {len(decision.trashed_ids)} to the trash "
            f"({filesizeformat(decision.bytes_trashed)}).",
        )
    else:
        messages.success(request, f"Group #{pk}: {decision.get_action_display().lower()}.")
    return redirect_back(request, "duplicates:review")


@staff_required
@require_POST
def group_undo(request: HttpRequest, pk: int) -> HttpResponse:
    group = get_object_or_404(DuplicateGroup, pk=pk)
    try:
        duplicate_group_undo_latest(group=group, user=request.user)
    except GroupReviewError as error:
        messages.error(request, error.message)
        return _page(request, status=error.status)
    messages.success(request, f"Group #{pk}: undone, back to pending.")
    return redirect_back(request, "duplicates:review")


@staff_required
@require_POST
def groups_apply_suggestions(request: HttpRequest) -> HttpResponse:
    """ "Apply the suggestion to every group on this page": `group` ids with their `version-<id>` and
    `digest-<id>` as shown (each decision covers every member of its group)."""
    ids = _ids(request.POST.getlist("group"))
    if not ids:
        messages.error(request, "No groups were sent. Nothing was changed.")
        return _page(request, status=400)
    done, files, size, refused = 0, 0, 0, []
    for group in DuplicateGroup.objects.filter(pk__in=ids).order_by("id"):
        version = request.POST.get(f"version-{group.pk}", "")
        shown = _ids(request.POST.getlist(f"member-{group.pk}"))
        try:
            decision = duplicate_group_resolve(
                group=group,
                action=GroupAction.SUGGESTION,
                user=request.user,
                members=shown or None,
                version=_version(version),
                members_digest=request.POST.get(f"digest-{group.pk}") or None,
                source="web",
            )
        except GroupReviewError as error:
            refused.append(f"#{group.pk}: {error.message}")
            continue
        done += 1
        files += len(decision.trashed_ids)
        size += decision.bytes_trashed
    messages.success(
        request, f"Applied the suggestion to {done} group(s): {files} file(s), {filesizeformat(size)} to the trash."
    )
    for message in refused:
        messages.error(request, message)
    return redirect_back(request, "duplicates:review")


@staff_required
@require_POST
def group_decision_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo from the decision log: trashed images come back and the group is pending again."""
    decision = get_object_or_404(DuplicateGroupDecision, pk=pk)
    try:
        duplicate_group_decision_undo(decision=decision, user=request.user)
    except GroupReviewError as error:
        messages.error(request, f"Group decision #{pk}: {error.message}")
    else:
        messages.success(request, f"Group decision #{pk} undone: group #{decision.group_number} is pending again.")
    return redirect_back(request, "duplicates:decisions")


@staff_required
@require_POST
def unstack(request: HttpRequest, pk: int) -> HttpResponse:
    """Unstack from the image page or the library grid (`next`: the page to go back to)."""
    image = get_object_or_404(Image.objects.defer("embedding"), pk=pk)
    try:
        decision = image_unstack(image=image, user=request.user)
    except GroupReviewError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Unstacked: the {len(decision.member_ids)} images show one by one in the library again; "
            f"group #{decision.group_number} is pending review.",
        )
    return redirect_back(request, reverse("gallery:image-detail", args=[pk]))
