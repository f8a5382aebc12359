"""Writes of the duplicates app, one module per job: detection (pairs, the durable to-do list, the library
scan), groups (pending groups kept in step with the pairs, and the lock every writer takes first),
pair_review and group_review (decisions and their undo), trash (trash and restore as review uses them),
calibration and thresholds (measured thresholds, applied and undone, pairs re-banded) and rejected_copies
(the library photo a rejected blurred image copies)."""
