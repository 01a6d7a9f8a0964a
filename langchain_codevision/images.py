"""Image input and output: load anything a user may pass, validate, resize, encode.

* :func:`load_image` accepts a path, ``file://`` or ``http(s)://`` URL, raw bytes, base64,
  a data URL, a PIL image or a numpy array, and raises :class:`ImageInputError` (a
  ``ValueError``) with a clear message for anything unreadable, unsupported or too large.
  The rules it enforces:

  - **Bytes**: a file is refused from its size on disk, before anything is read, when it is
    larger than ``max_bytes`` (:data:`DEFAULT_MAX_INPUT_BYTES`); bytes, base64 and data URLs
    are held to the same cap. Format detection reads only the file's header.
  - **Downloads** (``http``/``https`` only): one *total* deadline for connecting, redirects,
    headers and body (``url_timeout``, :data:`DEFAULT_URL_DEADLINE`), however slowly the
    server sends; a byte cap, checked against ``Content-Length`` before the body and again
    while reading; at most :data:`MAX_REDIRECTS` redirects, only to ``http``/``https`` and
    never from ``https`` down to ``http``. Proxies from the environment are not used.
  - **Pixels**: more than ``max_pixels`` (:data:`DEFAULT_MAX_INPUT_PIXELS`) is refused as a
    possible decompression bomb, checked from the header before pixels are decoded.
  - **EXIF orientation** is applied (the user saw the upright image), and the original tag
    value is recorded in ``image.info[EXIF_TRANSPOSED_KEY]``; see :data:`EXIF_TRANSPOSED_KEY`.
  - **Modes**: every PIL mode and numpy dtype becomes ``L``, ``RGB`` or ``RGBA`` by the rules
    of :func:`to_standard_mode` (16-bit and float data are scaled, not clipped).

* :func:`fit_pixel_budget` resizes a copy into a model's pixel budget (multiples of 28 for the
  Qwen-VL family) at any aspect ratio; the tool itself always works on originals.
* :func:`to_image_block` encodes an image as a LangChain standard image content block, and
  :func:`image_from_block` reads one back (any provider format, via ``content_blocks``).
  :func:`encode_image` accepts an image of any mode; its PNG is written in one pass at
  :data:`PNG_LEVEL` (lossless at any level, so the fastest level is used).
* :class:`TrajectoryImage` (made by :func:`trajectory_image`) keeps an episode's images as
  pixels and encodes each one to PNG once, only when a checkpointer or an export asks;
  :func:`trajectory_images` returns a graph output's images as PIL copies.
* The codec (:func:`encode_view`, :func:`encode_image`, :func:`trajectory_image`) takes a
  :data:`PixelSource`: a PIL image or an 8-bit array. A kernel's result arrives as an array
  read straight from its pixel buffer and stays one up to the model's view; a PIL copy is
  made only when something reads ``.image``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import http.client
import io
import math
import os
import re
import socket
import ssl
import stat
import struct
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._opencv import opencv

try:  # a SIMD base64 encoder, some 50x the standard library's (the same text)
    from pybase64 import b64encode_as_string as _fast_b64
except ImportError:  # pragma: no cover - pybase64 is a dependency; this keeps it optional
    _fast_b64 = None

try:  # ISA-L's deflate: the same zlib stream format, several times faster at low levels
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _deflate = zlib

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_URL_DEADLINE",
    "EXIF_TRANSPOSED_KEY",
    "MAX_REDIRECTS",
    "PNG_LEVEL",
    "REFUSED_FORMATS",
    "STANDARD_MODES",
    "ImageFormat",
    "ImageInputError",
    "PixelBudget",
    "PixelSource",
    "TrajectoryImage",
    "as_pil",
    "as_trajectory_image",
    "base64_text",
    "budget_size",
    "check_output_image",
    "copied_pixels",
    "data_url",
    "decode_trajectory_image",
    "encode_image",
    "encode_view",
    "fit_pixel_budget",
    "frozen_pixels",
    "grey_channel",
    "image_from_block",
    "load_image",
    "pixel_size",
    "resize_image",
    "serialisable_image_input",
    "to_image_block",
    "to_standard_mode",
    "trajectory_image",
    "trajectory_images",
]

DEFAULT_MAX_INPUT_PIXELS = 64_000_000
"""Largest input accepted (pixels); beyond it an image is treated as a decompression bomb."""

DEFAULT_MAX_INPUT_BYTES = 256 * 1024 * 1024
"""Largest encoded input accepted (bytes): file size on disk, download, bytes or base64."""

DEFAULT_URL_DEADLINE = 20.0
"""Seconds an ``http(s)`` download may take in total (connect, redirects, headers, body)."""

MAX_REDIRECTS = 5
"""Most redirects followed for one download."""

EXIF_TRANSPOSED_KEY = "codevision_exif_transposed"
"""``image.info`` key set by :func:`load_image` when it applied an EXIF orientation.

