"""search.index: PCA + HNSW against exact search, the rating term, the file format and its failure modes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest

from search.index import scoring, vector_index
from search.index.scoring import (
    BATCH_FROM_QUERIES,
    combined_score,
    exact_search,
    merge_results,
    rating_features,
    rerank,
)
from search.index.tail import VectorTail
from search.index.vector_index import IndexFileError, IndexParams, VectorIndex, build_index, choose_kind

REPO_ROOT = Path(__file__).resolve().parents[2]
DIM = 512


def clustered_vectors(count: int, *, seed: int, centres: int = 60) -> np.ndarray:
    """Unit vectors around a few dozen centres, a decaying spectrum and a shared offset, like CNN features."""
    rng = np.random.default_rng(1234)
    scale = (np.arange(DIM) + 1.0) ** -0.4
    scale /= np.linalg.norm(scale)
    offset = np.abs(rng.standard_normal(DIM))
    offset /= np.linalg.norm(offset)
    centre_vectors = rng.standard_normal((centres, DIM)) * scale
    rng = np.random.default_rng(seed)
    points = centre_vectors[rng.integers(0, centres, count)] + 0.7 * rng.standard_normal((count, DIM)) * scale
    points += offset
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def library() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5,000 clustered vectors under non-contiguous primary keys, 40 % unrated."""
    rng = np.random.default_rng(7)
    vectors = clustered_vectors(5000, seed=1)
    ids = np.arange(5000, dtype=np.int64) * 3 + 1000
    ratings = rng.integers(0, 6, 5000).astype(np.float64)
    ratings[rng.random(5000) < 0.4] = np.nan
    return ids, vectors, ratings


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered_vectors(40, seed=2)


@pytest.fixture(scope="module")
def query_ratings() -> list[float | None]:
    return [float(i % 6) if i % 2 else None for i in range(40)]


