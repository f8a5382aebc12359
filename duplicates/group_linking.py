"""Turn look-alike pairs into groups for review: pure logic (numpy only, no Django).

Plain connected components chain: one wrong pair between two photos with fifty copies each makes a
group of a hundred. The product's rule (`linked_groups`) is agglomerative, strongest pairs first, and two
groups merge only when they are linked by at least `min_links` times as many pairs as the smaller group has
members (a single wrong pair never merges two groups of two or more; a lone image joins through one pair).
bench/duplicates.py compares it with connected components and with star (leader) clustering on the dev
photos and reports group purity and completeness; the rule and its default were chosen there.

The near-duplicate band uses `attached_labels`: the shared-match rule, then every image it left out joins the
group that holds most of its matches. In a large family of strongly edited copies a copy's few matches are
rarely shared by its partners' many, so the shared-match rule alone leaves a fifth of such copies in no group
(bench/review_safety.py measures it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

# links(A, B) >= MIN_LINKS * min(|A|, |B|) merges A and B: measured in bench/duplicates.py (purity and
# completeness on neardup-dev + distractors-dev, and with wrong pairs injected between families).
MIN_LINKS = 0.5
# A pair is backed up when its images share this fraction of their other matches (shared_labels). Group
# purity and completeness of the near-duplicates stay the same over a wide range of it, and wrong pairs
# injected between families leave them as they are, where connected components chain (bench/duplicates.py,
# figures in bench/README.md).
MIN_SHARED = 0.5
# The similar band links look-alike scenes loosely (many photos of the sea match each other), so its groups
# must be tighter: a stricter setting keeps the largest similar group small and purer (bench/README.md). Its
# default decision is "keep all" anyway.
SIMILAR_MIN_SHARED = 0.9
# An image the shared-match rule left out joins the group holding more than this share of its pairs into
# groups (a strict majority: a copy matching one member of each of two groups joins neither).
ATTACH_MIN_SHARE = 0.5
# Passes of attaching: a copy matching only copies that were attached in the pass before joins in the next.
ATTACH_PASSES = 2
# Passes over the pairs: a merge can make a rejected one acceptable later; these converge in two or three.
MAX_PASSES = 8

RULES = ("attached", "shared", "linked", "components", "leader")


def _positions(
    ids: Sequence[int] | np.ndarray, first: Iterable[int], second: Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node ids as a sorted array, the pairs as positions in it, and which pairs name known ids."""
    nodes = np.unique(np.asarray(list(ids), dtype=np.int64))
    a = np.asarray(list(first), dtype=np.int64)
    b = np.asarray(list(second), dtype=np.int64)
    pa, pb = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    known = (pa < nodes.shape[0]) & (pb < nodes.shape[0])
    known[known] &= (nodes[pa[known]] == a[known]) & (nodes[pb[known]] == b[known])
    return nodes, np.minimum(pa, len(nodes) - 1), np.minimum(pb, len(nodes) - 1), known


