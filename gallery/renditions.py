"""Display renditions made on request: the image page's large preview and the search query's thumbnail.

Neither is stored: the thumbnail (IMGSIM_THUMBNAIL_SIZE) is too small for the image page, and an original
can be a 50 MB TIFF no browser shows, so the page asks for a WebP of a bounded size that the browser
caches. Pixels come from core.pixels like every other consumer's: JPEGs decoded at a reduced scale (draft
mode), other formats reduced strip by strip within the decode budget, 16-bit pictures scaled to 8 bits.
"""

from __future__ import annotations

import base64
import io
from typing import IO

from PIL import Image as PILImage

from core.pixels import upright_rgb

PREVIEW_SIZES = {"large": 1600, "full": 4096}
QUERY_THUMBNAIL_SIZE = 320


def _webp(handle: IO[bytes], *, size: int, quality: int) -> bytes:
    with PILImage.open(handle) as picture:
        upright = upright_rgb(picture, max_side=size, resample=PILImage.Resampling.LANCZOS)
        picture.close()  # frees the decoded original (leaving the block does not): it never meets the encoder
    buffer = io.BytesIO()
    upright.save(buffer, format="WEBP", quality=quality, method=3)
    return buffer.getvalue()


def image_preview_webp(*, handle: IO[bytes], size: int) -> bytes:
    """A stored original as an upright WebP at most `size` pixels on its long side."""
    return _webp(handle, size=size, quality=85)


def query_thumbnail_data_url(*, data: bytes, size: int = QUERY_THUMBNAIL_SIZE) -> str:
    """A search query photo (never stored) as a small inline data: URL, to show it beside its results."""
    return "data:image/webp;base64," + base64.b64encode(_webp(io.BytesIO(data), size=size, quality=80)).decode()