@pytest.fixture(scope="module")
def hnsw_index(library: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VectorIndex:
    ids, vectors, ratings = library
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one thread builds the same graph every run
    try:
        return build_index(ids=ids, vectors=vectors, ratings=ratings, params=IndexParams(exact_below=2048))
    finally:
        faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def exact_index(library: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VectorIndex:
    ids, vectors, ratings = library
    return build_index(ids=ids, vectors=vectors, ratings=ratings, params=IndexParams(exact_below=10_000))


def test_hnsw_with_rerank_finds_the_same_top10_as_exact_search(
    library, queries, query_ratings, hnsw_index, exact_index
):
    ids, vectors, ratings = library
    assert hnsw_index.kind == "hnsw"
    assert exact_index.kind == "exact"
    assert hnsw_index.metadata["pca_dim"] == 128
    assert hnsw_index.metadata["indexed_dim"] == 130

    _, candidates = hnsw_index.search(queries, k=hnsw_index.candidate_count(10), query_ratings=query_ratings)
    wanted = np.unique(candidates[candidates >= 0])
    positions = np.searchsorted(ids, wanted)
    reranked_scores, reranked_ids = rerank(
        query_vectors=queries,
        query_ratings=query_ratings,
        candidate_ids=candidates,
        ids=wanted,
        vectors=vectors[positions],
        ratings=ratings[positions],
        k=10,
        weight=hnsw_index.params.rating_weight,
    )
    exact_scores, exact_ids = exact_index.search(queries, k=10, query_ratings=query_ratings)
    brute_scores, brute_ids = exact_search(
        query_vectors=queries,
        query_ratings=query_ratings,
        ids=ids,
        vectors=vectors,
        ratings=ratings,
        k=10,
        weight=0.05,
    )

    for row in range(queries.shape[0]):
        assert set(reranked_ids[row]) == set(exact_ids[row]) == set(brute_ids[row]), row
    np.testing.assert_allclose(np.sort(reranked_scores, axis=1), np.sort(exact_scores, axis=1), atol=1e-5)
    np.testing.assert_allclose(brute_scores, exact_scores, atol=1e-5)


def test_hnsw_scores_are_pca_cosine_plus_rating_term(hnsw_index, queries):
    scores, ids = hnsw_index.search(queries[:5], k=10)

    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert np.all(scores <= 1.0 + 1e-5)
    assert np.all(ids >= 1000)


def identical_looking_library(*, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, IndexParams]:
    """Seven copies of one vector rated 0..5 and unrated, among 3,000 unrelated vectors."""
    rng = np.random.default_rng(3)
    filler = rng.standard_normal((3000, DIM)).astype(np.float32)
    base = np.abs(rng.standard_normal(DIM)).astype(np.float32)
    vectors = np.vstack([np.tile(base, (7, 1)), filler])
    ratings = np.concatenate([[0, 1, 2, 3, 4, 5, np.nan], np.full(3000, np.nan)])
    ids = np.arange(vectors.shape[0], dtype=np.int64) + 1
    return ids, vectors, ratings, IndexParams(rating_weight=weight, exact_below=2048)


@pytest.mark.parametrize("exact_below", [2048, 100_000], ids=["hnsw", "exact"])
def test_among_identical_images_the_closer_rating_ranks_first(exact_below):
    ids, vectors, ratings, params = identical_looking_library(weight=0.05)
    index = build_index(ids=ids, vectors=vectors, ratings=ratings, params=replace(params, exact_below=exact_below))

    scores, found = index.search(vectors[:1], k=7, query_ratings=[3.0])

    # id = rating + 1; id 7 is unrated. Distances 0, 1, 1, 2, 2, then unrated (neutral), then 3.
    assert found[0, 0] == 4
    assert set(found[0, 1:3]) == {3, 5}
    assert set(found[0, 3:5]) == {2, 6}
    assert found[0, 5] == 7
    assert found[0, 6] == 1
    term = 0.05 * np.cos(np.pi * np.array([0, 1, 1, 2, 2, 3]) / 5)
    np.testing.assert_allclose(scores[0, [0, 1, 2, 3, 4, 6]], 1.0 + term, atol=1e-5)
    np.testing.assert_allclose(scores[0, 5], 1.0, atol=1e-5)


def test_unrated_query_and_zero_weight_rank_purely_visually():
    ids, vectors, ratings, params = identical_looking_library(weight=0.05)
    rng = np.random.default_rng(9)
    closer = vectors[0] + 0.005 * rng.standard_normal(DIM).astype(np.float32) * np.linalg.norm(vectors[0])
    vectors = np.vstack([vectors, closer[None, :] * 1.5])  # a different, slightly less similar image
    ids = np.append(ids, 9999)
    ratings = np.append(ratings, 3.0)
    query = vectors[6:7]  # the unrated copy, so its visual twins are ids 1..7

    weighted = build_index(ids=ids, vectors=vectors, ratings=ratings, params=replace(params, exact_below=10**6))
    purely_visual = build_index(
        ids=ids,
        vectors=vectors,
        ratings=ratings,
        params=replace(params, rating_weight=0.0, exact_below=10**6),
    )
    unrated_scores, unrated_ids = weighted.search(query, k=8, query_ratings=[None])
    rated_ids = weighted.search(query, k=8, query_ratings=[3.0])[1]
    visual_scores, visual_ids = purely_visual.search(query, k=8, query_ratings=[3.0])

    # Rated 3, the slightly less similar image rated 3 beats the identical copies rated 0, 1, 5 and unrated...
    rank = list(rated_ids[0])
    assert all(rank.index(9999) < rank.index(twin) for twin in (1, 2, 6, 7))
    # ...but with weight 0 or an unrated query it ranks last of the eight: looks alone decide.
    assert visual_ids[0, -1] == 9999
    assert unrated_ids[0, -1] == 9999
    np.testing.assert_allclose(visual_scores[0, :7], 1.0, atol=1e-5)
    np.testing.assert_allclose(unrated_scores, visual_scores, atol=1e-6)


def test_rating_features_inner_product_is_the_combined_score_term():
    ratings = np.array([0, 1, 2, 3, 4, 5, np.nan])
    features = rating_features(ratings, weight=0.2)
    query = rating_features(np.array([4.0]), weight=0.2)

    expected = combined_score(np.zeros(7), 4.0, ratings, weight=0.2)

    np.testing.assert_allclose(features @ query[0], expected, atol=1e-6)
    np.testing.assert_allclose(expected[[4, 0, 6]], [0.2, -0.2 * np.cos(np.pi / 5), 0.0], atol=1e-6)
    assert np.array_equal(rating_features(np.array([np.nan]), weight=1.0), [[0.0, 0.0]])
    np.testing.assert_array_equal(combined_score(np.ones(7), None, ratings, weight=0.2), np.ones(7))
    with pytest.raises(ValueError, match="ratings"):
        rating_features(np.array([6.0]), weight=0.2)


def test_save_and_load_round_trip_gives_identical_results(tmp_path, hnsw_index, exact_index, queries):
    for index in (hnsw_index, exact_index):
        path = tmp_path / f"{index.kind}.index"
        checksum = index.save(path)

        loaded = VectorIndex.load(path)

        assert loaded.kind == index.kind
        np.testing.assert_array_equal(loaded.ids, index.ids)
        assert loaded.metadata["checksum"] == checksum
        assert loaded.metadata["file_bytes"] == path.stat().st_size
        assert path.stat().st_mode & 0o777 == 0o644  # readable by web processes running as another user
        assert {k: v for k, v in loaded.metadata.items() if k not in ("checksum", "file_bytes")} == index.metadata
        before, after = index.search(queries, k=20), loaded.search(queries, k=20)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_array_equal(after[0], before[0])


def test_damaged_files_raise_index_file_error_without_killing_the_process(tmp_path, hnsw_index):
    """Runs in a child process: faiss aborts the whole process on a bad blob, which must never happen."""
    good = tmp_path / "good.index"
    hnsw_index.save(good)
    data = good.read_bytes()
    trailer_start = len(data) - vector_index._TRAILER.size
    _, _, faiss_len, header_offset, _, _ = vector_index._TRAILER.unpack(data[trailer_start:])
    damaged = {
        "missing": None,
        "empty": b"",
        "truncated-trailer": data[:-30],
        "truncated-header": data[: header_offset + 10],
        "truncated-payload": data[: len(data) // 2],
        "one-byte-short": data[:-1],
        "one-byte-extra": data + b"\0",
        "bad-magic": data[:trailer_start] + b"NOTANIDX" + data[trailer_start + 8 :],
        "future-version": data[: trailer_start + 8] + (99).to_bytes(4, "little") + data[trailer_start + 12 :],
        "format-1-truncated": vector_index.FILE_MAGIC + (1).to_bytes(4, "little") + data[12:200],
    }
    for name, position in {
        "header": trailer_start - 20,
        "projection": faiss_len + 100,
        "faiss": 1000,
        "faiss-end": faiss_len - 1000,
    }.items():
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        damaged[f"flipped-{name}"] = bytes(flipped)
    paths = {}
    for name, content in damaged.items():
        paths[name] = str(tmp_path / f"{name}.index")
        if content is not None:
            Path(paths[name]).write_bytes(content)
    script = (
        "import json, sys\n"
        "from search.index.vector_index import IndexFileError, VectorIndex\n"
        "outcome = {}\n"
        "for name, path in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        VectorIndex.load(path)\n"
        "        outcome[name] = 'loaded'\n"
        "    except IndexFileError as exc:\n"
        "        outcome[name] = 'IndexFileError: ' + str(exc)\n"
        "print(json.dumps(outcome))\n"
    )

    child = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout)
    assert set(outcome) == set(damaged)
    for name, result in outcome.items():
        assert result.startswith("IndexFileError"), (name, result)
    assert "checksum" in outcome["flipped-faiss"]
    assert "truncated" in outcome["truncated-payload"]


def test_loaded_index_maps_the_stored_vectors_from_the_file_instead_of_copying_them(tmp_path, hnsw_index, queries):
    """Every process on a machine then shares one copy of the vectors (the page cache)."""
    path = tmp_path / "mapped.index"
    hnsw_index.save(path)

    loaded = VectorIndex.load(path)

    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(path))]
    assert mapped, "the index file is not memory-mapped"
    assert all(line.split()[1].startswith("r-") for line in mapped)  # read-only
    path.unlink()  # a rebuild deletes the superseded file: the mapping keeps serving
    np.testing.assert_array_equal(loaded.search(queries, k=10)[1], hnsw_index.search(queries, k=10)[1])


