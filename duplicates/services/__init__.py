"""Writes of the duplicates app, one module per job: detection (pairs, the durable to-do list, the library
scan), review (decisions and their undo) and calibration (measured thresholds)."""
