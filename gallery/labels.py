"""Words people read in place of machine codes: upload refusals, quality rejections, embedding failures.

The API keeps the codes (and its own messages); the web pages, the upload page's script included, show
these. Refusals whose server message is already written for people are not listed here and keep it.
"""

from __future__ import annotations

REASON_LABELS: dict[str, str] = {
    "too_small": "Too small",
    "solid_color": "Solid colour",
    "mostly_black": "Mostly black",
    "mostly_white": "Mostly white",
    "blurry": "Blurry",
    "model_unavailable": "Model unavailable",
    "embedding_error": "Embedding error",
    "embedding_interrupted": "Embedding interrupted",
    "file_missing": "File missing",
}

# Refusal codes whose server message carries decoder details (raw Pillow text) rather than advice.
UPLOAD_ERROR_MESSAGES: dict[str, str] = {
    "corrupt_image": (
        "This file is damaged or incomplete (it may have been cut short while copying), so it cannot be "
        "read. Nothing was stored; try the original file again."
    ),
    "empty_file": "This file is empty (0 bytes). Nothing was stored.",
}


def reason_label(code: str) -> str:
    """'Solid colour' for solid_color; an unknown code reads as words rather than snake_case."""
    return REASON_LABELS.get(code, code.replace("_", " ").capitalize()) if code else ""


def upload_error_message(*, code: str, message: str) -> str:
    """The sentence the upload pages show for a refused file."""
    return UPLOAD_ERROR_MESSAGES.get(code, message)