def test_format_1_files_written_before_the_mappable_layout_still_load(tmp_path, hnsw_index, queries):
    blob = faiss.serialize_index(hnsw_index._faiss_index)
    projection = hnsw_index._projection
    layout = [
        {"name": "projection", "dtype": projection.dtype.str, "shape": list(projection.shape), "offset": 0},
        {"name": "faiss_index", "dtype": blob.dtype.str, "shape": list(blob.shape), "offset": projection.nbytes},
    ]
    header = json.dumps({"metadata": hnsw_index.metadata, "sections": layout}, sort_keys=True).encode()
    body = header + projection.tobytes() + blob.tobytes()
    prefix = vector_index._PREFIX.pack(
        vector_index.FILE_MAGIC, 1, len(header), len(body) - len(header), hashlib.sha256(body).digest()
    )
    path = tmp_path / "old.index"
    path.write_bytes(prefix + body)

    loaded = VectorIndex.load(path)

    np.testing.assert_array_equal(loaded.search(queries, k=10)[1], hnsw_index.search(queries, k=10)[1])
    path.write_bytes(prefix + body[:-1] + bytes([body[-1] ^ 0xFF]))
    with pytest.raises(IndexFileError, match="checksum"):
        VectorIndex.load(path)


def test_contains_answers_membership_for_many_ids(hnsw_index):
    present = hnsw_index.ids[::7]
    absent = np.array([-5, 0, hnsw_index.ids.max() + 1, 10**12], dtype=np.int64)
    absent = absent[~np.isin(absent, hnsw_index.ids)]

    assert hnsw_index.contains(present).all()
    assert not hnsw_index.contains(absent).any()
    assert hnsw_index.contains(np.array([], dtype=np.int64)).shape == (0,)


