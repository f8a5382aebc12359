"""Memory per process for the served index: format 1 (read into each process) against format 2 (mapped).

Run from the repository root:

    .venv/bin/python bench/index_memory.py --size 1000000      # ~5-10 minutes, ~6 GB of RAM while building

Builds one PCA + HNSW index over synthetic 512-d vectors (bench/search.py's generator; efConstruction 40
to build faster: the memory layout does not depend on it), saves it in the format-1 layout (as before this
change: faiss blob inside a checksummed file, read whole into every process) and in format 2 (faiss blob
first so faiss maps the stored vectors, plus the full vectors for the re-rank, also mapped). Then starts
--web + --tasks processes per layout, as gunicorn workers and qcluster workers would each load it, runs
searches in each (touching the pages a search touches), and reads RSS and PSS from
/proc/PID/smaps_rollup while all of them are alive. PSS splits shared pages between the processes that
map them: the honest per-process figure for a shared mapping, and their sum the machine's total.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import faiss
import numpy as np

from bench.search import SyntheticEmbeddings
from search.index import vector_index
from search.index.vector_index import IndexParams, VectorIndex, build_index

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time, json
sys.path.insert(0, {repo!r})
import numpy as np, faiss
faiss.omp_set_num_threads(1)
from search.index.vector_index import VectorIndex
if {path!r}:
    index = VectorIndex.load({path!r})
else:  # the baseline: a process with the same imports and no index
    print("ready", flush=True)
    sys.stdin.readline()
    sys.exit()
rng = np.random.default_rng({seed})
queries = rng.standard_normal(({searches}, index.full_dim)).astype(np.float32)
for row in range(queries.shape[0]):
    _, found = index.search(queries[row:row + 1], k=index.candidate_count(10))
    if index.has_stored_vectors:
        index.stored(found[found >= 0])
print("ready", flush=True)
sys.stdin.readline()
"""


