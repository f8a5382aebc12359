"""Forms of the search pages."""

from __future__ import annotations

from django import forms
from django.conf import settings


def k_field() -> forms.IntegerField:
    return forms.IntegerField(
        label="Results", min_value=1, max_value=settings.IMGSIM_SEARCH_MAX_K, initial=10, required=False
    )


class SearchByUploadForm(forms.Form):
    file = forms.FileField(label="Query image", widget=forms.ClearableFileInput(attrs={"accept": "image/*"}))
    k = k_field()
    rating = forms.TypedChoiceField(
        label="Rating",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "From the photo's EXIF"), *[(str(n), f"{n} ★") for n in range(6)]],
    )
    add_to_library = forms.BooleanField(label="Also add it to the library", required=False)

    @classmethod
    def refused(cls, message: str) -> SearchByUploadForm:
        """The form showing why a whole request was refused (too large, too often)."""
        form = cls(data={}, files={})
        form.full_clean()
        form.errors.clear()
        form.errors["file"] = form.error_class([message])
        return form

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["k"] = k_field()


class SimilarForm(forms.Form):
    k = k_field()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["k"] = k_field()
