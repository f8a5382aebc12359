"""Nearest-neighbour index over image embeddings: PCA + FAISS HNSW, or exact search for small libraries.

The stored full vectors are the source of truth; an index is derived from them and rebuildable. A search
for k results runs in three steps, and the caller owns the vectors for the last two:

1. ``VectorIndex.search(queries, k=index.candidate_count(k))`` -> candidate ids (approximate for HNSW);
2. ``rerank(...)`` with the candidates' full vectors -> exact cosine + rating term, best k;
3. ``exact_search(...)`` over the vectors added since the build (the "tail"), then ``merge_results``
   (the product's tail is a VectorTail; from a few thousand rows its older rows are searched through a
   TailGraph, the candidates re-scored exactly).

Scores from step 1 live in the indexed space (PCA cosine for HNSW); steps 2 and 3 score on the full
vectors, so only their results are comparable and mergeable.

One module per job: scoring.py (the rating term and the exact kernels: exact search, top k, re-rank, merge),
vector_index.py (VectorIndex, its file format, the PCA projection, build_index) and tail.py (the vectors
newer than the build: VectorTail, its snapshots and graph). Callers import from the module that holds a name.

Numpy and faiss only: the web process imports this package and must not pull in torch.
"""
