"""Search index benchmark: recall, latency, build time and size of PCA + HNSW against exact search.

Run from the repository root:

    .venv/bin/python bench/search.py                      # 10k and 100k vectors, a few minutes
    .venv/bin/python bench/search.py --sizes 10000 100000 1000000

Vectors are synthetic but shaped like CNN embeddings: 512-d, clustered, a power-law decaying spectrum
(like real PCA output), a shared positive offset (random photos score ~0.4 cosine, as ResNet features do
~0.5) and L2-normalised. Queries are held out: half are perturbed library vectors (near-duplicates),
half new vectors from the same clusters. 40 % of the library and half the queries carry no rating.

Every speed figure is printed next to a baseline measured in the same run (exact search on the same
vectors), because absolute times on shared machines vary from run to run. Latencies are one query per
call on ONE faiss thread, exact and HNSW timed in alternating blocks of 20 queries so background load
hits both alike; builds use all the machine's threads. The 1M run takes ~10 minutes on 2 cores and
~10 GB of RAM.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and this file would shadow the `search` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import faiss
import numpy as np

from search.index.scoring import rerank
from search.index.vector_index import PCA_MIN_ROWS_PER_DIM, IndexParams, VectorIndex, build_index

K = 10


@dataclass(frozen=True)
class SyntheticEmbeddings:
    """A generative model of embedding vectors: cluster centres + noise, both with a decaying spectrum."""

    centres: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    noise: float

    @classmethod
    def create(
        cls, *, dim: int = 512, centres: int = 2000, alpha: float = 0.8, noise: float = 0.7, seed: int = 0
    ) -> SyntheticEmbeddings:
        """Variance of dim j ~ (j+1)^-alpha; alpha 0.8 keeps ~77 % of variance in 128 PCA dims (512-d)."""
        rng = np.random.default_rng(seed)
        scale = ((np.arange(dim) + 1.0) ** (-alpha / 2)).astype(np.float32)
        scale /= np.linalg.norm(scale)
        offset = np.abs(rng.standard_normal(dim)).astype(np.float32)
        offset /= np.linalg.norm(offset)
        return cls(
            centres=rng.standard_normal((centres, dim), dtype=np.float32) * scale,
            scale=scale,
            offset=offset,
            noise=noise,
        )

    def sample(self, count: int, *, rng: np.random.Generator) -> np.ndarray:
        """count unit vectors from random clusters, made in chunks to bound temporary memory."""
        out = np.empty((count, self.scale.shape[0]), dtype=np.float32)
        for start in range(0, count, 100_000):
            stop = min(count, start + 100_000)
            which = rng.integers(0, self.centres.shape[0], stop - start)
            block = rng.standard_normal((stop - start, self.scale.shape[0]), dtype=np.float32)
            block *= self.noise * self.scale
            block += self.centres[which]
            block += self.offset
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[start:stop] = block
        return out

    def queries(self, library: np.ndarray, count: int, *, rng: np.random.Generator) -> np.ndarray:
        """Half near-duplicates of library vectors (cosine ~0.95 to their source), half new vectors."""
        near = count // 2
        picked = library[rng.integers(0, library.shape[0], near)]
        jitter = rng.standard_normal(picked.shape, dtype=np.float32) * self.scale * 0.3
        perturbed = picked + jitter
        perturbed /= np.linalg.norm(perturbed, axis=1, keepdims=True)
        return np.vstack([perturbed, self.sample(count - near, rng=rng)])


def library_ratings(count: int, *, rng: np.random.Generator) -> np.ndarray:
    """Star ratings 0..5, 40 % unrated (nan), as a photo library imported from several tools might be."""
    ratings = rng.integers(0, 6, count).astype(np.float64)
    ratings[rng.random(count) < 0.4] = np.nan
    return ratings


def query_ratings_for(count: int, *, rng: np.random.Generator) -> list[float | None]:
    """Every other query rated, so both the rated and the neutral query path are measured."""
    return [float(rng.integers(0, 6)) if i % 2 else None for i in range(count)]


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k found, per query."""
    hits = [
        np.intersect1d(f[f >= 0], t[t >= 0]).shape[0] / max(1, (t >= 0).sum())
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def reranked(
    index: VectorIndex,
    *,
    queries: np.ndarray,
    ratings: list[float | None],
    library: np.ndarray,
    library_ratings_: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    ef_search: int | None = None,
    overfetch: bool = False,
) -> np.ndarray:
    """The product's query path: index candidates, then exact re-rank on the candidates' full vectors.

    Library ids are row numbers, so the caller's "fetch vectors by id" is a gather. overfetch filters
    excluded ids after the search instead of inside faiss, for comparison.
    """
    fetch = index.candidate_count(k)
    if overfetch and exclude is not None:
        _, candidates = index.search(queries, k=fetch + exclude.shape[0], query_ratings=ratings, ef_search=ef_search)
        candidates = np.where(np.isin(candidates, exclude), -1, candidates)
    else:
        _, candidates = index.search(queries, k=fetch, query_ratings=ratings, exclude_ids=exclude, ef_search=ef_search)
    wanted = np.unique(candidates[candidates >= 0])
    _, ids = rerank(
        query_vectors=queries,
        query_ratings=ratings,
        candidate_ids=candidates,
        ids=wanted,
        vectors=library[wanted],
        ratings=library_ratings_[wanted],
        k=k,
        weight=index.params.rating_weight,
    )
    return ids


def percentiles_ms(samples_ns: list[int]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    values = np.array(samples_ns) / 1e6
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def measure_size(
    size: int, *, model: SyntheticEmbeddings, args: argparse.Namespace, params: IndexParams, workdir: Path
) -> list[dict[str, object]]:
    """One library size: ground truth, build, save/load, recall and latency per efSearch."""
    rng = np.random.default_rng(args.seed + size)
    started = time.perf_counter()
    library = model.sample(size, rng=rng)
    ratings = library_ratings(size, rng=rng)
    queries = model.queries(library, args.queries, rng=rng)
    query_ratings = query_ratings_for(args.queries, rng=rng)
    ids = np.arange(size, dtype=np.int64)
    print(f"\n== {size:,} vectors: generated in {time.perf_counter() - started:.1f}s", flush=True)

    faiss.omp_set_num_threads(args.build_threads)
    exact = build_index(ids=ids, vectors=library, ratings=ratings, params=replace(params, exact_below=size + 1))
    started = time.perf_counter()
    _, truth = exact.search(queries, k=K + 5, query_ratings=query_ratings)
    print(f"   exact ground truth for {args.queries} queries (batched): {time.perf_counter() - started:.1f}s")

    hnsw = build_index(ids=ids, vectors=library, ratings=ratings, params=replace(params, exact_below=0))
    meta = hnsw.metadata
    path = workdir / f"index-{size}.bin"
    started = time.perf_counter()
    hnsw.save(path)
    save_s = time.perf_counter() - started
    del hnsw
    started = time.perf_counter()
    index = VectorIndex.load(path)
    load_s = time.perf_counter() - started
    file_bytes = path.stat().st_size
    path.unlink()
    print(
        f"   HNSW build {meta['build_seconds']:.1f}s on {args.build_threads} threads "
        f"(PCA fit on {meta['pca_fit_rows']:,} rows keeps {meta['pca_kept_energy']:.1%} of the energy), "
        f"save {save_s:.1f}s, load+verify {load_s:.1f}s, {file_bytes / size:.0f} B/vector",
        flush=True,
    )

    faiss.omp_set_num_threads(1)
    timed = min(args.timed, args.queries)
    fetch = index.candidate_count(K)
    exact_ns: list[int] = []
    search_ns: dict[int, list[int]] = {ef: [] for ef in args.ef_search}
    total_ns: dict[int, list[int]] = {ef: [] for ef in args.ef_search}
    for block in range(0, timed, 20):
        # Exact and each efSearch take turns in blocks of 20 queries, so background load hits all alike
        # while each still runs with its own data in cache (an exact scan evicts the HNSW graph).
        block_rows = range(block, min(timed, block + 20))
        for i in block_rows:
            started = time.perf_counter_ns()
            exact.search(queries[i : i + 1], k=K, query_ratings=query_ratings[i : i + 1])
            exact_ns.append(time.perf_counter_ns() - started)
        for ef in args.ef_search:
            for i in block_rows:
                one, one_rating = queries[i : i + 1], query_ratings[i : i + 1]
                started = time.perf_counter_ns()
                index.search(one, k=fetch, query_ratings=one_rating, ef_search=ef)
                search_ns[ef].append(time.perf_counter_ns() - started)
                started = time.perf_counter_ns()
                reranked(
                    index,
                    queries=one,
                    ratings=one_rating,
                    library=library,
                    library_ratings_=ratings,
                    k=K,
                    ef_search=ef,
                )
                total_ns[ef].append(time.perf_counter_ns() - started)

    rows = []
    exact_ms = percentiles_ms(exact_ns)
    for ef in args.ef_search:
        found = reranked(
            index,
            queries=queries,
            ratings=query_ratings,
            library=library,
            library_ratings_=ratings,
            k=K,
            ef_search=ef,
        )
        _, raw = index.search(queries, k=K, query_ratings=query_ratings, ef_search=ef)
        total_ms = percentiles_ms(total_ns[ef])
        rows.append(
            {
                "size": size,
                "build_s": meta["build_seconds"],
                "bytes_per_vector": file_bytes / size,
                "ef": ef,
                "recall": recall_at(found, truth[:, :K]),
                "recall_no_rerank": recall_at(raw, truth[:, :K]),
                "search_ms": percentiles_ms(search_ns[ef]),
                "total_ms": total_ms,
                "exact_ms": exact_ms,
                "speedup": exact_ms[0] / total_ms[0],
            }
        )
    measure_exclusion(
        index,
        queries=queries[:timed],
        ratings=query_ratings[:timed],
        truth=truth[:timed],
        library=library,
        library_ratings_=ratings,
    )
    faiss.omp_set_num_threads(args.build_threads)
    return rows


def measure_exclusion(
    index: VectorIndex,
    *,
    queries: np.ndarray,
    ratings: list[float | None],
    truth: np.ndarray,
    library: np.ndarray,
    library_ratings_: np.ndarray,
) -> None:
    """Exclude each query's 5 nearest (worst case): faiss IDSelector against over-fetch-and-filter."""
    results = {}
    for overfetch in (False, True):
        found, samples = [], []
        for i in range(queries.shape[0]):
            exclude = truth[i, :5]
            started = time.perf_counter_ns()
            found.append(
                reranked(
                    index,
                    queries=queries[i : i + 1],
                    ratings=ratings[i : i + 1],
                    library=library,
                    library_ratings_=library_ratings_,
                    k=K,
                    exclude=exclude,
                    overfetch=overfetch,
                )[0]
            )
            samples.append(time.perf_counter_ns() - started)
        results[overfetch] = (recall_at(np.array(found), truth[:, 5 : 5 + K]), percentiles_ms(samples)[0])
    (sel_recall, sel_ms), (over_recall, over_ms) = results[False], results[True]
    print(
        f"   exclude 5 nearest per query: IDSelector recall@10 {sel_recall:.4f} p50 {sel_ms:.3f} ms | "
        f"over-fetch+filter recall@10 {over_recall:.4f} p50 {over_ms:.3f} ms"
    )


def measure_threshold(*, model: SyntheticEmbeddings, args: argparse.Namespace, params: IndexParams) -> int:
    """Smallest library where PCA + HNSW + re-rank answers faster than exact search on full vectors."""
    largest = max(args.threshold_sizes)
    rng = np.random.default_rng(args.seed)
    library = model.sample(largest, rng=rng)
    ratings = library_ratings(largest, rng=rng)
    queries = model.queries(library, args.timed, rng=rng)
    query_ratings = query_ratings_for(args.timed, rng=rng)
    minimum = PCA_MIN_ROWS_PER_DIM * library.shape[1]
    print(f"\n== exact_below: single-query p50 on 1 thread (PCA needs >= {minimum:,} rows for 512-d)")
    print(f"   {'size':>8} {'exact ms':>9} {'hnsw+rerank ms':>15} {'exact/hnsw':>10} {'recall@10':>9}")
    crossover = None
    for size in sorted(args.threshold_sizes):
        if size < minimum:
            continue
        ids = np.arange(size, dtype=np.int64)
        faiss.omp_set_num_threads(args.build_threads)
        exact = build_index(
            ids=ids,
            vectors=library[:size],
            ratings=ratings[:size],
            params=replace(params, exact_below=size + 1),
        )
        hnsw = build_index(
            ids=ids, vectors=library[:size], ratings=ratings[:size], params=replace(params, exact_below=0)
        )
        faiss.omp_set_num_threads(1)
        exact_ns, hnsw_ns, found, truth = [], [], [], []
        for i in range(queries.shape[0]):
            one, one_rating = queries[i : i + 1], query_ratings[i : i + 1]
            started = time.perf_counter_ns()
            truth.append(exact.search(one, k=K, query_ratings=one_rating)[1][0])
            exact_ns.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            found.append(
                reranked(hnsw, queries=one, ratings=one_rating, library=library, library_ratings_=ratings, k=K)[0]
            )
            hnsw_ns.append(time.perf_counter_ns() - started)
        exact_ms, hnsw_ms = percentiles_ms(exact_ns)[0], percentiles_ms(hnsw_ns)[0]
        recall = recall_at(np.array(found), np.array(truth))
        print(f"   {size:>8,} {exact_ms:>9.3f} {hnsw_ms:>15.3f} {exact_ms / hnsw_ms:>10.2f} {recall:>9.4f}")
        if crossover is None and hnsw_ms < exact_ms:
            crossover = size
    faiss.omp_set_num_threads(args.build_threads)
    if crossover is None:
        print("   exact search was faster at every size measured")
        return max(args.threshold_sizes)
    print(
        f"   HNSW first faster at {crossover:,} vectors (IndexParams.exact_below = {params.exact_below:,}); "
        "the product's re-rank also fetches candidate vectors from the database, which favours exact."
    )
    return crossover


def print_table(rows: list[dict[str, object]]) -> None:
    """One line per (size, efSearch)."""
    print(
        f"\n{'size':>9} {'build s':>8} {'B/vec':>6} {'ef':>4} {'recall@10':>9} {'no rerank':>9} "
        f"{'hnsw p50/p99 ms':>16} {'+rerank p50/p99':>16} {'exact p50/p99 ms':>17} {'exact/hnsw':>10}"
    )
    for row in rows:
        search_ms, total_ms, exact_ms = row["search_ms"], row["total_ms"], row["exact_ms"]
        print(
            f"{row['size']:>9,} {row['build_s']:>8.1f} {row['bytes_per_vector']:>6.0f} {row['ef']:>4} "
            f"{row['recall']:>9.4f} {row['recall_no_rerank']:>9.4f} "
            f"{search_ms[0]:>7.3f}/{search_ms[1]:<8.3f} {total_ms[0]:>7.3f}/{total_ms[1]:<8.3f} "
            f"{exact_ms[0]:>8.3f}/{exact_ms[1]:<8.3f} {row['speedup']:>10.1f}"
        )
    print(
        "recall@10: HNSW candidates re-ranked on full vectors vs exact search on full vectors (same rating "
        "term);\nno rerank: HNSW top-10 in PCA space; exact/hnsw: exact p50 / (hnsw + rerank) p50, 1 thread."
    )


def main() -> None:
    """Parse arguments, run the sizes, print the table."""
    defaults = IndexParams()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall")
    parser.add_argument("--timed", type=int, default=200, help="queries timed one by one")
    parser.add_argument("--ef-search", type=int, nargs="+", default=sorted({32, 64, 128, defaults.ef_search}))
    parser.add_argument("--ef-construction", type=int, default=defaults.ef_construction)
    parser.add_argument("--hnsw-m", type=int, default=defaults.hnsw_m)
    parser.add_argument("--rerank-factor", type=int, default=defaults.rerank_factor)
    parser.add_argument(
        "--threshold-sizes", type=int, nargs="*", default=[2_500, 5_000, 7_500, 10_000, 15_000, 20_000, 40_000]
    )
    parser.add_argument("--alpha", type=float, default=0.8, help="spectrum decay exponent")
    parser.add_argument("--noise", type=float, default=0.7, help="within-cluster spread")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    params = replace(
        defaults, ef_construction=args.ef_construction, hnsw_m=args.hnsw_m, rerank_factor=args.rerank_factor
    )
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, params {params}")
    model = SyntheticEmbeddings.create(alpha=args.alpha, noise=args.noise, seed=args.seed)
    if args.threshold_sizes:
        measure_threshold(model=model, args=args, params=params)
    rows = []
    with tempfile.TemporaryDirectory(prefix="imgsim-bench-") as workdir:
        for size in args.sizes:
            rows.extend(measure_size(size, model=model, args=args, params=params, workdir=Path(workdir)))
    print_table(rows)


if __name__ == "__main__":
    main()
