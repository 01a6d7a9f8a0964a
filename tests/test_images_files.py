"""Image inputs from files and bytes: size caps before reading, corrupt data, EXIF orientation."""

from __future__ import annotations

import base64
import io
import os
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.images import (
    DEFAULT_MAX_INPUT_BYTES,
    EXIF_TRANSPOSED_KEY,
    ImageInputError,
    load_image,
)

GIB = 2**30


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    path.write_bytes(head)
    os.truncate(path, size)
    assert path.stat().st_blocks * 512 < 1024 * 1024, "the file system must support sparse files"
    return path


def test_the_default_byte_cap_is_sensible() -> None:
    assert DEFAULT_MAX_INPUT_BYTES == 256 * 2**20


def test_a_3_gib_file_is_refused_from_its_size_without_reading(tmp_path) -> None:
    head = png_bytes(noise())[:64]
    path = sparse_file(tmp_path / "huge.png", 3 * GIB, head)
    rss_before, peak_before = current_rss_bytes(), max_rss_bytes()
    start = time.perf_counter()
    with pytest.raises(ImageInputError) as caught:
        load_image(path)
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert "3,072.0 MiB (3,221,225,472 bytes)" in message
    assert "cap of 256.0 MiB (268,435,456 bytes)" in message and "max_bytes" in message
    assert elapsed < 0.5
    assert max_rss_bytes() - peak_before < 64 * 2**20
    assert current_rss_bytes() - rss_before < 64 * 2**20
    for source in (str(path), f"file://{path}"):
        with pytest.raises(ImageInputError, match="exceeds the input cap"):
            load_image(source)


