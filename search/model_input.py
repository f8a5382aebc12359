"""An image file -> the model's input pixels, decoding no more than the input needs: no torch, no Django.

JPEG draft mode (libjpeg's DCT scaling) decodes at the largest reduction that keeps both sides at least the
input size, and for large progressive JPEGs decoded at 1/8 scale a stream without the AC data that scale never
uses (`_progressive_dc_only_stream`) saves most of the entropy decoding. The decode budget of core.pixels is
checked before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from core.pixels import check_decode_cost, upright_rgb

INPUT_SIZE = 224

ImageSource = str | os.PathLike[str] | bytes | BinaryIO


class ImageDecodeError(ValueError):
    """The input is not an image we can decode (corrupt, truncated, unsupported)."""


_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # first marker after entropy-coded data
_EOB_RUN_SYMBOLS = bytes(r << 4 for r in range(15))  # EOB0..EOB14: "the next 2^r + bits blocks are zero"
# An AC Huffman table (class 1, id 0) whose 15 symbols all have 4-bit codes: code value r <=> EOBr.
_EOB_RUN_TABLE = b"\xff\xc4\x00\x22\x10" + bytes([0, 0, 0, 15] + [0] * 12) + _EOB_RUN_SYMBOLS
_NO_RESTARTS = b"\xff\xdd\x00\x04\x00\x00"
_MAX_EOB_RUN = 32767


def _zero_ac_scan(blocks: int) -> bytes:
    """Entropy-coded data of a first AC scan (Ss=1, Se=63) saying every coefficient of `blocks` is 0."""
    bits = []
    while blocks:
        run = min(blocks, _MAX_EOB_RUN)
        r = run.bit_length() - 1
        bits.append(format(r, "04b") + (format(run - (1 << r), f"0{r}b") if r else ""))
        blocks -= run
    bitstring = "".join(bits)
    bitstring += "1" * (-len(bitstring) % 8)  # pad with 1-bits, as the standard says
    data = int(bitstring, 2).to_bytes(len(bitstring) // 8, "big")
    return data.replace(b"\xff", b"\xff\x00")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _components_needing_ac_at_one_eighth(components: list[tuple[int, int, int]]) -> set[int]:
    """Components that libjpeg(-turbo) decodes at 1/8 scale with a 2x2 or larger IDCT, not DC alone.

    A subsampled component (chroma of 4:2:0) gets a larger IDCT instead of being upsampled, which reads its
    low AC coefficients too; the rule mirrors jdmaster.c (a component's IDCT size doubles while both the
    horizontal and vertical sampling ratios allow it).
    """
    h_max = max(h for _, h, _ in components)
    v_max = max(v for _, _, v in components)
    return {cid for cid, h, v in components if h_max % (2 * h) == 0 and v_max % (2 * v) == 0}


def _progressive_dc_only_stream(data: bytes) -> bytes | None:
    """The same progressive JPEG with the AC coefficients that 1/8-scale decoding ignores set to zero.

    At 1/8 scale libjpeg's IDCT reads only each block's DC coefficient, yet a progressive file still makes
    it Huffman-decode every AC scan (most of the file: 480 ms of 490 ms for a 5640x3172 photo). Keeping the
    DC scans and declaring the AC coefficients zero with a few bytes of end-of-band runs decodes to the very
    same pixels at 1/8 scale (tests check pixel equality). Zeros are declared rather than the scans dropped
    so that libjpeg does not switch on block smoothing for missing coefficients. Components that need their
    AC coefficients (4:2:0 chroma) keep their AC scans; progressive AC scans hold one component each.
    Returns None for anything else (baseline, arithmetic coding, 12-bit, odd structure): decode normally.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    kept = [data[:2]]
    components: list[tuple[int, int, int]] = []
    height = width = 0
    needs_ac: set[int] = set()
    pos, end = 2, len(data)
    while pos + 2 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image: all-zero AC scans for the components whose AC scans were dropped
            zeroed = [c for c in components if c[0] not in needs_ac]
            if not zeroed:
                return None
            h_max = max(h for _, h, _ in components)
            v_max = max(v for _, _, v in components)
            kept += [_NO_RESTARTS, _EOB_RUN_TABLE]
            for component_id, h, v in zeroed:
                blocks_x = _ceil_div(_ceil_div(width * h, h_max), 8)
                blocks_y = _ceil_div(_ceil_div(height * v, v_max), 8)
                kept.append(b"\xff\xda\x00\x08\x01" + bytes([component_id, 0x00, 1, 63, 0x00]))
                kept.append(_zero_ac_scan(blocks_x * blocks_y))
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        segment_end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos + 4 > end or segment_end > end:
            return None
        if marker == 0xC2:  # progressive Huffman frame header
            if components or data[pos + 4] != 8:  # a second frame, or not 8-bit
                return None
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            components = [
                (data[pos + 10 + 3 * i], data[pos + 11 + 3 * i] >> 4, data[pos + 11 + 3 * i] & 0x0F)
                for i in range(data[pos + 9])
            ]
            if not height or not width or not components or any(not h or not v for _, h, v in components):
                return None
            needs_ac = _components_needing_ac_at_one_eighth(components)
        elif (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xDC:
            return None  # another frame type (baseline, arithmetic, lossless...) or DNL: leave it alone
        if marker == 0xDA:  # start of scan: keep DC scans and AC scans of components that need them
            if not components:
                return None
            first_component = data[pos + 5]
            spectral_start = data[pos + 5 + 2 * data[pos + 4]]
            found = _SCAN_END.search(data, segment_end)
            scan_end = found.start() if found else end
            if spectral_start == 0 or first_component in needs_ac:
                kept.append(data[pos:scan_end])
            pos = scan_end
            continue
        kept.append(data[pos:segment_end])
        pos = segment_end
    return None


def _source_bytes(source: ImageSource) -> tuple[bytes, str]:
    """The file's bytes and a label for error messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), f"<{len(source)} bytes>"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise ImageDecodeError(f"Cannot read image file {path}: {exc.strerror or exc}") from exc
    label = str(getattr(source, "name", "<file object>"))
    try:
        return source.read(), label
    except OSError as exc:
        raise ImageDecodeError(f"Cannot read image {label}: {exc}") from exc


def _open_drafted(data: bytes, size: int) -> Image.Image:
    """The image decoded (loaded) at the largest JPEG DCT scale that keeps both sides >= size; DecodeTooLarge
    before decoding when that needs more memory than core.pixels.decode_budget allows."""
    image = Image.open(io.BytesIO(data))
    progressive = image.info.get("progressive") or image.info.get("progression")
    width, height = image.size
    if image.format == "JPEG" and progressive and min(width // size, height // size) >= 8:
        dc_only = _progressive_dc_only_stream(data)
        if dc_only is not None:
            try:
                candidate = Image.open(io.BytesIO(dc_only))
                candidate.draft("RGB", (size, size))
                if candidate.size == (_ceil_div(width, 8), _ceil_div(height, 8)):  # only exact at 1/8
                    check_decode_cost(candidate)
                    candidate.load()
                    return candidate
            except Exception:  # the original stream decides whether the file is broken
                pass
    image.draft("RGB", (size, size))
    check_decode_cost(image)
    image.load()
    return image


def load_rgb_for_embedding(source: ImageSource, *, size: int = INPUT_SIZE) -> Image.Image:
    """Decode only as many pixels as a `size` x `size` model input needs; upright RGB.

    JPEGs are decoded with DCT scaling at the largest reduction (1/2, 1/4, 1/8) that keeps both sides
    >= `size`, so the final squash to size x size never upsamples. EXIF orientation is applied, GIFs and
    other animations give their first frame. Raises ImageDecodeError for anything that isn't a decodable
    image.
    """
    data, label = _source_bytes(source)
    try:
        image = _open_drafted(data, size)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"Image {label} has too many pixels to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow's plugins raise many kinds of errors on corrupt files
        raise ImageDecodeError(f"Cannot decode image {label}: {exc}") from exc
    try:
        # The one normaliser every pixel consumer shares (orientation, 16-bit, alpha on white); no max_side:
        # the draft above already chose the scale, and an 8-bit picture's pixels stay exactly as decoded
        # unless a full-size copy would not fit in the decode budget (then it is box-reduced first).
        return upright_rgb(image)
    except Exception as exc:
        raise ImageDecodeError(f"Cannot convert image {label} (mode {image.mode}) to RGB: {exc}") from exc


def model_input_pixels(image: Image.Image, *, size: int = INPUT_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the squash resize of transforms.Resize((size, size)) on a PIL image."""
    rgb = image if image.mode == "RGB" else upright_rgb(image)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_for_model(source: ImageSource, size: int) -> np.ndarray | str:
    """Pixels for the model or the error message; runs in the decode thread, so it never raises."""
    try:
        return model_input_pixels(load_rgb_for_embedding(source, size=size), size=size)
    except ImageDecodeError as exc:
        return str(exc)
    except Exception as exc:  # an unforeseen decoder failure is one bad item, not a failed batch
        return f"Cannot decode image: {type(exc).__name__}: {exc}"
