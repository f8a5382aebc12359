"""manage.py calibrate_duplicates: measure precision/recall per threshold on a sample of the library."""

from __future__ import annotations

import shutil
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from duplicates.models import CalibrationRun
from duplicates.selectors.thresholds import duplicate_bands
from duplicates.services.calibration import calibration_run_create, calibration_run_execute
from duplicates.threshold_measurement import DEFAULT_SAMPLE_SIZE, DEFAULT_TARGET_PRECISION, CalibrationResult


class Command(BaseCommand):
    help = (
        "Calibrate the duplicate thresholds of the configured backbone on your own images: edited copies of a "
        "sample (resize, recompression, crop, brightness, small rotation, mirror) against the rest of the "
        "library. Prints precision/recall per threshold and suggested thresholds, and saves a plot."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE_SIZE, help="Images to edit and embed.")
        parser.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the sample and the edits.")
        parser.add_argument("--plot", type=Path, help="Also copy the PNG plot here.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sample"] < 1:
            raise CommandError("--sample must be at least 1")
        if not 0 < options["target_precision"] < 1:
            raise CommandError("--target-precision must be between 0 and 1, e.g. 0.999")
        run = calibration_run_create(
            sample_size=options["sample"], target_precision=options["target_precision"], schedule=False
        )
        self.stdout.write(f"Calibrating {run.model_name} on up to {run.sample_size} images (run #{run.pk})...")
        run = calibration_run_execute(run=run, seed=options["seed"])
        if run.status != CalibrationRun.Status.DONE:
            raise CommandError(f"Calibration failed: {run.error}")
        result = CalibrationResult(**{key: value for key, value in run.result.items() if key in _FIELDS})
        self._report(run, result)
        if options["plot"]:
            with run.plot.open("rb") as source, options["plot"].open("wb") as target:
                shutil.copyfileobj(source, target)
            self.stdout.write(f"Plot: {options['plot']}")
        else:
            self.stdout.write(f"Plot: {run.plot.path}")

    def _report(self, run: CalibrationRun, result: CalibrationResult) -> None:
        self.stdout.write(
            f"{run.result['sampled']} images x {len(result.per_transform)} edits = {result.positives} copies "
            f"against {run.result['pool_size']:,} library images ({result.negatives:,} negative pairs); "
            f"{len(result.probable_copies)} existing copies of sampled images set aside."
        )
        self.stdout.write(f"\n{'threshold':>9} {'precision':>10} {'recall':>8} {'false pos':>10}")
        for threshold, precision, recall, false_positives in result.table():
            self.stdout.write(f"{threshold:>9.3f} {precision:>10.5f} {recall:>8.4f} {false_positives:>10,}")
        self.stdout.write("\nEdited copies, cosine to their original:")
        for name, stats in result.per_transform.items():
            self.stdout.write(f"  {name:>12}: mean {stats['mean']:.3f}, min {stats['min']:.3f}")
        current = duplicate_bands(model_name=run.model_name)
        self.stdout.write(
            f"\nIn force: near-duplicate >= {current.near_duplicate:.3f}, similar >= {current.similar:.3f}"
        )
        for note in result.notes:
            self.stdout.write(self.style.WARNING(note))
        if result.suggested_near_duplicate is None:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Suggested for precision >= {result.target_precision}: near-duplicate "
                f"{result.suggested_near_duplicate:.3f} (recall on edited copies {result.recall_at_suggested:.4f}), "
                f"similar {result.suggested_similar:.3f}, search match (same scene) {result.suggested_match:.3f}"
            )
        )
        self.stdout.write(
            f'To use them: "Apply these thresholds" on the Calibrate page, or POST /api/thresholds/apply/ '
            f'{{"calibration_run": {run.pk}}} (logged, undoable; pairs are re-banded in the background). '
            f"Environment variables win over applied thresholds: "
            f"IMGSIM_NEAR_DUPLICATE_THRESHOLD={result.suggested_near_duplicate:.3f} "
            f"IMGSIM_SIMILAR_THRESHOLD={result.suggested_similar:.3f} "
            f"IMGSIM_MATCH_THRESHOLD={result.suggested_match:.3f} and a restart."
        )


_FIELDS = set(CalibrationResult.__dataclass_fields__)
