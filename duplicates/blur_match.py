"""Comparing a blurred photo with sharp ones: blur both alike, then compare (pure pixels, no Django, no torch).

Blur lowers the cosine of a copy to its original a lot (median 0.77 for copies rejected as blurry, down to
0.44), so the plain cosine finds only part of them at a threshold that names no wrong photo. Blurring the
query and each candidate with the same strong Gaussian, at the model's input size, removes the difference the
original blur made and little else: the copy and its original then score like near-duplicates, two different
photos do not. bench/blurred_copies.py measures both.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

# Gaussian radius in pixels of the 224 x 224 model input, stronger than the blur of the copies measured
# (0.4-1.0 % of the long side, about 1-2.2 px at 224), so both sides end equally blurred. bench/blurred_copies.py,
# blurred copies whose original is among the candidates: at 2.5 px they score from 0.75 and a wrong photo up to
# 0.88 (overlap), at 4 px from 0.85 against 0.87 (overlap), at 6 px from 0.956 against at most 0.904.
REBLUR_RADIUS = 6.0


def reblurred(pixels: np.ndarray, *, radius: float = REBLUR_RADIUS) -> np.ndarray:
    """(size, size, 3) uint8 model input, blurred with a Gaussian of `radius` pixels."""
    blurred = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, dtype=np.uint8)
