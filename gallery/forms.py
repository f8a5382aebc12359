"""Forms of the web UI."""

from __future__ import annotations

from typing import Any

from django import forms

from gallery.models import Image
from gallery.selectors import IMAGE_ORDERINGS

RATING_CHOICES = [
    ("", "Any rating"),
    *[(f"{n}+", f"{n}★ and up") for n in (4, 3, 2, 1)],
    *[(str(n), f"exactly {n}★") for n in (5, 4, 3, 2, 1, 0)],
    ("unrated", "Unrated"),
]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (the non-JavaScript fallback of the upload page)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*", "multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single_clean = super().clean
        if isinstance(data, list | tuple):
            return [single_clean(item, initial) for item in data]
        return [single_clean(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(label="Images")

    @classmethod
    def refused(cls, message: str) -> UploadForm:
        """The form showing why a whole request was refused (too large, too many, too often)."""
        form = cls(data={}, files={})
        form.full_clean()
        form.errors.clear()
        form.errors["files"] = form.error_class([message])
        return form


class GalleryFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All"), *Image.Status.choices])
    rating = forms.ChoiceField(required=False, choices=RATING_CHOICES, label="Rating")
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Name or camera",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. IMG_20 or EOS"}),
    )
    sort = forms.ChoiceField(
        required=False, choices=[(key, label) for key, (label, _) in IMAGE_ORDERINGS.items()], label="Sort by"
    )
