"""Reads of the duplicates app, one module per job: pairs (pair review lists, counts, suggestions and the
decision log), groups (group review: groups, each member's evidence and what sets it apart), thresholds (the
bands in force, their origin and history, calibrations) and detection (what a check depends on, what awaits
it, the library k-NN, check before upload)."""
