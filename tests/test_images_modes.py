"""Every PIL mode and numpy dtype becomes L, RGB or RGBA (or a precise error); any mode encodes."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.images import (
    ImageInputError,
    PixelBudget,
    budget_size,
    encode_image,
    load_image,
    serialisable_image_input,
    to_image_block,
    to_standard_mode,
    trajectory_image,
)

NAN, INF = float("nan"), float("inf")


def float_image(values) -> Image.Image:
    return Image.fromarray(np.array(values, np.float32))


def int_image(values) -> Image.Image:
    return Image.fromarray(np.array(values, np.int32))  # mode I


def wide_image(mode: str, values) -> Image.Image:
    image = Image.new(mode, (len(values[0]), len(values)))
    for y, row in enumerate(values):
        for x, value in enumerate(row):
            image.putpixel((x, y), value)
    return image


def palette(transparent: bool) -> Image.Image:
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    if transparent:
        image.info["transparency"] = 1
    return image


def pa_image() -> Image.Image:
    image = Image.new("PA", (2, 2), (1, 77))
    image.putpalette([0, 0, 0, 255, 0, 0])
    return image


# name -> (image, expected mode, expected pixel at (0, 0), and optionally at (1, 0))
PIL_CASES = {
    "F in [0, 1]": (float_image([[0.5, 1.0], [0.0, 0.25]]), "L", 128, 255),
    "F in [0, 255]": (float_image([[200.0, 10.4], [0, 0]]), "L", 200, 10),
    "F with NaN and inf": (float_image([[NAN, INF], [-INF, 0.5]]), "L", 0, 0),
    "F wide range": (float_image([[-1000.0, 1000.0], [0.0, 0.0]]), "L", 0, 255),
    "I in 0..255": (int_image([[77, 255], [0, 1]]), "L", 77, 255),
    "I 16-bit values": (int_image([[40000, 65535], [0, 0]]), "L", 156, 255),
    "I negative": (int_image([[-5, 5], [0, 0]]), "L", 0, 255),
    "I;16": (wide_image("I;16", [[65535, 32768], [0, 0]]), "L", 255, 128),
    "I;16 small values": (wide_image("I;16", [[200, 10], [0, 0]]), "L", 200, 10),
    "I;16B": (wide_image("I;16B", [[65535, 1000], [0, 0]]), "L", 255, 4),
    "I;16L": (wide_image("I;16L", [[514, 257], [0, 0]]), "L", 2, 1),
    "I;16N": (wide_image("I;16N", [[65535, 0], [0, 0]]), "L", 255, 0),
    "RGBa": (Image.new("RGBa", (2, 2), (100, 50, 0, 128)), "RGBA", (199, 99, 0, 128)),
    "La": (Image.new("La", (2, 2), (100, 128)), "RGBA", (199, 199, 199, 128)),
    "LA": (Image.new("LA", (2, 2), (100, 128)), "RGBA", (100, 100, 100, 128)),
    "1": (Image.new("1", (2, 2), 1), "L", 255),
    "HSV": (Image.new("HSV", (2, 2), (0, 255, 255)), "RGB", (255, 0, 0)),
    "CMYK": (Image.new("CMYK", (2, 2), (0, 255, 255, 0)), "RGB", (255, 0, 0)),
    "P with transparency": (palette(True), "RGBA", (255, 0, 0, 0)),
    "P": (palette(False), "RGB", (255, 0, 0)),
    "PA": (pa_image(), "RGBA", (255, 0, 0, 77)),
    "YCbCr": (Image.new("YCbCr", (2, 2), (128, 128, 128)), "RGB", (128, 128, 128)),
    "RGBX": (Image.new("RGBX", (2, 2), (1, 2, 3, 0)), "RGB", (1, 2, 3)),
    "LAB": (Image.new("LAB", (2, 2), (100, 128, 128)), "RGB", None),
    "L": (Image.new("L", (2, 2), 9), "L", 9),
    "RGB": (Image.new("RGB", (2, 2), (1, 2, 3)), "RGB", (1, 2, 3)),
    "RGBA": (Image.new("RGBA", (2, 2), (1, 2, 3, 4)), "RGBA", (1, 2, 3, 4)),
}


@pytest.mark.parametrize("name", list(PIL_CASES))
def test_pil_modes_are_converted(name) -> None:
    image, mode, first, *second = PIL_CASES[name]
    loaded = load_image(image)
    assert loaded.mode == mode
    if first is not None:
        assert loaded.getpixel((0, 0)) == first
    if second:
        assert loaded.getpixel((1, 0)) == second[0]
    if image.mode in ("L", "RGB", "RGBA"):
        assert loaded is image and to_standard_mode(image) is image


@pytest.mark.parametrize("name", list(PIL_CASES))
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_any_mode_encodes_and_decodes(name, fmt) -> None:
    image = PIL_CASES[name][0]
    data = encode_image(image, fmt)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    assert decoded.format.lower() == fmt and decoded.size == image.size
    assert decoded.mode in ("1", "L", "LA", "P", "RGB", "RGBA")
    if fmt == "png" and image.mode in ("F", "I", "I;16", "I;16B", "RGBa", "HSV"):
        expected = load_image(image)
        assert np.array_equal(np.asarray(decoded), np.asarray(expected)), name


def test_results_in_wide_modes_reach_blocks_and_trajectories() -> None:
    """The host never raises ``cannot write mode F as PNG`` for a result image."""
    for mode in ("F", "I", "I;16", "I;16B", "RGBa", "La", "LA", "HSV", "CMYK", "YCbCr"):
        image = Image.new(mode, (300, 200))
        block = to_image_block(image, fmt="png")
        shown = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
        assert shown.size == (300, 200)
        budget = PixelBudget(max_pixels=4 * 28 * 28)
        small = to_image_block(image, budget=budget)
        assert Image.open(io.BytesIO(base64.b64decode(small["base64"]))).size == budget_size(
            300, 200, budget
        )
        stored = trajectory_image(image, 1, "tool", 1)
        assert Image.open(io.BytesIO(stored["png"])).size == (300, 200)
        kept = serialisable_image_input(None, image)  # lazily: PNG only when serialised
        assert Image.open(io.BytesIO(kept["png"])).size == (300, 200)


def test_every_mode_pil_knows_loads_or_is_refused_precisely() -> None:
    modes = {
        "1", "CMYK", "F", "HSV", "I", "I;16", "I;16B", "I;16L", "I;16N", "L", "LA", "La",
        "LAB", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "YCbCr",
    }  # fmt: skip
    modes |= set(getattr(Image, "MODES", []))
    for mode in sorted(modes):
        try:
            image = Image.new(mode, (3, 2))
        except (ValueError, KeyError):
            continue
        try:
            loaded = load_image(image)
        except ImageInputError as exc:
            assert mode in str(exc)
        else:
            assert loaded.mode in ("L", "RGB", "RGBA"), mode
            assert loaded.size == (3, 2)
        encode_image(image, "png")


def grey_alpha(value: int, alpha: int) -> np.ndarray:
    array = np.zeros((2, 3, 2), np.uint8)
    array[..., 0], array[..., 1] = value, alpha
    return array


# name -> (array, expected mode, expected pixel at (0, 0), and optionally at (1, 0))
ARRAY_CASES = {
    "float in [0, 1]": (np.array([[0.25, 1.0], [0, 0]]), "L", 64, 255),
    "float in [0, 255]": (np.array([[200.0, 254.6], [0, 0]]), "L", 200, 255),
    "float32 with NaN and inf": (np.array([[NAN, INF], [-INF, 1.0]], np.float32), "L", 0, 0),
    "float with NaN, in [0, 255]": (np.array([[NAN, 100.0], [200.0, 0]]), "L", 0, 100),
    "float16": (np.array([[0.5, 1.0], [0, 0]], np.float16), "L", 128, 255),
    "float in [-1, 1]": (np.array([[-1.0, 1.0], [0.0, 0.0]]), "L", 0, 255),
    "int16 in 0..255": (np.array([[7, 255], [0, 0]], np.int16), "L", 7, 255),
    "int16 negative": (np.array([[-100, 100], [0, 0]], np.int16), "L", 0, 255),
    "uint16": (np.array([[65535, 32768], [0, 0]], np.uint16), "L", 255, 128),
    "uint16 big-endian": (np.array([[65535, 257], [0, 0]], ">u2"), "L", 255, 1),
    "int32 16-bit values": (np.array([[1000, 65535], [0, 0]], np.int32), "L", 4, 255),
    "int64 huge": (np.array([[0, 10**12], [0, 0]], np.int64), "L", 0, 255),
    "uint32 in 0..255": (np.array([[3, 4], [0, 0]], np.uint32), "L", 3, 4),
    "bool": (np.array([[True, False], [False, True]]), "L", 255, 0),
    "2-D uint8": (np.full((2, 3), 42, np.uint8), "L", 42),
    "HxWx1": (np.full((2, 3, 1), 42, np.uint8), "L", 42),
    "HxWx1 float": (np.full((2, 3, 1), 0.5), "L", 128),
    "HxWx2": (grey_alpha(90, 200), "RGBA", (90, 90, 90, 200)),
    "HxWx3": (np.full((2, 3, 3), (1, 2, 3), np.uint8), "RGB", (1, 2, 3)),
    "HxWx4": (np.full((2, 3, 4), (1, 2, 3, 4), np.uint8), "RGBA", (1, 2, 3, 4)),
    "HxWx4 float": (np.full((2, 3, 4), (1.0, 0.0, 0.5, 1.0)), "RGBA", (255, 0, 128, 255)),
    "HxWx3 uint16": (np.full((2, 3, 3), (65535, 0, 257), np.uint16), "RGB", (255, 0, 1)),
    "non-contiguous": (
        np.full((3, 2, 3), (1, 2, 3), np.uint8).transpose(1, 0, 2),
        "RGB",
        (1, 2, 3),
    ),
    "strided": (np.arange(48, dtype=np.uint8).reshape(4, 12)[::2, ::3], "L", 0, 3),
}


@pytest.mark.parametrize("name", list(ARRAY_CASES))
def test_arrays_are_converted(name) -> None:
    array, mode, first, *second = ARRAY_CASES[name]
    loaded = load_image(array)
    assert loaded.mode == mode
    assert loaded.size == (array.shape[1], array.shape[0])
    assert loaded.getpixel((0, 0)) == first
    if second:
        assert loaded.getpixel((1, 0)) == second[0]
    assert load_image(serialisable_image_input(None, array)["png"]).size == loaded.size


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 2), np.complex128), "dtype complex128 is not supported"),
        (np.array([[object(), None]]), "dtype object is not supported"),
        (np.array([["a", "b"]]), "dtype <U1 is not supported"),
        (np.zeros((2, 2), "datetime64[s]"), "dtype datetime64\\[s\\] is not supported"),
        (np.zeros((4, 4, 5), np.uint8), "got shape \\(4, 4, 5\\)"),
        (np.zeros((4, 4, 0), np.uint8), "got shape \\(4, 4, 0\\)"),
        (np.zeros(5, np.uint8), "got shape \\(5,\\)"),
        (np.zeros((2, 2, 2, 2), np.uint8), "got shape \\(2, 2, 2, 2\\)"),
        (np.zeros((0, 5), np.float32), "zero-sized side \\(5x0\\)"),
        (np.zeros((3, 0, 3), np.uint16), "zero-sized side \\(0x3\\)"),
    ],
)
def test_unsupported_arrays_are_refused_precisely(array, message) -> None:
    with pytest.raises(ImageInputError, match=message):
        load_image(array)


def test_oversized_arrays_are_refused_before_conversion() -> None:
    huge = np.broadcast_to(np.float64(0.5), (20_000, 10_000))  # no memory behind it
    with pytest.raises(ImageInputError, match="200,000,000 pixels exceeds the limit"):
        load_image(huge)
