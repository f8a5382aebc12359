"""Writes of the search side, one module per job: the embedding queue (embedding_queue), the index's lifecycle
from build to repair (index_lifecycle), thresholds applied to a model (thresholds), and the change log every
write to the library records itself in (library_changes). What follows embedding (duplicate detection) is
composed by the pipeline app."""