Its value is the original EXIF ``Orientation`` tag (2-8); the pixels returned are upright
(as a viewer shows them) and carry no orientation tag any more. Absent when nothing was done.
"""

REFUSED_FORMATS = frozenset({"EPS"})
"""PIL formats never opened: EPS runs an external interpreter (Ghostscript) to decode."""

ImageFormat = Literal["png", "jpeg", "webp"]

STANDARD_MODES = ("L", "RGB", "RGBA")
"""The modes :func:`load_image` returns."""

_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_EXIF_ORIENTATION = 0x0112


class ImageInputError(ValueError):
    """An input image could not be read, or is not acceptable."""


def load_image(
    source: Any,
    *,
    max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
    url_timeout: float = DEFAULT_URL_DEADLINE,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    exif_transpose: bool = True,
) -> Image.Image:
    """Load an image from any supported source into a decoded PIL image.

    Args:
        source: Path (str or ``os.PathLike``), ``file://``/``http(s)://`` URL, data URL,
            base64 string, ``bytes``, PIL image or numpy array (HxW or HxWxC, C in 1-4).
            Other URL schemes (``ftp://``, ...) are refused.
        max_pixels: Reject images with more pixels than this (decompression bombs); read from
            the header, before the pixels are decoded (for arrays: before conversion).
        url_timeout: Total deadline in seconds for an ``http(s)`` download: connecting,
            redirects, headers and body together, not a per-read timeout.
        max_bytes: Reject encoded inputs larger than this: a file (by its size on disk,
            before reading it), a download (by ``Content-Length``, then while reading),
            bytes, base64 strings and data URLs.
        exif_transpose: Apply the EXIF orientation tag, so that the pixels are upright as a
            viewer shows them, and record the tag in ``image.info[EXIF_TRANSPOSED_KEY]``.
            Also applies to PIL inputs that still carry such a tag.

    Returns:
        A fully loaded PIL image in mode ``L``, ``RGB`` or ``RGBA`` (see
        :func:`to_standard_mode`). A PIL input already in one of these modes, upright and
        within the limits, is returned as is.

    Raises:
        ImageInputError: The source is unsupported, unreadable, corrupt or too large.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source, max_pixels)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_bytes(len(data), "the given bytes", max_bytes)
        image = _decode(io.BytesIO(data), "the given bytes", max_pixels)
    elif isinstance(source, os.PathLike):
        image = _open_path(Path(source), max_pixels, max_bytes)
    elif isinstance(source, str):
        image = _from_string(source.strip(), max_pixels, url_timeout, max_bytes)
    else:
        raise ImageInputError(
            f"unsupported image input of type {type(source).__name__}; pass a path, URL, "
            "bytes, base64 string, data URL, PIL image or numpy array"
        )
    _check_size(image, max_pixels, "the image")
    orientation = _exif_orientation(image) if exif_transpose else 1
    if orientation != 1:
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # a broken EXIF block: keep the pixels as stored
            orientation = 1
    image = to_standard_mode(image)
    if orientation != 1:
        image.info[EXIF_TRANSPOSED_KEY] = orientation
    return image


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: nothing to apply
        return 1
    return value if 2 <= value <= 8 else 1