def test_load_of_missing_file_raises_index_file_error(tmp_path):
    with pytest.raises(IndexFileError, match="no such index file"):
        VectorIndex.load(tmp_path / "never-built.index")


def test_failed_save_leaves_the_previous_index_serving(tmp_path, monkeypatch, library, exact_index, queries):
    ids, vectors, ratings = library
    path = tmp_path / "library.index"
    exact_index.save(path)
    old_bytes = path.read_bytes()
    newer = build_index(
        ids=ids[:100], vectors=vectors[:100], ratings=ratings[:100], params=IndexParams(exact_below=10_000)
    )
    real_write_all = vector_index._write_all

    def write_half_then_fail(stream, parts):
        real_write_all(stream, parts[:2])  # prefix and header reach the temp file, the payload doesn't
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vector_index, "_write_all", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        newer.save(path)

    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library.index"]  # temp file cleaned up
    served = VectorIndex.load(path)
    np.testing.assert_array_equal(served.search(queries, k=5)[1], exact_index.search(queries, k=5)[1])

    monkeypatch.undo()
    newer.save(path)
    assert len(VectorIndex.load(path)) == 100


@pytest.mark.parametrize("kind", ["hnsw", "exact"])
def test_excluded_ids_never_come_back_and_k_results_still_do(kind, hnsw_index, exact_index, queries):
    index = hnsw_index if kind == "hnsw" else exact_index
    nearest = index.search(queries, k=5)[1]

    _, found = index.search(queries, k=10, exclude_ids=nearest.ravel().tolist())

    assert not np.isin(found, nearest).any()
    assert np.all(found >= 0)
    reference = index.search(queries, k=10 + nearest.size)[1]
    for row in range(queries.shape[0]):
        kept = [i for i in reference[row] if i not in set(nearest.ravel())][:10]
        assert len(set(found[row]) & set(kept)) >= 8


def test_exact_search_excludes_ids(library, queries):
    ids, vectors, ratings = library
    first = exact_search(
        query_vectors=queries, query_ratings=None, ids=ids, vectors=vectors, ratings=ratings, k=3, weight=0.05
    )[1]

    found = exact_search(
        query_vectors=queries,
        query_ratings=None,
        ids=ids,
        vectors=vectors,
        ratings=ratings,
        k=3,
        weight=0.05,
        exclude_ids=first[:, 0],
    )[1]

    assert not np.isin(found, first[:, 0]).any()
    assert np.all(found >= 0)


def test_k_beyond_the_library_returns_what_exists_padded(library):
    ids, vectors, ratings = library
    small = build_index(ids=ids[:20], vectors=vectors[:20], ratings=ratings[:20], params=IndexParams())

    scores, found = small.search(vectors[:2], k=30)
    tail_scores, tail_ids = exact_search(
        query_vectors=vectors[:2],
        query_ratings=None,
        ids=ids[:20],
        vectors=vectors[:20],
        ratings=None,
        k=30,
        weight=0,
    )

    for result_scores, result_ids in ((scores, found), (tail_scores, tail_ids)):
        assert result_ids.shape == (2, 30)
        assert set(result_ids[0, :20]) == set(ids[:20])
        assert np.all(result_ids[:, 20:] == -1)
        assert np.all(np.isneginf(result_scores[:, 20:]))
        assert np.all(np.isfinite(result_scores[:, :20]))


