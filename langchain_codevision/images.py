"""Image input and output: load anything a user may pass, validate, resize, encode.

* :func:`load_image` accepts a path, ``file://`` or ``http(s)://`` URL, raw bytes, base64,
  a data URL, a PIL image or a numpy array, and raises :class:`ImageInputError` (a
  ``ValueError``) with a clear message for anything unreadable, unsupported or too large.
* :func:`fit_pixel_budget` resizes a copy into a model's pixel budget (multiples of 28 for the
  Qwen-VL family); the tool itself always works on originals.
* :func:`to_image_block` encodes an image as a LangChain standard image content block, and
  :func:`image_from_block` reads one back (any provider format, via ``content_blocks``).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_INPUT_PIXELS = 64_000_000
"""Largest input accepted (pixels); beyond it an image is treated as a decompression bomb."""

ImageFormat = Literal["png", "jpeg", "webp"]


class ImageInputError(ValueError):
    """An input image could not be read, or is not acceptable."""


def load_image(
    source: Any,
    *,
    max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
    url_timeout: float = 20.0,
) -> Image.Image:
    """Load an image from any supported source into a decoded PIL image.

    Args:
        source: Path (str or ``os.PathLike``), ``file://``/``http(s)://`` URL, data URL,
            base64 string, ``bytes``, PIL image or numpy array (HxW or HxWxC).
        max_pixels: Reject images with more pixels than this (decompression bombs).
        url_timeout: Seconds allowed for an ``http(s)`` download.

    Returns:
        A fully loaded PIL image (RGB, RGBA or L).

    Raises:
        ImageInputError: The source is unsupported, unreadable, corrupt or too large.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = _decode(bytes(source), "the given bytes", max_pixels)
    elif isinstance(source, os.PathLike):
        image = _open_path(Path(source), max_pixels)
    elif isinstance(source, str):
        image = _from_string(source.strip(), max_pixels, url_timeout)
    else:
        raise ImageInputError(
            f"unsupported image input of type {type(source).__name__}; pass a path, URL, "
            "bytes, base64 string, data URL, PIL image or numpy array"
        )
    _check_size(image, max_pixels, "the image")
    return _normalise_mode(image)


def _from_string(text: str, max_pixels: int, url_timeout: float) -> Image.Image:
    if not text:
        raise ImageInputError("the image string is empty")
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise ImageInputError("only base64 data URLs are supported (data:image/...;base64,)")
        return _decode(_b64(payload), "the data URL", max_pixels)
    if lowered.startswith(("http://", "https://")):
        return _decode(_download(text, url_timeout), text, max_pixels)
    if lowered.startswith("file://"):
        return _open_path(Path(urllib.request.url2pathname(text[7:])), max_pixels)
    if len(text) < 4096 and (os.sep in text or "." in text[-6:]):
        path = Path(text).expanduser()
        if path.exists() or not _looks_like_base64(text):
            return _open_path(path, max_pixels)
    if _looks_like_base64(text):
        return _decode(_b64(text), "the base64 string", max_pixels)
    return _open_path(Path(text).expanduser(), max_pixels)


def _looks_like_base64(text: str) -> bool:
    head = text[:256].rstrip("=")
    return len(text) >= 16 and all(c.isalnum() or c in "+/=_-\n\r" for c in head)


def _b64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageInputError(f"invalid base64 image data: {exc}") from exc


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read(256 * 1024 * 1024 + 1)
    except OSError as exc:
        raise ImageInputError(f"could not download image {url}: {exc}") from exc


