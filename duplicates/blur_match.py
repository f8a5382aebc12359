"""Comparing a blurred photo with sharp ones: blur both alike, then compare (pure pixels, no Django, no torch).

Blur lowers the cosine of a copy to its original a lot, so the plain cosine finds only part of the copies
rejected as blurry at a threshold that names no wrong photo. Blurring the query and each candidate with the
same strong Gaussian, at the model's input size, removes the difference the original blur made and little
else: the copy and its original then score like near-duplicates, two different photos do not.
bench/blurred_copies.py measures both.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

# Gaussian radius in pixels of the 224 x 224 model input, stronger than the blur a rejected copy carries, so
# both sides end equally blurred: of the radii measured, the first at which copies and wrong photos stop
# overlapping (bench/blurred_copies.py, figures in bench/README.md).
REBLUR_RADIUS = 6.0


def reblurred(pixels: np.ndarray, *, radius: float = REBLUR_RADIUS) -> np.ndarray:
    """(size, size, 3) uint8 model input, blurred with a Gaussian of `radius` pixels."""
    blurred = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, dtype=np.uint8)