def smaps(pid: int) -> dict[str, int]:
    """RSS and PSS in MB (with their private and shared parts) of a live process."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, amount, *_ = line.split()
        values[name.rstrip(":")] = int(amount) // 1024
    return values


def save_format_1(index: VectorIndex, path: Path) -> None:
    """The layout before format 2: prefix + JSON header + projection + faiss blob, sha256 over them."""
    blob = faiss.serialize_index(index._faiss_index)
    projection = index._projection
    sections = [("projection", projection)] if projection is not None else []
    sections.append(("faiss_index", blob))
    layout, offset = [], 0
    for name, array in sections:
        layout.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
    header = json.dumps({"metadata": index.metadata, "sections": layout}, sort_keys=True).encode()
    digest = hashlib.sha256(header)
    for _, array in sections:
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    with path.open("wb") as stream:
        stream.write(vector_index._PREFIX.pack(vector_index.FILE_MAGIC, 1, len(header), offset, digest.digest()))
        stream.write(header)
        for _, array in sections:
            stream.write(memoryview(np.ascontiguousarray(array)).cast("B"))


def run_processes(path: Path | None, count: int, searches: int) -> list[dict[str, int]]:
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD.format(repo=str(REPO), path="" if path is None else str(path), seed=n, searches=searches),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    try:
        for child in children:
            line = child.stdout.readline() if child.stdout else ""
            if line.strip() != "ready":
                raise SystemExit(f"a child failed to load {path}")
        return [smaps(child.pid) for child in children]
    finally:
        for child in children:
            if child.stdin:
                child.stdin.write("\n")
                child.stdin.flush()
            child.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--web", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--files", nargs=2, type=Path, metavar=("FORMAT1", "FORMAT2"), help="measure these saved index files instead"
    )
    parser.add_argument(
        "--file", type=Path, help="measure only this served (format-2) index file, e.g. the 1M one search_product built"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imgsim-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.file:
        print(f"== index memory per process: {args.file.name}")
        measure_one(args.file, web=args.web, tasks=args.tasks, searches=args.searches)
        return
    if args.files:
        print(f"== index memory per process: {args.files[0].name} against {args.files[1].name}")
        measure(*args.files, web=args.web, tasks=args.tasks, searches=args.searches)
        return

    rng = np.random.default_rng(0)
    vectors = SyntheticEmbeddings.create(dim=512, seed=0).sample(args.size, rng=rng)
    ids = np.arange(1, args.size + 1, dtype=np.int64)
    started = time.perf_counter()
    index = build_index(ids=ids, vectors=vectors, ratings=None, params=replace(IndexParams(), ef_construction=40))
    built = time.perf_counter() - started
    print(f"== index memory per process, {args.size:,} x 512-d, {index.kind}, built in {built:.0f}s")
    old, new = workdir / "format-1.index", workdir / "format-2.index"
    save_format_1(index, old)
    index.with_stored_vectors(ids=ids, vectors=vectors, ratings=None).save(new)
    del index, vectors
    measure(old, new, web=args.web, tasks=args.tasks, searches=args.searches)
    for path in (old, new):
        path.unlink()


def measure_one(path: Path, *, web: int, tasks: int, searches: int) -> None:
    """PSS, private and RSS of web + tasks processes all serving one saved index file."""
    processes = web + tasks
    print(
        f"   file: {path.stat().st_size / 2**20:,.0f} MB; {processes} processes ({web} web + {tasks} task), "
        f"{searches} searches each\n"
    )
    empty = run_processes(None, 1, 0)[0]
    print(f"   a process with the same imports and no index: RSS {empty['Rss']} MB, PSS {empty['Pss']} MB\n")
    figures = run_processes(path, processes, searches)
    roles = ["web"] * web + ["task"] * tasks
    print("   process  RSS MB  PSS MB  private MB  shared MB")
    for role, f in zip(roles, figures, strict=True):
        private = f["Private_Clean"] + f["Private_Dirty"]
        shared = f["Shared_Clean"] + f["Shared_Dirty"]
        print(f"   {role:<7} {f['Rss']:>7,} {f['Pss']:>7,} {private:>11,} {shared:>10,}")
    pss = sum(f["Pss"] for f in figures)
    index_pss = pss - processes * empty["Pss"]
    print(
        f"\n   machine total PSS {pss:,} MB ({pss / processes:,.0f} MB per process); the index's share "
        f"{index_pss:,} MB for all, {index_pss / processes:,.0f} MB per process"
    )


def measure(old: Path, new: Path, *, web: int, tasks: int, searches: int) -> None:
    """PSS and RSS of web + tasks processes serving each file, all alive at once."""
    processes = web + tasks
    sizes = old.stat().st_size / 2**20, new.stat().st_size / 2**20
    print(f"   files: format 1 {sizes[0]:,.0f} MB, format 2 (with the full vectors) {sizes[1]:,.0f} MB")
    print(f"   {processes} processes ({web} web + {tasks} task), {searches} searches each\n")
    empty = run_processes(None, 1, 0)[0]
    print(f"   a process with the same imports and no index: RSS {empty['Rss']} MB, PSS {empty['Pss']} MB\n")
    totals = {}
    for label, path in (("before: format 1, read into memory", old), ("after: format 2, memory-mapped", new)):
        figures = run_processes(path, processes, searches)
        rss = [f["Rss"] for f in figures]
        pss = [f["Pss"] for f in figures]
        totals[label] = sum(pss)
        print(f"   {label}")
        print(f"     RSS per process MB: {rss}")
        print(f"     PSS per process MB: {pss}  (private {[f['Private_Clean'] + f['Private_Dirty'] for f in figures]})")
        print(f"     PSS total {sum(pss):,} MB, {sum(pss) / processes:,.0f} MB per process")
        index_pss = sum(pss) - processes * empty["Pss"]
        print(f"     the index's share: {index_pss:,} MB for all, {index_pss / processes:,.0f} MB per process\n")
    before, after = totals.values()
    print(f"   machine total PSS before/after: {before / max(after, 1):.1f}x less memory")


if __name__ == "__main__":
    main()