def test_ef_search_is_raised_to_k(hnsw_index, queries):
    assert hnsw_index.params.ef_search < 300

    _, found = hnsw_index.search(queries[:3], k=300)

    assert np.all(found >= 0)
    assert all(np.unique(row).shape[0] == 300 for row in found)


def test_small_libraries_use_exact_search(library):
    ids, vectors, _ = library
    params = IndexParams()

    small = build_index(ids=ids[:500], vectors=vectors[:500], ratings=None, params=params)

    assert small.kind == "exact"
    assert small.metadata["pca_dim"] is None
    assert small.metadata["indexed_dim"] == DIM + 2
    assert choose_kind(count=params.exact_below - 1, full_dim=DIM, params=params) == "exact"
    assert choose_kind(count=params.exact_below, full_dim=DIM, params=params) == "hnsw"
    # Too few rows to fit a 512 -> 128 projection: exact whatever the threshold says.
    assert choose_kind(count=1000, full_dim=DIM, params=replace(params, exact_below=0)) == "exact"
    # Small backbones need no projection, only enough rows to make HNSW pay.
    assert choose_kind(count=1000, full_dim=64, params=replace(params, exact_below=0)) == "hnsw"


def test_empty_library_searches_to_nothing(tmp_path):
    empty = build_index(
        ids=np.array([], dtype=np.int64), vectors=np.zeros((0, DIM)), ratings=None, params=IndexParams()
    )
    empty.save(tmp_path / "empty.index")

    scores, found = VectorIndex.load(tmp_path / "empty.index").search(np.ones((1, DIM)), k=3)

    assert np.all(found == -1)
    assert np.all(np.isneginf(scores))


def test_rerank_drops_candidates_whose_vectors_are_gone(library, queries):
    ids, vectors, ratings = library
    candidates = np.array([[ids[0], ids[1], ids[2], -1, ids[3]], [ids[0], -1, -1, -1, -1]])
    known = [1, 2, 3]  # ids[0] was deleted since the build

    scores, found = rerank(
        query_vectors=queries[:2],
        query_ratings=[None, 2.0],
        candidate_ids=candidates,
        ids=ids[known][::-1],
        vectors=vectors[known][::-1],
        ratings=ratings[known][::-1],
        k=4,
        weight=0.05,
    )

    assert set(found[0, :3]) == set(ids[known])
    assert found[0, 3] == -1
    expected = queries[0] @ vectors[known].T
    np.testing.assert_allclose(np.sort(scores[0, :3]), np.sort(expected), atol=1e-5)
    assert np.all(found[1] == -1)  # nothing left to rank
    assert np.all(np.isneginf(scores[1]))


def test_merge_results_keeps_each_id_once_with_its_best_score():
    index_result = (np.array([[0.9, 0.8, 0.1]]), np.array([[5, 6, 7]]))
    tail_result = (np.array([[0.95, 0.85, -np.inf]]), np.array([[6, 8, -1]]))

    scores, found = merge_results(index_result, tail_result, k=5)

    np.testing.assert_array_equal(found, [[6, 5, 8, 7, -1]])
    np.testing.assert_allclose(scores[0, :4], [0.95, 0.9, 0.85, 0.1])
    assert np.isneginf(scores[0, 4])


def test_concurrent_searches_match_sequential_ones(hnsw_index, queries, query_ratings):
    def one(row: int) -> np.ndarray:
        return hnsw_index.search(
            queries[row : row + 1], k=10, query_ratings=query_ratings[row : row + 1], exclude_ids=[1000 + row]
        )[1][0]

    sequential = [one(row) for row in range(queries.shape[0])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(one, range(queries.shape[0])))

    for row in range(queries.shape[0]):
        np.testing.assert_array_equal(concurrent[row], sequential[row])