def test_the_byte_cap_is_configurable(tmp_path) -> None:
    data = png_bytes(noise())
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert load_image(path, max_bytes=len(data)).size == (64, 48)
    with pytest.raises(ImageInputError, match=f"{len(data):,} bytes.*exceeds the input cap"):
        load_image(path, max_bytes=len(data) - 1)
    b64 = base64.b64encode(data).decode()
    for source in (data, b64, f"data:image/png;base64,{b64}"):
        with pytest.raises(ImageInputError, match="exceeds the input cap"):
            load_image(source, max_bytes=len(data) // 2)


def test_format_detection_reads_only_the_header(tmp_path) -> None:
    """Under a raised cap, a 3 GiB file that is not an image is refused as fast."""
    cases = {
        "zeros.bin": b"",
        "png-head.png": png_bytes(noise())[:33],  # signature + IHDR, then nothing valid
        "text.txt": b"hello, not an image at all\n",
    }
    for name, head in cases.items():
        path = sparse_file(tmp_path / name, 3 * GIB, head)
        rss_before, peak_before = current_rss_bytes(), max_rss_bytes()
        start = time.perf_counter()
        with pytest.raises(ImageInputError, match=r"not a recognised image format|corrupt"):
            load_image(path, max_bytes=4 * GIB)
        assert time.perf_counter() - start < 1.0, name
        assert max_rss_bytes() - peak_before < 64 * 2**20, name
        assert current_rss_bytes() - rss_before < 64 * 2**20, name
        path.unlink()


def png_with_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\0" * 64)
    chunk += struct.pack(">I", len(idat)) + b"IDAT" + idat
    chunk += struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0\0\0\0IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()


BAD_INPUTS = {
    "zero bytes": (b"", "no image data \\(0 bytes\\)"),
    "text": (b"hello, world, this is text\n", "not a recognised image format"),
    "random bytes": (bytes(range(256)) * 8, "not a recognised image format"),
    "png signature only": (b"\x89PNG\r\n\x1a\n", "not a recognised image format|corrupt"),
    "truncated png": (png_bytes(noise())[:2000], "corrupt or truncated"),
    "png with a corrupt IDAT": (
        flip_byte(png_bytes(noise()), 200),
        "corrupt or truncated",
    ),
    "truncated jpeg": (jpeg_bytes(noise())[:1500], "corrupt or truncated"),
    "jpeg header only": (jpeg_bytes(noise())[:20], "not a recognised image format|corrupt"),
    "eps (never run through ghostscript)": (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto\n",
        "not a recognised image format",
    ),
    "header claims 100000x100000": (
        png_with_header(100_000, 100_000),
        "decompression bomb",
    ),
    "header claims 9000x9000 (under PIL's own limit)": (
        png_with_header(9000, 9000),
        "81,000,000 pixels exceeds the limit of 64,000,000",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_data_gets_a_clear_error_from_bytes_and_files(name, tmp_path) -> None:
    data, message = BAD_INPUTS[name]
    with pytest.raises(ImageInputError, match=message):
        load_image(data)
    path = tmp_path / "input.img"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(ImageInputError, match=message) as caught:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    if data:
        assert str(path) in str(caught.value)


def test_paths_that_are_not_regular_files(tmp_path) -> None:
    with pytest.raises(ImageInputError, match="not a file"):
        load_image(tmp_path)
    with pytest.raises(ImageInputError, match="not a file"):
        load_image("/dev/zero")  # a character device: never read
    with pytest.raises(ImageInputError, match="image file not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match=r"cannot read image file|not found"):
        load_image("~/" + "x" * 300 + ".png")  # a name too long for the file system
    with pytest.raises(ImageInputError, match="file URLs must name a local path"):
        load_image("file://otherhost/x.png")


def quadrants(width: int = 80, height: int = 48) -> Image.Image:
    """Four flat colours, so that any rotation or flip is visible."""
    array = np.zeros((height, width, 3), np.uint8)
    array[: height // 2, : width // 2] = (255, 0, 0)
    array[: height // 2, width // 2 :] = (0, 255, 0)
    array[height // 2 :, : width // 2] = (0, 0, 255)
    array[height // 2 :, width // 2 :] = (255, 255, 0)
    return Image.fromarray(array)


def quadrant_colours(image: Image.Image) -> list[tuple[int, ...]]:
    width, height = image.size
    points = [(width // 4, height // 4), (3 * width // 4, height // 4)]
    points += [(width // 4, 3 * height // 4), (3 * width // 4, 3 * height // 4)]
    return [tuple(round(v / 255) * 255 for v in image.getpixel(p)) for p in points]


# stored pixels -> the transform a viewer applies for that orientation tag
STORED_FOR = {
    3: lambda upright: upright.transpose(Image.Transpose.ROTATE_180),
    6: lambda upright: upright.transpose(Image.Transpose.ROTATE_90),  # viewer turns 90 cw
    8: lambda upright: upright.transpose(Image.Transpose.ROTATE_270),
    2: lambda upright: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


@pytest.mark.parametrize("orientation", [6, 3, 8, 2])
def test_exif_orientation_is_applied_and_recorded(orientation, tmp_path) -> None:
    upright = quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(STORED_FOR[orientation](upright), exif=exif.tobytes()))

    for source in (path, path.read_bytes(), Image.open(path)):
        image = load_image(source)
        assert image.size == upright.size
        assert quadrant_colours(image) == quadrant_colours(upright)
        assert image.info[EXIF_TRANSPOSED_KEY] == orientation
        assert image.getexif().get(0x0112, 1) == 1  # no tag left to apply twice
        assert load_image(image) is image  # already upright: nothing more to do

    raw = load_image(path, exif_transpose=False)
    assert EXIF_TRANSPOSED_KEY not in raw.info
    assert quadrant_colours(raw) == quadrant_colours(STORED_FOR[orientation](upright))


def test_images_without_an_orientation_are_not_marked(tmp_path) -> None:
    path = tmp_path / "plain.jpg"
    exif = Image.Exif()
    exif[0x0112] = 1
    path.write_bytes(jpeg_bytes(quadrants(), exif=exif.tobytes()))
    assert EXIF_TRANSPOSED_KEY not in load_image(path).info
    assert EXIF_TRANSPOSED_KEY not in load_image(png_bytes(quadrants())).info
