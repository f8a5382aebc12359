"""The served index: VectorIndex (PCA + FAISS HNSW, or flat for small libraries), its file format and build.

A file is written atomically and verified by sha256 before faiss reads it; the stored vectors in it are
memory-mapped, so every process on a machine shares one copy.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import faiss
import numpy as np

from search.index.scoring import _item_rating_array, _query_rating_array, _unit_rows, rating_features

IndexKind = Literal["exact", "hnsw"]

FILE_MAGIC = b"IMGSIMIX"
FORMAT_VERSION = 2
# Format 1, read but never written: magic, format version, header length, payload length, sha256 of header + payload.
_PREFIX = struct.Struct("<8sIQQ32s")
# Format 2, at the end of the file: magic, format version, faiss blob length, header offset, header length,
# sha256 of every byte before the trailer.
_TRAILER = struct.Struct("<8sIQQQ32s")
_SECTION_ALIGN = 64
_HASH_CHUNK = 8 << 20
_MAP_SECTIONS_FROM = 1 << 20
# A header is a few kB of JSON; a bigger length field means a corrupt file, not a bigger header.
_MAX_HEADER_BYTES = 1 << 20

PCA_FIT_MAX_ROWS = 100_000
# Fewer rows than this per input dimension and the second-moment matrix is too noisy to trust.
PCA_MIN_ROWS_PER_DIM = 4


class IndexFileError(Exception):
    """An index file is missing, truncated, corrupt or from an unknown format version."""


@dataclass(frozen=True)
class IndexParams:
    """How an index is built and searched; stored in the file's metadata so a search knows its build.

    Defaults chosen with bench/search.py (512-d clustered vectors; figures in bench/README.md): efSearch 128
    keeps recall@10 after re-rank near 1 at a million vectors for a small cost per query; a larger
    efConstruction slows the build for no measurable recall gain once efSearch >= 64.
    """

    pca_dim: int = 128
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    rating_weight: float = 0.05
    # Below this, exact search on the full vectors answers about as fast as PCA + HNSW + re-rank, with perfect
    # recall; the switch sits above the bench's crossover because the product's re-rank also reads the
    # candidates' full vectors (bench/search.py; figures in bench/README.md).
    exact_below: int = 10_000
    # Candidates fetched per wanted result for the exact re-rank (PCA reorders near neighbours): 4 x k keeps
    # recall@10 after re-rank near 1 up to a million vectors, where 2 x k loses some (bench/search.py; figures in
    # bench/README.md).
    rerank_factor: int = 4

    def __post_init__(self) -> None:
        positive = ("pca_dim", "hnsw_m", "ef_construction", "ef_search", "rerank_factor")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"IndexParams.{name} must be >= 1, got {getattr(self, name)}")
        if self.exact_below < 0:
            raise ValueError(f"IndexParams.exact_below must be >= 0, got {self.exact_below}")
        if not (math.isfinite(self.rating_weight) and self.rating_weight >= 0):
            raise ValueError(f"IndexParams.rating_weight must be finite and >= 0, got {self.rating_weight}")


def _padded(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing results as id -1 and score -inf (faiss pads with -FLT_MAX or leaves garbage)."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    return scores, ids


def _fit_projection(vectors: np.ndarray, *, pca_dim: int, seed: int) -> tuple[np.ndarray, float, int]:
    """Top eigenvectors of the uncentred second-moment matrix, fitted on a sample of rows.

    Uncentred (truncated SVD) rather than mean-centred PCA: it best preserves x.y, the score we rank by;
    bench/search.py measured higher recall for it than for centred PCA on the same vectors.
    Hand-written rather than scikit-learn's TruncatedSVD (the same projection): its fit is several times
    slower (its randomized solver also keeps less energy and recall; figures in bench/README.md), and
    importing sklearn would cost every process that imports this module seconds.
    Returns (projection (pca_dim, full_dim) float32, kept energy fraction, rows used).
    """
    rng = np.random.default_rng(seed)
    rows = vectors.shape[0]
    sample_size = min(rows, PCA_FIT_MAX_ROWS)
    sample = vectors
    if sample_size < rows:
        sample = vectors[np.sort(rng.choice(rows, sample_size, replace=False))]
    moment = np.zeros((vectors.shape[1], vectors.shape[1]), dtype=np.float64)
    for start in range(0, sample_size, 16_384):
        block = sample[start : start + 16_384].astype(np.float64)
        moment += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(moment)
    top = np.argsort(eigenvalues)[::-1][:pca_dim]
    kept = float(eigenvalues[top].sum() / max(eigenvalues.sum(), 1e-30))
    return np.ascontiguousarray(eigenvectors[:, top].T, dtype=np.float32), kept, sample_size


def _project(vectors: np.ndarray, projection: np.ndarray | None) -> np.ndarray:
    """Unit rows in the indexed visual space, so inner product there is a cosine again."""
    if projection is None:
        return vectors
    projected = np.empty((vectors.shape[0], projection.shape[0]), dtype=np.float32)
    for start in range(0, vectors.shape[0], 65_536):
        block = vectors[start : start + 65_536] @ projection.T
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        projected[start : start + 65_536] = block / np.where(norms > 0, norms, 1.0)
    return projected


class VectorIndex:
    """A built index: immutable, and safe to search from many threads (no per-search state is shared)."""

    def __init__(self, *, faiss_index: faiss.Index, projection: np.ndarray | None, metadata: dict[str, Any]) -> None:
        self._faiss_index = faiss_index
        self._projection = projection
        self._metadata = copy.deepcopy(metadata)
        self.params = IndexParams(**metadata["params"])
        self.kind: IndexKind = metadata["kind"]
        self.full_dim: int = metadata["full_dim"]
        ids = faiss.vector_to_array(faiss.downcast_index(faiss_index).id_map).astype(np.int64)
        ids.setflags(write=False)
        self.ids: np.ndarray = ids
        self._sorted_ids = np.sort(ids)
        # Full stored vectors and ratings in sorted-id order, for the exact re-rank without a database
        # read; memory-mapped from the file once saved (shared by every process on the machine).
        self._stored_vectors: np.ndarray | None = None
        self._stored_ratings: np.ndarray | None = None

    def with_stored_vectors(self, *, ids: np.ndarray, vectors: np.ndarray, ratings: np.ndarray | None) -> VectorIndex:
        """The same index also carrying the full vectors it was built from (saved with it, for re-ranks)."""
        given = np.asarray(ids, dtype=np.int64).reshape(-1)
        in_order = bool(np.all(given[1:] > given[:-1]))  # the library is read in id order: no reordering copy
        order = np.arange(given.shape[0]) if in_order else np.argsort(given, kind="stable")
        if not np.array_equal(given[order], self._sorted_ids):
            raise ValueError("stored vectors must be given for exactly the index's ids")
        other = copy.copy(self)
        other._stored_vectors = _unit_rows(vectors if in_order else np.asarray(vectors)[order], name="vectors")
        other._stored_ratings = _item_rating_array(ratings, order.shape[0])[order].astype(np.float32)
        return other

    @property
    def has_stored_vectors(self) -> bool:
        return self._stored_vectors is not None

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, unit vectors, ratings) of those `ids` the index holds, as stored at build time, in id order."""
        if self._stored_vectors is None or self._stored_ratings is None:
            raise ValueError("this index was saved without its stored vectors")
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        wanted = wanted[self.contains(wanted)]
        positions = np.searchsorted(self._sorted_ids, wanted)
        return wanted, np.asarray(self._stored_vectors[positions]), np.asarray(self._stored_ratings[positions])

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy: what to store on the IndexBuild row (pca_dim, count, params, faiss version, ...)."""
        return copy.deepcopy(self._metadata)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"<VectorIndex {self.kind} count={len(self)} dim={self.full_dim}>"

    def candidate_count(self, k: int) -> int:
        """How many results to ask search() for so that rerank() finds the true top k."""
        return k if self.kind == "exact" else k * self.params.rerank_factor

    def search(
        self,
        queries: np.ndarray,
        *,
        k: int,
        query_ratings: Sequence[float | None] | None = None,
        exclude_ids: Iterable[int] | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (queries, k), best first, padded with -inf / -1.

        Scores are in the indexed space: PCA cosine + rating term for HNSW, full cosine + rating term
        for exact. exclude_ids (deleted images, the query itself) are filtered inside faiss with an
        IDSelector, so k results still come back when excluded ids are among the nearest.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vectors = _unit_rows(queries, name="queries")
        if vectors.shape[1] != self.full_dim:
            raise ValueError(f"queries have {vectors.shape[1]} dims, the index expects {self.full_dim}")
        ratings = _query_rating_array(query_ratings, vectors.shape[0])
        features = rating_features(ratings, weight=self.params.rating_weight)
        indexed = np.ascontiguousarray(np.hstack([_project(vectors, self._projection), features]))

        selector = None
        excluded = None
        if exclude_ids is not None:
            excluded = np.unique(np.fromiter(exclude_ids, dtype=np.int64))
        if excluded is not None and excluded.shape[0] > 0:
            # The batch selector must outlive the search: IDSelectorNot only holds a pointer to it.
            batch = faiss.IDSelectorBatch(excluded)
            selector = faiss.IDSelectorNot(batch)
        if self.kind == "hnsw":
            # Per-call parameters instead of setting hnsw.efSearch: nothing shared is mutated.
            search_params = faiss.SearchParametersHNSW()
            search_params.efSearch = max(ef_search or self.params.ef_search, k)
        else:
            search_params = faiss.SearchParameters()
        if selector is not None:
            search_params.sel = selector
        scores, ids = self._faiss_index.search(indexed, k, params=search_params)
        return _padded(scores, ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` the index holds: a binary search per id in the sorted ids (no per-call set)."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self._sorted_ids.shape[0]:
            return np.zeros(wanted.shape[0], dtype=bool)
        positions = np.minimum(np.searchsorted(self._sorted_ids, wanted), self._sorted_ids.shape[0] - 1)
        return self._sorted_ids[positions] == wanted

    def save(self, path: str | Path) -> str:
        """Write atomically (temp file in the same dir, fsync, rename); returns the file's sha256.

        Layout (format 2): the faiss blob first, so that faiss itself can memory-map the vectors from the
        file (every process on a machine then shares one copy in the page cache); then the other sections,
        the JSON header and a fixed-size trailer with the lengths and the sha256 of everything before it.
        A crash or error midway leaves the previous file at path untouched, so serving continues.
        """
        target = Path(path)
        blob = faiss.serialize_index(self._faiss_index)
        sections: list[tuple[str, np.ndarray]] = []
        if self._projection is not None:
            sections.append(("projection", self._projection))
        if self._stored_vectors is not None and self._stored_ratings is not None:
            sections += [("stored_vectors", self._stored_vectors), ("stored_ratings", self._stored_ratings)]
        parts: list[bytes | np.ndarray] = [blob]
        offset = blob.nbytes
        layout = []
        for name, array in sections:
            padding = -offset % _SECTION_ALIGN
            parts.append(b"\0" * padding)
            offset += padding
            layout.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
            parts.append(array)
            offset += array.nbytes
        header = json.dumps({"metadata": self._metadata, "sections": layout}, sort_keys=True).encode()
        parts.append(header)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(memoryview(np.ascontiguousarray(part)).cast("B") if isinstance(part, np.ndarray) else part)
        parts.append(_TRAILER.pack(FILE_MAGIC, FORMAT_VERSION, blob.nbytes, offset, len(header), digest.digest()))
        del blob

        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            # mkstemp makes the file 0600; web processes may run as another user than the builder.
            os.fchmod(descriptor, 0o644)
            with os.fdopen(descriptor, "wb") as stream:
                _write_all(stream, parts)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        return digest.hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        """Verify a saved index, then map it: IndexFileError before faiss ever sees damaged bytes.

        The sha256 is streamed through the page cache (no copy of the file in this process); faiss then
        memory-maps the stored vectors read-only, so N processes on a machine hold one copy of them. Only
        the graph (HNSW neighbour lists) and the id map are private to each process. Files of format 1
        (a layout faiss cannot map) are read into memory.
        """
        source = Path(path)
        try:
            with source.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                if stream.read(len(FILE_MAGIC)) == FILE_MAGIC:
                    stream.seek(0)
                    return cls._load_format_1(source, stream, size)
                trailer, digest = _verified_trailer(source, stream, size)
                _, _, _, header_offset, header_len, _ = trailer
                stream.seek(header_offset)
                header = json.loads(stream.read(header_len))
                arrays = _read_sections_from(stream, header["sections"], limit=header_offset)
                # Through /proc/self/fd, faiss maps the very file that was verified, even if a rebuild
                # renamed another one over the path in between.
                proc_path = f"/proc/self/fd/{stream.fileno()}"
                faiss_index = faiss.read_index(
                    proc_path if os.path.exists(proc_path) else str(source),
                    faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY,
                )
        except FileNotFoundError as exc:
            raise IndexFileError(f"{source}: no such index file") from exc
        except IndexFileError:
            raise
        except OSError as exc:
            raise IndexFileError(f"{source}: cannot read index file: {exc}") from exc
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        index = cls._checked(source, faiss_index, arrays.get("projection"), header, digest, size)
        if "stored_vectors" in arrays and "stored_ratings" in arrays:
            if arrays["stored_vectors"].shape != (len(index), index.full_dim) or arrays["stored_ratings"].shape != (
                len(index),
            ):
                raise IndexFileError(f"{source}: stored vectors do not match the index")
            index._stored_vectors, index._stored_ratings = arrays["stored_vectors"], arrays["stored_ratings"]
        return index

    @classmethod
    def _checked(
        cls,
        source: Path,
        faiss_index: faiss.Index,
        projection: np.ndarray | None,
        header: dict[str, Any],
        digest: bytes,
        size: int,
    ) -> VectorIndex:
        """The loaded index, after checking that faiss agrees with the metadata."""
        try:
            metadata = header["metadata"]
            metadata["checksum"] = digest.hex()
            metadata["file_bytes"] = size
            index = cls(faiss_index=faiss_index, projection=projection, metadata=metadata)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        if len(index) != metadata["count"] or faiss_index.d != metadata["indexed_dim"]:
            raise IndexFileError(f"{source}: faiss index does not match its metadata")
        return index

    @classmethod
    def _load_format_1(cls, source: Path, stream: BinaryIO, size: int) -> VectorIndex:
        """Format 1 (length + sha256 prefix, faiss blob inside): read whole into memory, not mappable."""
        prefix = stream.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise IndexFileError(f"{source}: truncated ({size} bytes), not an index file")
        _, version, header_len, payload_len, expected = _PREFIX.unpack(prefix)
        if version != 1:
            raise IndexFileError(f"{source}: format {version}, this code reads {FORMAT_VERSION}")
        if header_len > _MAX_HEADER_BYTES or size != _PREFIX.size + header_len + payload_len:
            raise IndexFileError(
                f"{source}: {size} bytes on disk, header says "
                f"{_PREFIX.size + header_len + payload_len}: truncated or corrupt"
            )
        body = np.empty(header_len + payload_len, dtype=np.uint8)
        if stream.readinto(memoryview(body)) != body.shape[0]:
            raise IndexFileError(f"{source}: changed while being read")
        if hashlib.sha256(memoryview(body)).digest() != expected:
            raise IndexFileError(f"{source}: checksum mismatch, the file is corrupt")
        try:
            header = json.loads(body[:header_len].tobytes())
            arrays = _read_sections(body[header_len:], header["sections"])
            faiss_index = faiss.deserialize_index(arrays["faiss_index"])
            # A copy, so the file buffer (the whole index) can be freed once faiss has parsed it.
            projection = arrays["projection"].copy() if "projection" in arrays else None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        return cls._checked(source, faiss_index, projection, header, expected, size)


def _verified_trailer(source: Path, stream: BinaryIO, size: int) -> tuple[tuple[Any, ...], bytes]:
    """The format-2 trailer, its lengths bounds-checked and the sha256 of the file verified by streaming."""
    if size < _TRAILER.size:
        raise IndexFileError(f"{source}: truncated ({size} bytes), not an index file")
    stream.seek(size - _TRAILER.size)
    trailer = _TRAILER.unpack(stream.read(_TRAILER.size))
    magic, version, faiss_len, header_offset, header_len, expected = trailer
    if magic != FILE_MAGIC:
        raise IndexFileError(f"{source}: truncated, or not an imgsim index file (no trailer)")
    if version != FORMAT_VERSION:
        raise IndexFileError(f"{source}: format {version}, this code reads {FORMAT_VERSION}")
    if (
        header_len > _MAX_HEADER_BYTES
        or faiss_len > header_offset
        or size != header_offset + header_len + _TRAILER.size
    ):
        raise IndexFileError(
            f"{source}: {size} bytes on disk, trailer says {header_offset + header_len + _TRAILER.size}: "
            "truncated or corrupt"
        )
    digest = hashlib.sha256()
    stream.seek(0)
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    remaining = header_offset + header_len
    while remaining:
        read = stream.readinto(view[: min(remaining, _HASH_CHUNK)])
        if not read:
            raise IndexFileError(f"{source}: changed while being read")
        digest.update(view[:read])  # hashlib releases the GIL: searches on other threads go on
        remaining -= read
    if digest.digest() != expected:
        raise IndexFileError(f"{source}: checksum mismatch, the file is corrupt")
    return trailer, expected


def _read_sections_from(stream: BinaryIO, layout: list[dict[str, Any]], *, limit: int) -> dict[str, np.ndarray]:
    """Sections read from the file (small: the projection), bounds-checked against the header's end."""
    arrays = {}
    for entry in layout:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(n) for n in entry["shape"])
        start = int(entry["offset"])
        length = dtype.itemsize * math.prod(shape)
        if start < 0 or start + length > limit:
            raise ValueError(f"section {entry['name']} lies outside the payload")
        if length >= _MAP_SECTIONS_FROM:
            # Large sections (the stored vectors) are mapped read-only, like the faiss blob: one copy per machine.
            mapped = np.memmap(stream, dtype=dtype, mode="r", offset=start, shape=shape)
            # Re-ranks read a few scattered rows: without this, read-around faults in ~128 kB per row read.
            raw = getattr(mapped, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_RANDOM"):
                raw.madvise(mmap.MADV_RANDOM)
            arrays[entry["name"]] = mapped
            continue
        stream.seek(start)
        arrays[entry["name"]] = np.frombuffer(stream.read(length), dtype=dtype).reshape(shape).copy()
    return arrays


def _write_all(stream: BinaryIO, parts: Sequence[bytes | np.ndarray]) -> None:
    """Write buffers without concatenating them (the faiss blob can be hundreds of MB)."""
    for part in parts:
        view = memoryview(np.ascontiguousarray(part)).cast("B") if isinstance(part, np.ndarray) else part
        stream.write(view)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; without it a power cut can bring the old name back."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_sections(payload: np.ndarray, layout: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Views into the payload, bounds-checked against the layout the header claims."""
    arrays = {}
    for entry in layout:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(n) for n in entry["shape"])
        start = int(entry["offset"])
        stop = start + dtype.itemsize * math.prod(shape)
        if start < 0 or stop > payload.shape[0]:
            raise ValueError(f"section {entry['name']} lies outside the payload")
        arrays[entry["name"]] = np.frombuffer(payload[start:stop], dtype=dtype).reshape(shape)
    return arrays


