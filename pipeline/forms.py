"""Forms of the pipeline's pages: registering a library source."""

from __future__ import annotations

from django import forms


class LibrarySourceForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="How the library names it, e.g. “NAS photos”.")
    root = forms.CharField(
        label="Folder",
        max_length=1024,
        help_text="Absolute path on the server, seen at the same path by the web and worker machines.",
        widget=forms.TextInput(attrs={"placeholder": "/mnt/nas/photos", "spellcheck": "false"}),
    )
    writable = forms.BooleanField(
        required=False,
        label="Writable",
        help_text="Trashing an image moves its file into .imgsim-trash/ inside the folder (restore moves it back, "
        "emptying the trash deletes it). Unticked, imgsim never changes the folder.",
    )