def test_bad_input_is_refused(library):
    ids, vectors, _ = library
    with pytest.raises(ValueError, match="unique"):
        build_index(ids=np.zeros(3, dtype=np.int64), vectors=vectors[:3], ratings=None, params=IndexParams())
    with pytest.raises(ValueError, match="ef_search"):
        IndexParams(ef_search=0)
    with pytest.raises(ValueError, match="rating_weight"):
        IndexParams(rating_weight=-1.0)
    small = build_index(ids=ids[:10], vectors=vectors[:10], ratings=None, params=IndexParams())
    with pytest.raises(ValueError, match="dims"):
        small.search(np.ones((1, 64)), k=3)
    with pytest.raises(ValueError, match="query_ratings"):
        small.search(vectors[:2], k=3, query_ratings=[1.0])


def test_tail_search_scores_like_exact_search_and_follows_replacements_and_removals(library, queries):
    ids, vectors, ratings = library
    tail = VectorTail(dim=DIM)
    tail.upsert(ids=ids[:300], vectors=vectors[:300], ratings=ratings[:300])
    before = tail.snapshot()
    tail.upsert(ids=ids[300:400], vectors=vectors[300:400], ratings=ratings[300:400])
    tail.upsert(ids=ids[:1], vectors=vectors[5:6], ratings=ratings[5:6])  # re-embedded: a new vector
    tail.remove(ids[10:20].tolist())
    query_ratings = [3.0] * queries.shape[0]

    scores, found = tail.snapshot().search(
        queries, k=10, query_ratings=query_ratings, weight=0.05, exclude_ids=[int(ids[7])]
    )

    live = np.setdiff1d(np.arange(400), np.r_[10:20, 7, 0])
    expected = exact_search(
        query_vectors=queries,
        query_ratings=query_ratings,
        ids=np.r_[ids[live], ids[:1]],
        vectors=np.vstack([vectors[live], vectors[5:6]]),
        ratings=np.r_[ratings[live], ratings[5:6]],
        k=10,
        weight=0.05,
    )
    np.testing.assert_array_equal(found, expected[1])
    np.testing.assert_allclose(scores, expected[0], atol=1e-5)
    assert len(tail) == 390
    assert len(before) == 300  # a snapshot taken earlier is unchanged by later writes
    assert ids[10] in before.ids[before.alive]


def test_tail_compacts_once_half_of_it_is_retired(library):
    ids, vectors, ratings = library
    tail = VectorTail(dim=DIM)
    tail.upsert(ids=ids[:2000], vectors=vectors[:2000], ratings=ratings[:2000])
    tail.remove(ids[:1500].tolist())
    snapshot = tail.snapshot()
    assert snapshot.ids.shape[0] == 500
    assert snapshot.alive.all()
    np.testing.assert_array_equal(np.sort(snapshot.ids), np.sort(ids[1500:2000]))


def test_stored_vectors_round_trip_mapped_from_the_file(tmp_path, library, hnsw_index):
    ids, vectors, ratings = library
    shuffled = np.random.default_rng(0).permutation(ids.shape[0])
    carrying = hnsw_index.with_stored_vectors(ids=ids[shuffled], vectors=vectors[shuffled], ratings=ratings[shuffled])
    path = tmp_path / "with-vectors.index"
    carrying.save(path)

    loaded = VectorIndex.load(path)

    wanted = np.array([ids[42], ids[7], -1, ids[4999]])
    found, stored, stored_ratings = loaded.stored(wanted)
    np.testing.assert_array_equal(found, np.sort(wanted[wanted >= 0]))
    positions = np.searchsorted(ids, found)
    np.testing.assert_allclose(
        stored, vectors[positions] / np.linalg.norm(vectors[positions], axis=1)[:, None], atol=1e-6
    )
    np.testing.assert_array_equal(stored_ratings, ratings[positions].astype(np.float32))
    assert isinstance(loaded._stored_vectors, np.memmap)  # shared page cache, not a private copy
    assert not hnsw_index.has_stored_vectors
    with pytest.raises(ValueError, match="exactly the index's ids"):
        hnsw_index.with_stored_vectors(ids=ids[:10], vectors=vectors[:10], ratings=None)


def test_rerank_scores_a_repeated_candidate_once(library, queries):
    ids, vectors, ratings = library
    candidates = np.array([[ids[0], ids[1], ids[0], ids[2]]])

    _, found = rerank(
        query_vectors=queries[:1],
        query_ratings=None,
        candidate_ids=candidates,
        ids=ids[:3],
        vectors=vectors[:3],
        ratings=ratings[:3],
        k=4,
        weight=0.0,
    )

    assert sorted(found[0, :3].tolist()) == sorted(ids[:3].tolist())
    assert found[0, 3] == -1