def build_index(
    *, ids: np.ndarray, vectors: np.ndarray, ratings: np.ndarray | None, params: IndexParams
) -> VectorIndex:
    """Index the library's vectors under their primary keys: exact below params.exact_below, else HNSW.

    The HNSW path fits the projection on at most PCA_FIT_MAX_ROWS rows. Vectors are re-normalised, so
    inner product is cosine either way.
    """
    started = time.perf_counter()
    item_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    items = _unit_rows(vectors, name="vectors")
    count, full_dim = items.shape
    if item_ids.shape[0] != count:
        raise ValueError(f"{item_ids.shape[0]} ids for {count} vectors")
    if np.unique(item_ids).shape[0] != count:
        raise ValueError("ids must be unique")
    features = rating_features(_item_rating_array(ratings, count), weight=params.rating_weight)

    kind = choose_kind(count=count, full_dim=full_dim, params=params)
    projection = None
    pca_info: dict[str, Any] = {"pca_dim": None, "pca_fit_rows": 0, "pca_kept_energy": None}
    if kind == "hnsw" and params.pca_dim < full_dim:
        projection, kept, fit_rows = _fit_projection(items, pca_dim=params.pca_dim, seed=count)
        pca_info = {"pca_dim": params.pca_dim, "pca_fit_rows": fit_rows, "pca_kept_energy": round(kept, 6)}
    indexed = np.ascontiguousarray(np.hstack([_project(items, projection), features]))
    del items
    indexed_dim = indexed.shape[1]

    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(indexed_dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        inner.hnsw.efSearch = params.ef_search
    else:
        inner = faiss.IndexFlatIP(indexed_dim)
    faiss_index = faiss.IndexIDMap(inner)
    faiss_index.add_with_ids(indexed, item_ids)

    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "count": count,
        "full_dim": full_dim,
        "indexed_dim": indexed_dim,
        **pca_info,
        "params": asdict(params),
        "rated_count": int(np.count_nonzero(~np.isnan(_item_rating_array(ratings, count)))),
        "build_seconds": round(time.perf_counter() - started, 3),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "faiss_version": faiss.__version__,
        "numpy_version": np.__version__,
    }
    return VectorIndex(faiss_index=faiss_index, projection=projection, metadata=metadata)


def choose_kind(*, count: int, full_dim: int, params: IndexParams) -> IndexKind:
    """Exact below the measured threshold, and whenever there are too few rows to fit the projection."""
    needs_pca = params.pca_dim < full_dim
    if count < params.exact_below or (needs_pca and count < PCA_MIN_ROWS_PER_DIM * full_dim):
        return "exact"
    return "hnsw"