def _from_string(text: str, max_pixels: int, url_timeout: float, max_bytes: int) -> Image.Image:
    if not text:
        raise ImageInputError("the image string is empty")
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise ImageInputError("only base64 data URLs are supported (data:image/...;base64,)")
        _check_bytes(len(payload) * 3 // 4, "the data URL", max_bytes)
        return _decode(io.BytesIO(_b64(payload)), "the data URL", max_pixels)
    scheme = _URL_SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name in ("http", "https"):
            data = _download(text, url_timeout, max_bytes)
            return _decode(io.BytesIO(data), text, max_pixels)
        if name == "file":
            parts = urllib.parse.urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise ImageInputError(
                    f"file URLs must name a local path, got host {parts.netloc!r}"
                )
            path = Path(urllib.request.url2pathname(parts.path))
            return _open_path(path, max_pixels, max_bytes)
        raise ImageInputError(
            f"unsupported URL scheme {name!r} in {text[:80]!r}; use http(s), a data URL or a "
            "local path"
        )
    if len(text) < 4096 and (os.sep in text or "." in text[-6:]):
        path = Path(text).expanduser()
        if _exists(path) or not _looks_like_base64(text):
            return _open_path(path, max_pixels, max_bytes)
    if _looks_like_base64(text):
        _check_bytes(len(text) * 3 // 4, "the base64 string", max_bytes)
        return _decode(io.BytesIO(_b64(text)), "the base64 string", max_pixels)
    return _open_path(Path(text).expanduser(), max_pixels, max_bytes)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # name too long, embedded NUL, ...
        return False


def _looks_like_base64(text: str) -> bool:
    head = text[:256].rstrip("=")
    return len(text) >= 16 and all(c.isalnum() or c in "+/=_-\n\r" for c in head)


def _b64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageInputError(f"invalid base64 image data: {exc}") from exc


def _size_text(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB ({n:,} bytes)"


def _check_bytes(n: int, origin: str, max_bytes: int) -> None:
    if n > max_bytes:
        raise ImageInputError(
            f"{origin}: {_size_text(n)} exceeds the input cap of {_size_text(max_bytes)}; "
            "raise max_bytes to allow it"
        )


class _Deadline:
    """Shuts the current connection's socket down when the total deadline passes.

    A timer, not socket timeouts: a server that sends one byte per second satisfies every
    per-read timeout, in the headers as much as in the body.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0 or self.fired:
            raise TimeoutError("deadline passed")
        return left

    def watch(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
        if self.fired:
            raise TimeoutError("deadline passed")

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _DownloadError(Exception):
    pass


def _download(url: str, deadline_s: float, max_bytes: int) -> bytes:
    """GET ``url`` within ``deadline_s`` seconds in total and at most ``max_bytes`` bytes."""
    deadline = _Deadline(deadline_s)
    received = [0]
    try:
        return _fetch(url, deadline, max_bytes, received)
    except _DownloadError as exc:
        raise ImageInputError(f"could not download image {url}: {exc}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.fired or time.monotonic() >= deadline.end:
            raise ImageInputError(_deadline_message(url, deadline_s, received[0])) from None
        raise ImageInputError(f"could not download image {url}: {exc}") from exc
    finally:
        deadline.cancel()


def _deadline_message(url: str, deadline_s: float, received: int) -> str:
    return (
        f"could not download image {url}: no complete response within the total deadline of "
        f"{deadline_s:g} s ({received:,} body bytes received); raise url_timeout to allow "
        "slower servers"
    )


def _fetch(url: str, deadline: _Deadline, max_bytes: int, received: list[int]) -> bytes:
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(current)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _DownloadError(f"not an http(s) URL: {current[:200]!r}")
        if parts.scheme.lower() == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname,
                parts.port,
                timeout=deadline.remaining(),
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=deadline.remaining()
            )
        deadline.watch(conn)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request(
                "GET",
                target,
                headers={
                    "User-Agent": "langchain-codevision",
                    "Accept": "image/*",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            response = conn.getresponse()
            deadline.remaining()
            if response.status in _REDIRECTS:
                current = _redirect_target(current, response.getheader("Location"))
                continue
            if response.status != 200:
                raise _DownloadError(f"HTTP {response.status} {response.reason}")
            length = response.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise _DownloadError(
                    f"the server announces {_size_text(int(length))} (Content-Length), over "
                    f"the cap of {_size_text(max_bytes)}; raise max_bytes to allow it"
                )
            chunks = []
            while True:
                chunk = response.read1(64 * 1024)
                deadline.remaining()
                if not chunk:
                    break
                received[0] += len(chunk)
                if received[0] > max_bytes:
                    raise _DownloadError(
                        f"more than {_size_text(max_bytes)} received, over the cap; raise "
                        "max_bytes to allow it"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            conn.close()
    raise _DownloadError(f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(current: str, location: str | None) -> str:
    if not location:
        raise _DownloadError("redirect without a Location header")
    target = urllib.parse.urljoin(current, location.strip())
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise _DownloadError(f"redirect to a non-http(s) URL refused: {target[:200]!r}")
    if scheme == "http" and urllib.parse.urlsplit(current).scheme.lower() == "https":
        raise _DownloadError(f"redirect from https down to http refused: {target[:200]!r}")
    return target


def _open_path(path: Path, max_pixels: int, max_bytes: int) -> Image.Image:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageInputError(f"image file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ImageInputError(f"cannot read image file {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ImageInputError(f"not a file: {path}")
    if info.st_size == 0:
        raise ImageInputError(f"{path}: no image data (0 bytes)")
    _check_bytes(info.st_size, str(path), max_bytes)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after decoding
    except OSError as exc:
        raise ImageInputError(f"cannot read image file {path}: {exc}") from exc
    with handle:
        return _decode(handle, str(path), max_pixels)


@functools.cache
def _openable_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in Image.ID if name not in REFUSED_FORMATS)


def _decode(stream: io.IOBase | Any, origin: str, max_pixels: int) -> Image.Image:
    """Identify from the header, check the pixel count, then decode the pixels."""
    if stream.seekable():
        stream.seek(0, os.SEEK_END)
        if stream.tell() == 0:
            raise ImageInputError(f"{origin}: no image data (0 bytes)")
        stream.seek(0)
    try:
        image = Image.open(stream, formats=_openable_formats())
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{origin}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageInputError(f"{origin}: not a recognised image format") from exc
    except Exception as exc:  # PIL plugins raise many kinds on broken headers
        raise ImageInputError(f"{origin}: corrupt or truncated image ({exc})") from exc
    _check_size(image, max_pixels, origin)
    try:
        image.load()
    except Exception as exc:  # OSError "truncated", SyntaxError "broken PNG", ...
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


def _from_array(array: np.ndarray, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> Image.Image:
    """A PIL image from a numpy array (see :func:`to_standard_mode` for the value rules)."""
    if array.dtype.kind not in "biuf":
        raise ImageInputError(
            f"numpy image dtype {array.dtype} is not supported; use bool, integer or float"
        )
    channels = array.shape[2] if array.ndim == 3 else None
    if array.ndim not in (2, 3) or (channels is not None and not 1 <= channels <= 4):
        raise ImageInputError(
            "numpy image must be HxW, HxWx1, HxWx2 (grey + alpha), HxWx3 (RGB) or HxWx4 "
            f"(RGBA), got shape {tuple(array.shape)}"
        )
    height, width = array.shape[:2]
    if width == 0 or height == 0:
        raise ImageInputError(f"the image: has a zero-sized side ({width}x{height})")
    if width * height > max_pixels:
        raise ImageInputError(
            f"the image: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (possible decompression bomb); raise max_pixels to allow it"
        )
    if channels == 1:
        array = array[..., 0]
    data = np.ascontiguousarray(_to_uint8(array))
    image = Image.fromarray(data)
    return image.convert("RGBA") if image.mode == "LA" else image


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit values by the range rules of :func:`to_standard_mode` (all channels together)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if array.size == 0:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 255:
            return array.astype(np.uint8)
        if low >= 0 and high <= 65535:
            return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return _stretch(array.astype(np.float64), float(low), float(high))
    values = array.astype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 1:
        values = values * 255
    elif not (low >= 0 and high <= 255):
        return _stretch(values, low, high)
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:  # constant: its value, clipped
        return np.clip(values, 0, 255).astype(np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


PixelSource = Image.Image | np.ndarray
"""What the codec encodes: a PIL image, or an 8-bit ``HxW`` (``L``), ``HxWx2`` (``LA``),
``HxWx3`` (``RGB``) or ``HxWx4`` (``RGBA``) array, as a kernel's result arrives."""

_PIXEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _pixel_mode(array: np.ndarray) -> str | None:
    """The mode of an array in :data:`PixelSource` layout, else ``None``."""
    if array.dtype != np.uint8:
        return None
    if array.ndim == 2:
        return "L"
    return _PIXEL_MODES.get(array.shape[2]) if array.ndim == 3 else None


def pixel_size(source: PixelSource) -> tuple[int, int]:
    """``(width, height)`` of a PIL image or a pixel array."""
    if isinstance(source, np.ndarray):
        return int(source.shape[1]), int(source.shape[0])
    return source.size


def frozen_pixels(image: Image.Image) -> PixelSource:
    """``image``'s pixels as a read-only array of their own, where nothing is lost by it.

    For an 8-bit ``L``/``LA``/``RGB``/``RGBA`` image with no colour metadata (an ICC
    profile, a transparency key, gamma) the array is what every later step reads: the
    model's view, the kernel's copy, the trajectory's PNG. It is one copy of the pixels
    (a caller's image can change afterwards without touching it). Other images come back
    as they are (the same object).
    """
    if image.mode not in _PIXEL_MODES.values() or _PNG_KEEP_INFO.intersection(image.info):
        return image
    array = copied_pixels(image)
    array.flags.writeable = False
    return array


def copied_pixels(image: Image.Image) -> np.ndarray:
    """A new array of an 8-bit ``L``/``LA``/``RGB``/``RGBA`` image's pixels (``HxW[xC]``).

    Copied straight off PIL's own memory, without holding the GIL, where PIL hands that
    memory out (the kernel runtime's :func:`~langchain_codevision.kernel._runtime.copy_pixels`,
    which kernels send their results with); ``np.array(image)`` (PIL's ``tobytes``, under
    the GIL throughout) otherwise. Other threads keep running meanwhile.
    """
    if image.mode in ("L", "RGB", "RGBA"):
        from .kernel._runtime import copy_pixels

        opencv()  # the package's OpenCV settings, before the copy's first OpenCV call
        width, height = image.size
        shape = (height, width) if image.mode == "L" else (height, width, len(image.mode))
        array = np.empty(shape, dtype=np.uint8)
        if copy_pixels(image, array, chunk_pixels=max(1, array.size)):
            return array
    return np.array(image)


def as_pil(source: PixelSource) -> Image.Image:
    """``source`` as a PIL image (a PIL image as it is; an array copied into one)."""
    if not isinstance(source, np.ndarray):
        return source
    if _pixel_mode(source) is None:
        return _from_array(source)
    return Image.fromarray(source)


def to_standard_mode(image: Image.Image) -> Image.Image:
    """``image`` in mode ``L``, ``RGB`` or ``RGBA`` (itself when it already is).

    Rules, for PIL modes and numpy dtypes alike:

    * ``1`` and ``bool`` become ``L`` (0/255); ``P`` becomes ``RGBA`` when it has
      transparency, else ``RGB``; ``LA``, ``La``, ``PA`` and ``RGBa`` (premultiplied alpha,
      undone) become ``RGBA``; every other colour mode (``CMYK``, ``YCbCr``, ``HSV``,
      ``LAB``, ``RGBX``, ...) becomes ``RGB`` through PIL's conversion.
    * Single-channel wide modes (``I``, ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, ``F``) and
      wide arrays become 8 bits by their value range, all channels together: integers within
      0..255 are kept; within 0..65535 they are read as 16-bit and scaled by 255/65535;
      anything else (negative or larger) is stretched linearly from its minimum..maximum to
      0..255. Floats: NaN and +/-inf become 0 first; values within [0, 1] are scaled by 255,
      within [0, 255] rounded, anything else stretched from minimum..maximum (a constant
      image is clipped to 0..255 instead).
    * numpy shapes: HxW and HxWx1 give ``L``, HxWx2 (grey + alpha) ``RGBA``, HxWx3 ``RGB``,
      HxWx4 ``RGBA``; other shapes and dtypes (complex, object, ...) are refused.

    Raises:
        ImageInputError: The mode cannot be converted (should not happen for PIL's modes).
    """
    mode = image.mode
    if mode in STANDARD_MODES:
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("I", "F") or mode.startswith("I;"):
        converted = Image.fromarray(np.ascontiguousarray(_to_uint8(np.asarray(image))))
        converted.info.update(image.info)
        return converted
    try:
        if mode == "La":
            image = image.convert("LA")
        if mode in ("La", "LA", "PA", "RGBa"):
            return image.convert("RGBA")
        if mode == "P":
            return image.convert("RGBA" if "transparency" in image.info else "RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(f"cannot convert an image in mode {mode} to RGB: {exc}") from exc


_normalise_mode = to_standard_mode


@dataclass(frozen=True)
class PixelBudget:
    """How large the images shown to the model may be.

    Attributes:
        min_pixels: Smallest area after resizing (met whenever the ``factor`` grid and
            ``max_pixels`` allow it; ``max_pixels`` wins).
        max_pixels: Largest area after resizing, a hard bound at any aspect ratio (the
            reference caps near 1024*8*28*28). Must hold at least one ``factor`` x ``factor``
            cell.
        factor: Sides are rounded to multiples of this (28 for Qwen2.5-VL).
    """

    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 1024 * 28 * 28
    factor: int = 28

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError("need 0 < min_pixels <= max_pixels")
        if self.factor < 1:
            raise ValueError("need factor >= 1")
        if self.max_pixels < self.factor * self.factor:
            raise ValueError(
                f"max_pixels {self.max_pixels:,} cannot hold one {self.factor}x{self.factor} "
                f"cell; need max_pixels >= factor**2 = {self.factor * self.factor:,}"
            )

    @property
    def max_aspect_ratio(self) -> int:
        """Largest aspect ratio the budget can show undistorted (one cell high, the rest long)."""
        return self.max_pixels // (self.factor * self.factor)


def budget_size(width: int, height: int, budget: PixelBudget) -> tuple[int, int]:
    """Qwen-style smart resize: keep the aspect ratio, fit the area, round to ``factor``.

    Both sides come out as multiples of ``budget.factor`` (at least one factor each), with
    ``width * height <= budget.max_pixels`` always, at any aspect ratio. As in Qwen's
    ``smart_resize``, each side is rounded to the factor grid, scaled down (flooring) when the
    area exceeds ``max_pixels`` and up (ceiling) when it is below ``min_pixels``.

    When that overshoots ``max_pixels`` (one side held at the one-factor minimum, or the
    upscale rounding past the cap), the size is recomputed as the largest grid size at the
    image's aspect ratio that fits: ``floor(sqrt(cells * r))`` by ``floor(sqrt(cells / r))``
    cells, with ``cells = max_pixels // factor**2`` and ``r = width / height``, each at least
    one. Beyond an aspect ratio of ``budget.max_aspect_ratio`` (``cells``) the short side is
    one factor and the long side ``cells`` factors: the image is squeezed along its long side
    (a 1,000,000x1 input goes out as 28672x28 under the default budget), a documented
    distortion rather than an oversized image. Callers that prefer to refuse such inputs can
    compare the aspect ratio with ``budget.max_aspect_ratio`` first.

    Raises:
        ValueError: A side is smaller than 1.
    """
    if width < 1 or height < 1:
        raise ValueError(f"cannot fit a {width}x{height} image: a side is smaller than 1")
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
    if w * h > budget.max_pixels:
        cells = budget.max_pixels // (f * f)
        ratio = width / height
        cols = max(1, math.floor(math.sqrt(cells * ratio)))
        rows = max(1, math.floor(math.sqrt(cells / ratio)))
        if cols >= rows:  # one side may sit at its one-cell minimum: cap the other
            rows = min(rows, cells)
            cols = min(cols, cells // rows)
        else:
            cols = min(cols, cells)
            rows = min(rows, cells // cols)
        w, h = cols * f, rows * f
    return w, h


def fit_pixel_budget(image: Image.Image, budget: PixelBudget | None) -> Image.Image:
    """A copy of ``image`` resized into ``budget`` (the original when no budget is set).

    The size follows :func:`budget_size`; an image in a wide or unusual mode is brought to
    ``L``/``RGB``/``RGBA`` (:func:`to_standard_mode`) before resizing.
    """
    if budget is None:
        return image
    size = budget_size(*image.size, budget)
    if size == image.size:
        return image
    if image.mode not in STANDARD_MODES:
        image = to_standard_mode(image)
    return resize_image(image, size)


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size``: area averaging where it shrinks, bicubic where it grows.

    ``L`` and ``RGB`` go through OpenCV (``INTER_AREA`` / ``INTER_CUBIC``, ``INTER_LINEAR``
    for a shrink under 20%: anti-aliased the way a model's own resize is, at a third of
    PIL's bicubic time or less); other
    modes, alpha included (PIL resizes it premultiplied), through PIL's bicubic filter.
    ``image.info`` (an ICC profile, say) comes along either way.
    """
    if image.mode not in ("L", "RGB") or min(size) < 1:
        return image.resize(size, Image.Resampling.BICUBIC)
    cv2 = opencv()

    method = _method(image.size, size)
    out = Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=method))
    out.info = dict(image.info)  # as PIL's resize keeps it: an ICC profile still applies
    return out


MILD_SHRINK = 0.8
"""Shrinks to at least this fraction of each side use bilinear resampling, not area."""


def _method(source_size: tuple[int, int], size: tuple[int, int]) -> int:
    """Area averaging for real shrinks, bilinear for mild ones, bicubic for enlarging.

    Below a 20% shrink every output pixel takes at most two input pixels per axis, so
    bilinear reads as well as area averaging (179/180 known lines either way on rendered
    pages, ``bench/graph.py``) at a sixth of the CPU: OpenCV's area path for a non-integer
    factor is its slow one (13 ms for 1000x1000 to 896x896, against 2.3 ms).
    """
    cv2 = opencv()

    width, height = source_size
    shrinks = size[0] <= width and size[1] <= height
    if not shrinks:
        return cv2.INTER_CUBIC
    mild = size[0] >= MILD_SHRINK * width and size[1] >= MILD_SHRINK * height
    return cv2.INTER_LINEAR if mild else cv2.INTER_AREA


def encode_view(
    image: PixelSource, budget: PixelBudget | None, fmt: ImageFormat = "png"
) -> tuple[bytes, bool]:
    """The model's copy of ``image`` (fitted into ``budget``, encoded) and if it was resized.

    Decodes to the pixels of ``encode_image(fit_pixel_budget(image, budget), fmt)``. For a
    PNG of an ``L``/``RGB`` image the resize writes straight into the PNG's row buffer, so the
    view never exists as a separate image (two copies of the pixels fewer); an array (a
    kernel's result as it arrives) is read in place, with no PIL copy at all. A resized
    ``RGB`` image whose three channels are equal (a scanned or rendered page, most often) is
    written as a greyscale PNG (:func:`grey_channel`): every decoder reads it back as the same
    colours, from about half the bytes.
    """
    source_size = pixel_size(image)
    size = source_size if budget is None else budget_size(*source_size, budget)
    if size == source_size:
        return encode_image(image, fmt), False
    array = image if isinstance(image, np.ndarray) else None
    mode = _pixel_mode(array) if array is not None else image.mode
    info = {} if array is not None else image.info
    if fmt != "png" or mode not in ("L", "RGB") or _PNG_KEEP_INFO.intersection(info):
        return encode_image(fit_pixel_budget(as_pil(image), budget), fmt), True
    cv2 = opencv()

    pixels = array if array is not None else copied_pixels(image)
    if mode == "RGB" and (grey := grey_channel(pixels)) is not None:
        pixels, mode = grey, "L"  # the same view, a third of the work and about half the bytes
    channels = 1 if mode == "L" else 3
    width, height = size
    lines = np.empty((height, width * channels + 1), dtype=np.uint8)
    lines[:, 0] = 0  # PNG filter "none" on every row
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (lines.strides[0], channels, 1)[: len(shape)]
    rows = np.ndarray(shape, np.uint8, lines, offset=1, strides=strides)
    method = _method(source_size, size)
    out = cv2.resize(pixels, size, dst=rows, interpolation=method)
    if out is not rows:  # pragma: no cover - OpenCV allocated its own buffer
        rows[...] = out
    return _png_from_rows(lines, width, height, mode), True


GREY_SAMPLE_STEP = 37
"""Every this many rows are compared first, so a colour image is told apart almost free."""


def grey_channel(pixels: np.ndarray) -> np.ndarray | None:
    """The one channel of an ``RGB`` array whose three channels are equal, else None.

    A sample of rows is compared first (a colour image fails there, at a fraction of a
    millisecond); only then the whole image.
    """
    if _pixel_mode(pixels) != "RGB":
        return None
    sample = pixels[::GREY_SAMPLE_STEP]
    if not (
        np.array_equal(sample[..., 0], sample[..., 1])
        and np.array_equal(sample[..., 0], sample[..., 2])
    ):
        return None
    cv2 = opencv()

    # OpenCV's fixed-point grey weights add up to exactly one, so a grey pixel keeps its
    # value; the image is grey exactly when its grey copy, spread back to three channels,
    # equals it (one pass each way, no per-channel copies)
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    if cv2.norm(pixels, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), cv2.NORM_INF):
        return None
    return grey


def encode_image(image: PixelSource, fmt: ImageFormat = "png", quality: int = 90) -> bytes:
    """Encode for transport: PNG (lossless, fast level) for text, JPEG/WebP when smaller wins.

    Any mode is accepted. PNG keeps the modes every decoder reads (``1``, ``L``, ``LA``,
    ``P``, ``RGB``, ``RGBA``) as they are; others (``F``, ``I``, ``I;16*``, ``RGBa``, ``HSV``,
    ``CMYK``, ...) are converted first by :func:`to_standard_mode`. JPEG always gets ``RGB``;
    WebP ``RGB`` or ``RGBA``. An 8-bit array (:data:`PixelSource`) is written as PNG
    straight from its rows.
    """
    if isinstance(image, np.ndarray):
        mode = _pixel_mode(image)
        if fmt == "png" and mode is not None:
            return _png_from_array(image, mode)
        image = as_pil(image)
    buffer = io.BytesIO()
    if fmt == "png":
        if image.mode not in _PNG_MODES:
            image = to_standard_mode(image)
        if image.mode in _PNG_COLOUR_TYPES and not _PNG_KEEP_INFO.intersection(image.info):
            return _png_bytes(image)
        image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    elif fmt == "jpeg":
        image = to_standard_mode(image)
        (image if image.mode == "RGB" else image.convert("RGB")).save(
            buffer, format="JPEG", quality=quality
        )
    elif fmt == "webp":
        image = to_standard_mode(image)
        if image.mode == "L":
            image = image.convert("RGB")
        image.save(buffer, format="WEBP", quality=quality)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'")
    return buffer.getvalue()


PNG_LEVEL = 1
"""Deflate level of every PNG the package writes: lossless at any level, and level 1 is the
fastest that still compresses. With ``isal`` installed (a core dependency where it has
wheels) the one-pass writer deflates with ISA-L: about 5x faster than zlib at level 1, for
files about a quarter larger."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_PNG_KEEP_INFO = frozenset({"icc_profile", "transparency", "gamma", "srgb"})


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_bytes(image: Image.Image) -> bytes:
    """A PNG of an 8-bit ``L``/``LA``/``RGB``/``RGBA`` image, written in one pass.

    Every row uses one PNG filter, "none" or, where it pays, "up" (:func:`_png_from_rows`),
    and the whole image is one zlib stream at
    :data:`PNG_LEVEL`: the bytes decode to exactly ``image``'s pixels, at a fraction of the
    time of PIL's writer (which filters and compresses in small blocks).
    """
    pixels = np.frombuffer(image.tobytes(), dtype=np.uint8)
    return _png_from_array(pixels.reshape(image.height, image.width, -1), image.mode)


def _png_from_array(array: np.ndarray, mode: str) -> bytes:
    """The one-pass PNG of an 8-bit array in ``mode``'s layout (see :func:`_png_bytes`)."""
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    lines = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)  # filter byte 0 per row
    lines[:, 1:] = rows
    return _png_from_rows(lines, width, height, mode)


UP_FILTER_GAIN = 0.85
"""The PNG "up" filter is used when a sample of rows deflates to at most this fraction of
its unfiltered size: photos (about 40% fewer bytes), never flat text pages (which deflate
better unfiltered)."""


def _up_filter_pays(lines: np.ndarray) -> bool:
    """Whether PNG's "up" filter makes ``lines`` (filter byte, then pixels) smaller.

    Eight runs of eight rows spread over the image are deflated both ways: about a
    sixteenth of the full encode, which the filter wins back on the images it is for.
    """
    height = lines.shape[0]
    if height < 80:
        return False
    starts = [1 + (height - 9) * run // 7 for run in range(8)]  # first run at 1, last at h-8
    raw = np.concatenate([lines[start : start + 8, 1:] for start in starts])
    up = np.concatenate(
        [lines[start : start + 8, 1:] - lines[start - 1 : start + 7, 1:] for start in starts]
    )
    return len(_deflate.compress(up.data, PNG_LEVEL)) <= UP_FILTER_GAIN * len(
        _deflate.compress(raw.data, PNG_LEVEL)
    )


def _png_from_rows(lines: np.ndarray, width: int, height: int, mode: str) -> bytes:
    """The PNG file for ``lines``: each row its filter byte (0), then its pixels.

    Where it pays (:func:`_up_filter_pays`), every row is first replaced by its difference
    from the row above (PNG filter 2, "up"): decoders undo it, so the file is as lossless.
    """
    if _up_filter_pays(lines):
        filtered = np.empty_like(lines)
        filtered[:, 0] = 2
        filtered[0, 1:] = lines[0, 1:]  # no row above: the difference is the row itself
        np.subtract(lines[1:, 1:], lines[:-1, 1:], out=filtered[1:, 1:])
        lines = filtered
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[mode], 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", _deflate.compress(lines.data, PNG_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def base64_text(data: bytes) -> str:
    """``data`` as base64 text, as an image block or a data URL carries it.

    pybase64's SIMD encoder where it is installed (a 300 KB view in about 0.01 ms, where the
    standard library takes 0.3-0.7 ms under the GIL); the standard library's otherwise, with
    the same text.
    """
    if _fast_b64 is not None:
        return _fast_b64(data)
    return base64.b64encode(data).decode("ascii")


def data_url(data: bytes, mime_type: str = "image/png") -> str:
    """A ``data:`` URL of ``data`` (base64, :func:`base64_text`)."""
    return f"data:{mime_type};base64,{base64_text(data)}"


def to_image_block(
    image: Image.Image,
    *,
    budget: PixelBudget | None = None,
    fmt: ImageFormat = "png",
) -> dict[str, Any]:
    """A LangChain standard image block (``{"type": "image", "base64": ..., "mime_type": ...}``)."""
    data, _ = encode_view(image, budget, fmt)
    return {
        "type": "image",
        "base64": base64_text(data),
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


def check_output_image(image: PixelSource, max_aspect_ratio: float = 200.0) -> str | None:
    """Why a tool output cannot be shown to the model, or ``None`` when it is fine."""
    width, height = pixel_size(image)
    if width == 0 or height == 0:
        return f"the result image has a zero-sized side ({width}x{height})"
    ratio = max(width, height) / min(width, height)
    if ratio >= max_aspect_ratio:
        return (
            f"the result image is {width}x{height}: its aspect ratio {ratio:.0f} is not below "
            f"{max_aspect_ratio:g}"
        )
    return None


class _LazyPNG:
    """The ``png`` field of :class:`TrajectoryImage`: encoded on first read, then kept."""

    def __get__(self, obj: TrajectoryImage | None, owner: type | None = None) -> Any:
        if obj is None:
            return None  # the field's class-level default
        return obj._encoded()

    def __set__(self, obj: TrajectoryImage, value: bytes | None) -> None:
        obj._png = None if value is None else bytes(value)


@dataclass(init=False, eq=False, repr=False)
class TrajectoryImage(Mapping[str, Any]):
    """One image of an episode at full resolution, as stored in graph state.

    The pixels are kept as they came (no encode on the hot path); lossless PNG bytes are
    made once, on first demand: when a checkpointer serialises the state, when an export
    writes files, or when ``item["png"]`` is read. It reads like the plain dict it replaces
    (``item["index"]``, ``item["png"]``, ``dict(item)``), and serialises as its PNG: through
    pickle, through LangGraph's serializer (as a dataclass) and through
    :class:`~langchain_codevision.loop.ImageAwareSerializer` (as a plain dict). Build one
    with :func:`trajectory_image`; get pixels with :attr:`image`, :func:`decode_trajectory_image`
    or :func:`trajectory_images`.

    Attributes:
        png: Lossless PNG bytes (encoded on first read).
        index: Position in the trajectory (the ``image_index`` the model uses).
        origin: ``"input"`` or ``"tool"``.
        step: The step that produced it (``None`` for inputs).
        width: Width in pixels.
        height: Height in pixels.
    """

    png: bytes = _LazyPNG()  # type: ignore[assignment]
    index: int = 0
    origin: str = "input"
    step: int | None = None
    width: int = 0
    height: int = 0

    def __init__(
        self,
        png: bytes | None = None,
        index: int = 0,
        origin: str = "input",
        step: int | None = None,
        width: int | None = None,
        height: int | None = None,
        *,
        image: PixelSource | None = None,
    ) -> None:
        if png is None and image is None:
            raise ValueError("a trajectory image needs its pixels or its PNG bytes")
        self._lock = threading.Lock()
        self._array = image if isinstance(image, np.ndarray) else None
        self._image = None if isinstance(image, np.ndarray) else image
        self.png = png
        self.index = index
        self.origin = origin
        self.step = step
        size = pixel_size(image) if image is not None else None
        if (width is None or height is None) and size is None:
            size = self.image.size
        self.width = int(width if width is not None else size[0])  # type: ignore[index]
        self.height = int(height if height is not None else size[1])  # type: ignore[index]

    def _encoded(self) -> bytes:
        if self._png is None:
            with self._lock:
                if self._png is None:
                    self._png = encode_image(self.pixels, "png")
        return self._png

    @property
    def image(self) -> Image.Image:
        """The pixels (shared, not a copy: do not draw on it; see :func:`trajectory_images`)."""
        if self._image is None:
            with self._lock:
                if self._image is None and self._array is not None:
                    self._image = as_pil(self._array)
                elif self._image is None:
                    assert self._png is not None
                    decoded = Image.open(io.BytesIO(self._png))
                    decoded.load()
                    self._image = decoded
        return self._image

    @property
    def pixels(self) -> PixelSource:
        """The pixels in the form they came in: an array for a kernel's result, else PIL.

        The codec's functions take either, so reading this makes no copy (read-only, as
        :attr:`image` is).
        """
        return self._array if self._array is not None else self.image

    @property
    def encoded(self) -> bool:
        """Whether the PNG bytes exist already (nothing has asked for them otherwise)."""
        return self._png is not None

    # -- the mapping view (the keys of the dict this replaces) -------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in _TRAJECTORY_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in _TRAJECTORY_KEYS  # never encodes (Mapping's default would)

    def __iter__(self) -> Iterator[str]:
        return iter(_TRAJECTORY_KEYS)

    def __len__(self) -> int:
        return len(_TRAJECTORY_KEYS)

    def metadata(self) -> dict[str, Any]:
        """Every field but the pixels (nothing is encoded)."""
        return {key: getattr(self, key) for key in _TRAJECTORY_KEYS if key != "png"}

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of primitives (PNG bytes and metadata), for storage."""
        return {"png": self._encoded(), **self.metadata()}

    # -- serialising: always as PNG ----------------------------------------------------
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (
            _restore,
            (self._encoded(), self.index, self.origin, self.step, self.width, self.height),
        )

    def __copy__(self) -> TrajectoryImage:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TrajectoryImage:
        return self  # immutable by contract: the pixels are never changed in place

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        if isinstance(other, TrajectoryImage) and other.metadata() != self.metadata():
            return False
        if not isinstance(other, TrajectoryImage) and (
            set(other) != set(_TRAJECTORY_KEYS)
            or any(other[key] != value for key, value in self.metadata().items())
        ):
            return False
        theirs = (
            other.image if isinstance(other, TrajectoryImage) else decode_trajectory_image(other)
        )
        mine = self.image
        return mine.mode == theirs.mode and mine.tobytes() == theirs.tobytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "encoded" if self.encoded else "pixels"
        return (
            f"TrajectoryImage(index={self.index}, origin={self.origin!r}, step={self.step}, "
            f"{self.width}x{self.height}, {state})"
        )


_TRAJECTORY_KEYS = ("png", "index", "origin", "step", "width", "height")


def _restore(
    png: bytes, index: int, origin: str, step: int | None, width: int, height: int
) -> TrajectoryImage:
    return TrajectoryImage(png, index, origin, step, width, height)


def trajectory_image(
    image: PixelSource,
    index: int,
    origin: str = "input",
    step: int | None = None,
    *,
    png: bytes | None = None,
) -> TrajectoryImage:
    """Keep ``image`` as trajectory entry ``index`` (pixels now, lossless PNG on demand).

    ``png``, when given, must be a lossless PNG of ``image`` (one encode shared with the
    model's copy); it is then never encoded again.
    """
    return TrajectoryImage(png, index, origin, step, *pixel_size(image), image=image)


def as_trajectory_image(item: Mapping[str, Any]) -> TrajectoryImage:
    """``item`` as a :class:`TrajectoryImage` (a stored plain dict is wrapped, not decoded)."""
    if isinstance(item, TrajectoryImage):
        return item
    return TrajectoryImage(
        item["png"],
        item["index"],
        item["origin"],
        item.get("step"),
        item["width"],
        item["height"],
    )


def decode_trajectory_image(item: Mapping[str, Any]) -> Image.Image:
    """The pixels of a stored trajectory image, as a fresh PIL image (safe to modify)."""
    if isinstance(item, TrajectoryImage):
        return item.image.copy()
    image = Image.open(io.BytesIO(item["png"]))
    image.load()
    return image


def trajectory_images(source: Any) -> list[Image.Image]:
    """Every image of an episode as PIL images (copies), inputs first, then tool outputs.

    Args:
        source: A graph output or state (anything with an ``"images"`` entry), or the list
            of trajectory images itself.

    Returns:
        One PIL image per trajectory entry, in trajectory order (``image_index`` order).

    Example:
        >>> out = graph.invoke({"image": "page.png", "question": "..."})  # doctest: +SKIP
        >>> first, *tool_outputs = trajectory_images(out)  # doctest: +SKIP
    """
    if isinstance(source, TrajectoryImage) or (isinstance(source, Mapping) and "png" in source):
        raise TypeError("pass the graph output or its list of images, not one image")
    items = (source.get("images") or []) if isinstance(source, Mapping) else source
    return [decode_trajectory_image(item) for item in items]


def serialisable_image_input(_old: Any, new: Any) -> Any:
    """State reducer for the ``image`` input: PIL images and arrays are kept lazily.

    They become :class:`TrajectoryImage` entries that hold the pixels and serialise as
    lossless PNG only if a checkpointer asks; paths, URLs, base64 and bytes pass unchanged.
    """
    if isinstance(new, (list, tuple)):
        return [serialisable_image_input(None, item) for item in new]
    if isinstance(new, Image.Image):
        return trajectory_image(new, 0)
    if isinstance(new, np.ndarray):
        return trajectory_image(_from_array(new), 0)
    if isinstance(new, os.PathLike):
        return os.fspath(new)
    return new