def test_a_batch_of_queries_scores_like_the_same_queries_one_by_one(library, queries):
    """Batches go through BLAS, single queries through faiss's one-core kernel: the same results."""
    ids, vectors, ratings = library
    tail = VectorTail(dim=DIM)
    tail.upsert(ids=ids[:500], vectors=vectors[:500], ratings=ratings[:500])
    snapshot = tail.snapshot()
    batch = queries[: BATCH_FROM_QUERIES + 2]
    query_ratings = [float(n % 6) if n % 2 else None for n in range(batch.shape[0])]

    together = snapshot.search(batch, k=7, query_ratings=query_ratings, weight=0.05, exclude_ids=[int(ids[3])])
    for row in range(batch.shape[0]):
        alone = snapshot.search(
            batch[row : row + 1],
            k=7,
            query_ratings=query_ratings[row : row + 1],
            weight=0.05,
            exclude_ids=[int(ids[3])],
        )
        np.testing.assert_array_equal(alone[1][0], together[1][row])
        np.testing.assert_allclose(alone[0][0], together[0][row], atol=1e-5)
    assert not np.isin(together[1], [ids[3]]).any()


@pytest.mark.parametrize("k", [1, 2, 10])
def test_a_large_batch_over_the_tail_finds_what_scoring_every_row_finds(library, monkeypatch, k):
    """A batch of a few hundred queries (duplicate detection) goes through faiss's blocked k-NN instead of the
    whole score matrix: the same ids and scores as each query alone, with retired rows, excluded ids and exact
    copies tied at the k-th place (the smaller id wins)."""
    ids, vectors, ratings = library
    tail = VectorTail(dim=DIM)
    tail.upsert(ids=ids[:3000], vectors=vectors[:3000], ratings=ratings[:3000])
    tail.upsert(ids=ids[3000:3300], vectors=vectors[:300], ratings=ratings[:300])  # copies under larger ids
    many = np.random.default_rng(3).permutation(ids[3300:3400])  # 100 more copies of one: more than faiss returns
    tail.upsert(ids=many, vectors=np.repeat(vectors[299:300], 100, axis=0), ratings=ratings[3300:3400])
    tail.upsert(ids=ids[10:20], vectors=vectors[20:30], ratings=ratings[20:30])  # re-embedded
    tail.remove(ids[40:60].tolist())
    snapshot = tail.snapshot()
    batch = vectors[:300]  # each query's best two are a tie: itself and its copy
    calls = []
    blocked = scoring._blocked_top_k
    monkeypatch.setattr(scoring, "_blocked_top_k", lambda *a, **kw: calls.append(1) or blocked(*a, **kw))

    scores, found = snapshot.search(batch, k=k, query_ratings=None, weight=0.0, exclude_ids=[int(ids[7])])

    assert calls
    for row in range(batch.shape[0]):  # one by one: faiss's one-core kernel over every row
        alone = snapshot.search(batch[row : row + 1], k=k, query_ratings=None, weight=0.0, exclude_ids=[int(ids[7])])
        np.testing.assert_array_equal(found[row], alone[1][0])
        np.testing.assert_allclose(scores[row], alone[0][0], atol=1e-5)
    assert not np.isin(found, ids[40:60]).any()
    assert found[0, 0] == ids[0]  # tied with its copy ids[3000]
    assert found[299].tolist() == sorted([ids[299], ids[3299], *many.tolist()])[:k]


def test_among_vectors_tied_at_the_kth_place_the_smaller_ids_are_kept(library, queries):
    """Ties at the k-th score go to the smaller ids, however the tied rows are laid out."""
    ids, vectors, _ = library
    copies = np.repeat(vectors[:1], 40, axis=0)
    copy_ids = np.random.default_rng(5).permutation(np.arange(40, dtype=np.int64) * 7 + 100)
    items = np.vstack([vectors[1:200], copies])
    item_ids = np.r_[ids[1:200], copy_ids]

    _, found = exact_search(
        query_vectors=vectors[:1], query_ratings=None, ids=item_ids, vectors=items, ratings=None, k=5, weight=0.0
    )

    assert found[0].tolist() == sorted(copy_ids.tolist())[:5]
