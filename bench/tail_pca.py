"""Can the tail be scored in the index's PCA space? (issue 11, the 20k-vector tail): figures to decide by.

Run from the repository root on a saved format-2 index (it carries the full vectors), e.g. the 1M one:

    .venv/bin/python bench/tail_pca.py --index bench/out/h11-1m/index/resnet18-v1-4da68bea.index

Takes --tail stored vectors as a stand-in tail and --queries other stored vectors as queries, and times,
query by query on one thread, interleaved: the exact tail scan the product runs (1 x 512 by 512 x tail,
then the top k); an exact two-stage scan (128-d scores with the bound |r_q| |r_x| on the residual left out
by the projection, then exact scores for every row whose upper bound reaches the k-th lower bound: the same
top k by construction); and the approximate two-stage scan (128-d scores, the best --shortlist re-scored
exactly), with its recall@k against the exact scan; and an exact scan over an 8-bit scalar-quantised copy of
the tail (faiss IndexScalarQuantizer, 4x fewer bytes), the best --proof-shortlist re-scored exactly, proven
the same top k when the k-th exact score beats the last shortlisted approximate one plus the largest
quantisation error (norm of x - decoded x), else the exact scan (timed in). Cosine only (no rating term).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import faiss
import numpy as np

from search.index.scoring import inner_products
from search.index.vector_index import VectorIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--tail", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--shortlist", type=int, nargs="*", default=[40, 100, 400])
    parser.add_argument("--proof-shortlist", type=int, default=20)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    index = VectorIndex.load(args.index)
    projection = index._projection
    if projection is None or not index.has_stored_vectors:
        raise SystemExit("needs a format-2 index with a PCA projection")
    rng = np.random.default_rng(1)
    chosen = rng.choice(np.arange(1, len(index) + 1, dtype=np.int64), args.tail + args.queries, replace=False)
    _, tail, _ = index.stored(chosen[: args.tail])
    _, queries, _ = index.stored(chosen[args.tail :])
    tail = np.ascontiguousarray(tail, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    projected = np.ascontiguousarray(tail @ projection.T)
    residual = np.sqrt(np.maximum(0.0, 1.0 - (projected * projected).sum(axis=1))).astype(np.float32)
    unit_projected = projected / np.linalg.norm(projected, axis=1, keepdims=True)
    quantised = faiss.IndexScalarQuantizer(tail.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    quantised.train(tail)
    quantised.add(tail)
    largest_error = float(np.linalg.norm(tail - quantised.sa_decode(quantised.sa_encode(tail)), axis=1).max())
    unproven = []
    k = args.k
    times: dict[str, list[float]] = {}
    recall: dict[int, list[float]] = {m: [] for m in args.shortlist}
    survivors = []

    def timed(name: str, work):
        started = time.perf_counter()
        result = work()
        times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    def exact(query: np.ndarray) -> set[int]:
        scores = inner_products(query, tail)[0]
        return set(np.argpartition(scores, -k)[-k:].tolist())

    def bounded(query: np.ndarray) -> set[int]:
        query_projected = (query @ projection.T).astype(np.float32)
        query_residual = float(np.sqrt(max(0.0, 1.0 - float((query_projected * query_projected).sum()))))
        approximate = inner_products(query_projected, projected)[0]
        threshold = np.partition(approximate - query_residual * residual, -k)[-k]
        candidates = np.flatnonzero(approximate + query_residual * residual >= threshold)
        survivors.append(candidates.shape[0])
        scores = inner_products(query, tail[candidates])[0]
        return set(candidates[np.argpartition(scores, -k)[-k:]].tolist())

    def shortlisted(query: np.ndarray, size: int) -> set[int]:
        query_projected = (query @ projection.T).astype(np.float32)
        query_projected /= np.linalg.norm(query_projected)
        approximate = inner_products(query_projected, unit_projected)[0]
        candidates = np.argpartition(approximate, -size)[-size:]
        scores = inner_products(query, tail[candidates])[0]
        return set(candidates[np.argpartition(scores, -k)[-k:]].tolist())

    def quantised_exact(query: np.ndarray) -> set[int]:
        approximate, candidates = quantised.search(query, args.proof_shortlist)
        scores = inner_products(query, tail[candidates[0]])[0]
        order = np.argsort(-scores)
        if scores[order[k - 1]] > approximate[0, -1] + largest_error:
            return set(candidates[0][order[:k]].tolist())
        unproven.append(1)
        return exact(query)

    for row in range(queries.shape[0]):
        query = queries[row : row + 1]
        truth = timed("exact 512-d scan (the product)", lambda q=query: exact(q))
        if timed("exact two-stage (PCA + residual bound)", lambda q=query: bounded(q)) != truth:
            raise SystemExit("the bounded scan lost an exact result: a bug")
        if timed("8-bit scan + exact re-score, proven", lambda q=query: quantised_exact(q)) != truth:
            raise SystemExit("the quantised scan lost an exact result: a bug")
        for size in args.shortlist:
            found = timed(f"PCA 128-d + exact re-score of {size}", lambda q=query, s=size: shortlisted(q, s))
            # ties at the k-th score count as found (synthetic near-duplicates share scores)
            full = inner_products(query, tail)[0]
            kth = np.sort(full)[-k]
            recall[size].append(sum(1 for row_ in found if full[row_] >= kth - 1e-6) / k)
    print(f"== tail scan, {args.tail:,} x {index.full_dim}-d tail, {args.queries} queries, k={k}, one thread")
    print(f"   PCA kept energy {index.metadata.get('pca_kept_energy')}, residual norm p50 {np.median(residual):.3f}")
    base = float(np.median(times["exact 512-d scan (the product)"]))
    for name, values in times.items():
        print(f"   {name:<42} p50 {np.median(values):6.2f} ms  {np.median(values) / base:4.2f}x")
    print(f"   rows the residual bound cannot rule out: p50 {np.median(survivors):,.0f} of {args.tail:,}")
    print(f"   8-bit: largest quantisation error {largest_error:.4f}, queries not proven (fell back): {len(unproven)}")
    for size, values in recall.items():
        print(f"   shortlist {size}: recall@{k} mean {np.mean(values):.3f}, worst query {min(values):.1f}")


if __name__ == "__main__":
    main()