def _open_path(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise ImageInputError(f"image file not found: {path}")
    if not path.is_file():
        raise ImageInputError(f"not a file: {path}")
    return _decode(path.read_bytes(), str(path), max_pixels)


def _decode(data: bytes, origin: str, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageInputError(f"{origin}: no image data (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            _check_size(image, max_pixels, origin)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(f"{origin}: refused as a decompression bomb ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise ImageInputError(f"{origin}: not a recognised image format") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageInputError(f"{origin}: corrupt or truncated image ({exc})") from exc
    return image


def _check_size(image: Image.Image, max_pixels: int, origin: str) -> None:
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageInputError(f"{origin}: has a zero-sized side ({width}x{height})")
    if width * height > max_pixels:
        raise ImageInputError(
            f"{origin}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (possible decompression bomb); raise max_pixels to allow it"
        )


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageInputError(
            f"numpy image must be HxW, HxWx3 or HxWx4, got shape {tuple(array.shape)}"
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _normalise_mode(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "RGBA", "L"):
        return image
    if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) or 1.0
        return Image.fromarray((array / top * 255).astype(np.uint8))
    return image.convert("RGB")


@dataclass(frozen=True)
class PixelBudget:
    """How large the images shown to the model may be.

    Attributes:
        min_pixels: Smallest area after resizing.
        max_pixels: Largest area after resizing (the reference caps near 1024*8*28*28).
        factor: Sides are rounded to multiples of this (28 for Qwen2.5-VL).
    """

    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 1024 * 28 * 28
    factor: int = 28

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError("need 0 < min_pixels <= max_pixels")


def budget_size(width: int, height: int, budget: PixelBudget) -> tuple[int, int]:
    """Qwen-style smart resize: keep the aspect ratio, fit the area, round to ``factor``."""
    f = budget.factor
    w = max(f, round(width / f) * f)
    h = max(f, round(height / f) * f)
    if w * h > budget.max_pixels:
        scale = math.sqrt(width * height / budget.max_pixels)
        w = max(f, math.floor(width / scale / f) * f)
        h = max(f, math.floor(height / scale / f) * f)
    elif w * h < budget.min_pixels:
        scale = math.sqrt(budget.min_pixels / (width * height))
        w = math.ceil(width * scale / f) * f
        h = math.ceil(height * scale / f) * f
    return w, h


def fit_pixel_budget(image: Image.Image, budget: PixelBudget | None) -> Image.Image:
    """A copy of ``image`` resized into ``budget`` (the original when no budget is set)."""
    if budget is None:
        return image
    size = budget_size(*image.size, budget)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)


def encode_image(image: Image.Image, fmt: ImageFormat = "png", quality: int = 90) -> bytes:
    """Encode for transport: PNG (lossless, fast level) for text, JPEG/WebP when smaller wins."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'")
    return buffer.getvalue()


def to_image_block(
    image: Image.Image,
    *,
    budget: PixelBudget | None = None,
    fmt: ImageFormat = "png",
) -> dict[str, Any]:
    """A LangChain standard image block (``{"type": "image", "base64": ..., "mime_type": ...}``)."""
    data = encode_image(fit_pixel_budget(image, budget), fmt)
    return {
        "type": "image",
        "base64": base64.b64encode(data).decode("ascii"),
        "mime_type": f"image/{fmt}",
    }


def image_from_block(block: dict[str, Any]) -> Image.Image:
    """Decode a standard image block or an OpenAI ``image_url`` part."""
    if block.get("type") == "image_url":
        url = (
            block["image_url"]["url"]
            if isinstance(block["image_url"], dict)
            else block["image_url"]
        )
        return load_image(url)
    if block.get("base64"):
        return load_image(_b64(block["base64"]))
    if block.get("url"):
        return load_image(block["url"])
    if block.get("data") and block.get("source_type") == "base64":
        return load_image(_b64(block["data"]))
    raise ImageInputError(f"image block has no data: keys {sorted(block)}")


def check_output_image(image: Image.Image, max_aspect_ratio: float = 200.0) -> str | None:
    """Why a tool output cannot be shown to the model, or ``None`` when it is fine."""
    width, height = image.size
    if width == 0 or height == 0:
        return f"the result image has a zero-sized side ({width}x{height})"
    ratio = max(width, height) / min(width, height)
    if ratio >= max_aspect_ratio:
        return (
            f"the result image is {width}x{height}: its aspect ratio {ratio:.0f} is not below "
            f"{max_aspect_ratio:g}"
        )
    return None


class TrajectoryImage(TypedDict):
    """One image of an episode at full resolution, as stored in graph state.

    A plain dict of primitives (lossless PNG bytes plus metadata), so that any LangGraph
    checkpointer serialises it. Build one with :func:`trajectory_image`, read it back with
    :func:`decode_trajectory_image`.
    """

    png: bytes
    index: int
    origin: str
    step: int | None
    width: int
    height: int


def trajectory_image(
    image: Image.Image, index: int, origin: str = "input", step: int | None = None
) -> TrajectoryImage:
    """Store ``image`` (PNG-encoded, lossless) as trajectory entry ``index``."""
    return TrajectoryImage(
        png=encode_image(image, "png"),
        index=index,
        origin=origin,
        step=step,
        width=image.size[0],
        height=image.size[1],
    )


def decode_trajectory_image(item: TrajectoryImage) -> Image.Image:
    """Decode a stored trajectory image."""
    image = Image.open(io.BytesIO(item["png"]))
    image.load()
    return image


def serialisable_image_input(_old: Any, new: Any) -> Any:
    """State reducer for the ``image`` input: PIL images and arrays become PNG bytes.

    Checkpointers cannot serialise PIL objects; paths, URLs, base64 and bytes pass unchanged.
    """
    if isinstance(new, (list, tuple)):
        return [serialisable_image_input(None, item) for item in new]
    if isinstance(new, Image.Image):
        return encode_image(_normalise_mode(new), "png")
    if isinstance(new, np.ndarray):
        return encode_image(_from_array(new), "png")
    if isinstance(new, os.PathLike):
        return os.fspath(new)
    return new
