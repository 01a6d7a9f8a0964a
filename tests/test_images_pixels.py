"""Pixels out of PIL images, and base64 text for image blocks and data URLs."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from langchain_codevision import images as codec
from langchain_codevision.kernel import _runtime


def _cases() -> dict[str, Image.Image]:
    rng = np.random.default_rng(11)
    return {
        "L": Image.fromarray(rng.integers(0, 256, (23, 17), dtype=np.uint8)),
        "RGB": Image.fromarray(rng.integers(0, 256, (41, 29, 3), dtype=np.uint8)),
        "RGBA": Image.fromarray(rng.integers(0, 256, (12, 33, 4), dtype=np.uint8)),
        "LA": Image.new("LA", (9, 4), (30, 250)),
        "cropped": Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).crop(
            (4, 7, 31, 44)
        ),
        "RGB in blocks": Image.new("RGB", (2100, 2100), (7, 8, 9)),  # over 16 MiB: PIL's
        "one row": Image.fromarray(rng.integers(0, 256, (1, 70, 3), dtype=np.uint8)),
        "empty": Image.new("RGB", (0, 5)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_copied_pixels_equal_pils_own_array_and_share_nothing(name) -> None:
    image = _cases()[name]
    pixels = codec.copied_pixels(image)
    expected = np.asarray(image)
    assert pixels.dtype == np.uint8 and pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)
    assert pixels.flags.writeable and pixels.flags.c_contiguous
    if image.width and image.height:
        before = pixels.copy()
        image.paste(0 if image.mode == "L" else (0,) * len(image.mode), (0, 0, 1, 1))
        assert np.array_equal(pixels, before)  # the copy is its own


def test_pixels_come_straight_from_pil_memory_where_pil_hands_it_out() -> None:
    """The copy that needs no ``tobytes()`` is taken for the modes PIL exports (Pillow 11.2
    and later, one memory block); a wrong-sized target is refused, not overrun."""
    image = _cases()["RGB"]
    target = np.empty((image.height, image.width, 3), dtype=np.uint8)
    assert _runtime.copy_pixels(image, target, chunk_pixels=5)  # many small OpenCV calls
    assert np.array_equal(target, np.asarray(image))
    assert not _runtime.copy_pixels(_cases()["RGB in blocks"], np.empty(1, np.uint8))
    assert not _runtime.copy_pixels(_cases()["LA"], np.empty(72, np.uint8))
    with pytest.raises(ValueError):
        _runtime.copy_pixels(image, np.empty(10, dtype=np.uint8))
    strided = np.empty((image.height, image.width * 2, 3), dtype=np.uint8)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):  # a copy would take the pixels
        _runtime.copy_pixels(image, strided)


def test_frozen_pixels_are_read_only_and_keep_images_with_colour_metadata() -> None:
    image = _cases()["RGBA"]
    frozen = codec.frozen_pixels(image)
    assert isinstance(frozen, np.ndarray) and not frozen.flags.writeable
    assert np.array_equal(frozen, np.asarray(image))
    tagged = _cases()["RGB"].copy()
    tagged.info["icc_profile"] = b"not a real profile"
    assert codec.frozen_pixels(tagged) is tagged
    palette = _cases()["RGB"].convert("P")
    assert codec.frozen_pixels(palette) is palette


@pytest.mark.parametrize("size", [0, 1, 2, 3, 57, 300_001])
def test_base64_text_is_the_standard_librarys_with_or_without_pybase64(size, monkeypatch) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    expected = base64.b64encode(data).decode("ascii")
    assert codec._fast_b64 is not None  # pybase64 is a dependency
    assert codec.base64_text(data) == expected
    assert codec.data_url(data, "image/webp") == f"data:image/webp;base64,{expected}"
    monkeypatch.setattr(codec, "_fast_b64", None)
    assert codec.base64_text(data) == expected


def test_image_blocks_carry_base64_that_decodes_to_the_view() -> None:
    image = _cases()["RGB"]
    block = codec.to_image_block(image)
    assert block["mime_type"] == "image/png"
    assert np.array_equal(np.asarray(codec.image_from_block(block)), np.asarray(image))
