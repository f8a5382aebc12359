"""Forms of the duplicate review pages."""

from __future__ import annotations

from django import forms

from duplicates.models import DuplicatePair
from duplicates.services.pair_review import ResolveAction
from duplicates.threshold_measurement import DEFAULT_SAMPLE_SIZE, DEFAULT_TARGET_PRECISION


class ReviewFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=DuplicatePair.Kind.choices, required=False)
    status = forms.ChoiceField(
        choices=[*DuplicatePair.ReviewStatus.choices, ("reviewed", "Reviewed"), ("all", "All")], required=False
    )


class ResolveForm(forms.Form):
    action = forms.ChoiceField(choices=list(ResolveAction.LABELS.items()))


class CalibrationForm(forms.Form):
    sample_size = forms.IntegerField(
        min_value=10, max_value=2000, initial=DEFAULT_SAMPLE_SIZE, help_text="Library images to edit and embed."
    )
    target_precision = forms.FloatField(
        min_value=0.5, max_value=0.99999, initial=DEFAULT_TARGET_PRECISION, help_text="e.g. 0.999"
    )


class ThresholdsApplyForm(forms.Form):
    """A calibration's thresholds, as suggested or adjusted; without confirm the page shows old -> new first."""

    near_duplicate = forms.FloatField(required=False)
    similar = forms.FloatField(required=False)
    match = forms.FloatField(required=False)
    confirm = forms.BooleanField(required=False)


class ThresholdsUndoForm(forms.Form):
    setting = forms.IntegerField(required=False)
