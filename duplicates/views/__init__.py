"""Staff web pages of the duplicates app, one module per job: groups (the review page), pairs (pair review,
the decision log, the re-scan), thresholds (calibration and thresholds) and trash."""
