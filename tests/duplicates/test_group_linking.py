"""The grouping rule on its own: no chaining through one wrong pair, lone copies join, ids kept."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from duplicates.group_linking import group_pairs


def clique(ids: list[int], score: float = 0.95) -> list[tuple[int, int, float]]:
    return [(a, b, score) for a, b in itertools.combinations(ids, 2)]


def run(pairs: list[tuple[int, int, float]], rule: str = "shared", ids: list[int] | None = None) -> list[list[int]]:
    nodes = ids if ids is not None else sorted({x for a, b, _ in pairs for x in (a, b)})
    return group_pairs(
        ids=nodes,
        first=[a for a, _, _ in pairs],
        second=[b for _, b, _ in pairs],
        cosine=[s for _, _, s in pairs],
        rule=rule,
    )


def test_one_wrong_pair_does_not_chain_two_large_groups():
    left, right = list(range(100, 106)), list(range(200, 206))
    pairs = clique(left) + clique(right) + [(103, 204, 0.99)]  # the wrong pair scores highest
    assert run(pairs) == [left, right]
    assert run(pairs, rule="components") == [sorted(left + right)]  # what the baseline does


def test_a_copy_linked_to_one_member_only_joins_its_group():
    family = [1, 2, 3, 4]
    pairs = [*clique(family), (4, 9, 0.80)]  # 9: a heavy crop that only matches image 4
    assert run(pairs) == [[1, 2, 3, 4, 9]]


def test_two_halves_of_one_photo_linked_by_backed_up_pairs_merge():
    left, right = [1, 2, 3], [4, 5, 6]
    bridges = [(1, 4, 0.9), (2, 4, 0.9), (1, 5, 0.9), (2, 5, 0.9)]  # 1-4 is backed by 2 and 5
    assert run(clique(left) + clique(right) + bridges) == [[1, 2, 3, 4, 5, 6]]


def test_a_bridge_image_matching_one_member_of_each_family_joins_neither_to_the_other():
    left, right = [1, 2, 3, 4], [5, 6, 7, 8]
    pairs = clique(left) + clique(right) + [(4, 9, 0.9), (9, 5, 0.9)]
    groups = run(pairs)
    assert [1, 2, 3, 4] in groups
    assert [5, 6, 7, 8] in groups
    assert run(pairs, rule="components") == [[1, 2, 3, 4, 5, 6, 7, 8, 9]]


def test_linked_rule_merges_groups_only_through_several_pairs():
    left, right = [1, 2, 3], [4, 5, 6]
    assert run(clique(left) + clique(right) + [(1, 4, 0.9)], rule="linked") == [left, right]
    bridges = [(1, 4, 0.9), (2, 5, 0.9)]  # 2 pairs >= 0.5 x 3
    assert run(clique(left) + clique(right) + bridges, rule="linked") == [[1, 2, 3, 4, 5, 6]]


def test_star_rule_keeps_only_the_leaders_direct_matches():
    pairs = [(1, 2, 0.9), (1, 3, 0.9), (1, 4, 0.9), (4, 5, 0.9)]
    assert run(pairs, rule="leader") == [[1, 2, 3, 4]]


def test_singletons_and_unknown_ids_make_no_group():
    assert run([(1, 2, 0.9)], ids=[1, 2, 3]) == [[1, 2]]
    assert run([(1, 7, 0.9)], ids=[1, 2]) == []
    assert run([], ids=[1, 2]) == []


def test_large_ids_and_numpy_input():
    ids = np.array([10**12, 10**12 + 5, 3], dtype=np.int64)
    groups = group_pairs(ids=ids, first=np.array([3]), second=np.array([10**12 + 5]), cosine=np.array([0.9]))
    assert groups == [[3, 10**12 + 5]]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown grouping rule"):
        group_pairs(ids=[1, 2], first=[1], second=[2], cosine=[0.9], rule="magic")


def test_a_left_out_copy_joins_the_group_holding_most_of_its_pairs_not_a_wrong_one():
    family, other = [1, 2, 4, 5, 6], [10, 11, 12, 13]
    pairs = [pair for pair in clique(family) if pair[:2] != (1, 2)] + clique(other)
    pairs += [(1, 3, 0.9), (2, 3, 0.9), (3, 12, 0.95)]  # 3: a copy whose own pair 1-2 was missed; 3-12 is wrong
    assert run(pairs) == [[1, 2, 4, 5, 6], [10, 11, 12, 13]]  # the shared-match rule leaves 3 out
    assert run(pairs, rule="attached") == [[1, 2, 3, 4, 5, 6], [10, 11, 12, 13]]