def _labels_to_groups(nodes: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Groups of two or more, largest first, each sorted; singletons are not groups."""
    groups: dict[int, list[int]] = {}
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        groups.setdefault(label, []).append(node)
    found = [sorted(members) for members in groups.values() if len(members) >= 2]
    return sorted(found, key=lambda members: (-len(members), members[0]))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[x] != root:
            self.parent[x], x = root, int(self.parent[x])
        return root

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(self.parent.shape[0])], dtype=np.int64)


def component_labels(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected components (the baseline that chains): label per node."""
    sets = _UnionFind(n)
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        ra, rb = sets.find(a), sets.find(b)
        if ra != rb:
            if sets.size[ra] < sets.size[rb]:
                ra, rb = rb, ra
            sets.parent[rb] = ra
            sets.size[ra] += sets.size[rb]
    return sets.labels()


def leader_labels(n: int, first: np.ndarray, second: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """Star clustering: the free node with the most free neighbours (then the highest total cosine) leads a
    group of itself and its free neighbours; every member matches the leader directly."""
    neighbours: list[dict[int, float]] = [{} for _ in range(n)]
    for a, b, score in zip(first.tolist(), second.tolist(), cosine.tolist(), strict=True):
        neighbours[a][b] = neighbours[b][a] = max(score, neighbours[a].get(b, -1.0))
    labels = np.arange(n, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    while True:
        best, best_key = -1, (0, 0.0)
        for node in np.flatnonzero(free).tolist():
            links = [score for other, score in neighbours[node].items() if free[other]]
            key = (len(links), sum(links))
            if key > best_key:
                best, best_key = node, key
        if best < 0:
            return labels
        members = [best, *(other for other in neighbours[best] if free[other])]
        labels[members] = best
        free[members] = False


def shared_labels(n: int, first: np.ndarray, second: np.ndarray, *, min_shared: float = MIN_SHARED) -> np.ndarray:
    """Connected components over the pairs that other members back up: a pair (u, v) stays when u and v
    share at least min_shared x min(deg(u) - 1, deg(v) - 1) other matches (always, when one of them has no
    other match: a lone copy joins through its only pair). A wrong pair between two families shares nothing."""
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    keep = np.zeros(first.shape[0], dtype=bool)
    for position, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        others = min(len(neighbours[a]), len(neighbours[b])) - 1
        keep[position] = a != b and (others <= 0 or len(neighbours[a] & neighbours[b]) >= min_shared * others)
    return component_labels(n, first[keep], second[keep])


def attached_labels(
    n: int,
    first: np.ndarray,
    second: np.ndarray,
    *,
    min_shared: float = MIN_SHARED,
    min_share: float = ATTACH_MIN_SHARE,
    passes: int = ATTACH_PASSES,
) -> np.ndarray:
    """shared_labels, then each image left in no group joins the group holding more than min_share of its
    pairs into groups (its pair with the group's photos is a match of the band; that its partners' other
    matches are not shared says nothing against it). A wrong pair from a left-out copy to another family is
    outvoted by its pairs to its own."""
    labels = shared_labels(n, first, second, min_shared=min_shared)
    for _ in range(passes):
        size = np.bincount(labels, minlength=n)
        votes: dict[int, Counter[int]] = {}
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            for node, other in ((a, b), (b, a)):
                if size[labels[node]] == 1 and size[labels[other]] >= 2:
                    votes.setdefault(node, Counter())[int(labels[other])] += 1
        joined = {}
        for node, counts in votes.items():
            label, count = counts.most_common(1)[0]
            if count > min_share * sum(counts.values()):
                joined[node] = label
        if not joined:
            break
        for node, label in joined.items():
            labels[node] = label
    return labels


def linked_labels(
    n: int, first: np.ndarray, second: np.ndarray, cosine: np.ndarray, *, min_links: float = MIN_LINKS
) -> np.ndarray:
    """Agglomerative, strongest pairs first: groups A and B merge when the pairs between them number at
    least min_links x min(|A|, |B|). Repeated until nothing merges (at most MAX_PASSES)."""
    sets = _UnionFind(n)
    links: list[Counter[int]] = [Counter() for _ in range(n)]
    order = np.argsort(-cosine, kind="stable")
    first, second = first[order], second[order]
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        if a != b:
            links[a][b] += 1
            links[b][a] += 1
    for _ in range(MAX_PASSES):
        merged = False
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            ra, rb = sets.find(a), sets.find(b)
            if ra == rb:
                continue
            smaller = min(int(sets.size[ra]), int(sets.size[rb]))
            if links[ra][rb] < min_links * smaller:
                continue
            if sets.size[ra] < sets.size[rb]:
                ra, rb = rb, ra
            sets.parent[rb] = ra
            sets.size[ra] += sets.size[rb]
            for other, count in links[rb].items():
                if other == ra:
                    continue
                links[ra][other] += count
                links[other][ra] += count
                del links[other][rb]
            del links[ra][rb]
            links[rb] = Counter()
            merged = True
        if not merged:
            break
    return sets.labels()


def group_pairs(
    *,
    ids: Sequence[int] | np.ndarray,
    first: Iterable[int],
    second: Iterable[int],
    cosine: Iterable[float],
    rule: str = "shared",
    min_links: float = MIN_LINKS,
    min_shared: float = MIN_SHARED,
) -> list[list[int]]:
    """Groups (two or more ids each, largest first) of the images `ids` linked by the pairs first-second."""
    nodes, pa, pb, known = _positions(ids, first, second)
    scores = np.asarray(list(cosine), dtype=np.float64)
    pa, pb, scores = pa[known], pb[known], scores[known]
    n = nodes.shape[0]
    if rule == "attached":
        labels = attached_labels(n, pa, pb, min_shared=min_shared)
    elif rule == "components":
        labels = component_labels(n, pa, pb)
    elif rule == "leader":
        labels = leader_labels(n, pa, pb, scores)
    elif rule == "shared":
        labels = shared_labels(n, pa, pb, min_shared=min_shared)
    elif rule == "linked":
        labels = linked_labels(n, pa, pb, scores, min_links=min_links)
    else:
        raise ValueError(f"unknown grouping rule {rule!r}; use one of {', '.join(RULES)}")
    return _labels_to_groups(nodes, labels)
