"""The pixel budget holds at any size and aspect ratio."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from langchain_codevision.images import (
    PixelBudget,
    budget_size,
    encode_image,
    encode_view,
    fit_pixel_budget,
    grey_channel,
    resize_image,
    to_image_block,
)

BUDGETS = [
    PixelBudget(),
    PixelBudget(min_pixels=56 * 56, max_pixels=1024 * 28 * 28),
    PixelBudget(min_pixels=1, max_pixels=10**12),  # the graph's "no minimum" budget
    PixelBudget(min_pixels=4 * 28 * 28, max_pixels=4 * 28 * 28),  # min == max
    PixelBudget(min_pixels=28 * 28, max_pixels=28 * 28),  # a single cell
    PixelBudget(min_pixels=1000, max_pixels=5000, factor=1),
    PixelBudget(min_pixels=16 * 14 * 14, max_pixels=16384 * 14 * 14, factor=14),
    PixelBudget(min_pixels=3 * 32 * 32, max_pixels=37 * 32 * 32 + 5, factor=32),
]

SIDES = [1, 2, 3, 13, 27, 28, 29, 55, 56, 100, 333, 999, 1000, 1024, 4096, 5000, 100_000]
SIDES += [1_000_000]


def check(width: int, height: int, budget: PixelBudget) -> tuple[int, int]:
    w, h = budget_size(width, height, budget)
    f = budget.factor
    assert w >= f and h >= f, (width, height, budget, w, h)
    assert w % f == 0 and h % f == 0, (width, height, budget, w, h)
    assert w * h <= budget.max_pixels, (width, height, budget, w, h)
    return w, h


@pytest.mark.parametrize(
    "budget", BUDGETS, ids=lambda b: f"{b.min_pixels}-{b.max_pixels}-{b.factor}"
)
def test_every_size_on_a_grid_fits_the_budget(budget) -> None:
    for width, height in itertools.product(SIDES, SIDES):
        check(width, height, budget)


@settings(max_examples=400, deadline=None, database=None)
@given(
    width=st.integers(1, 10**7),
    height=st.integers(1, 10**7),
    budget=st.sampled_from(BUDGETS),
)
def test_any_size_fits_the_budget(width, height, budget) -> None:
    w, h = check(width, height, budget)
    cells = budget.max_pixels // budget.factor**2
    ratio = max(width, height) / min(width, height)
    if ratio <= cells / 4 and min(width, height) >= 2 * budget.factor:
        # an aspect ratio the grid can show, and no side held up at its one-cell minimum:
        # kept within the rounding of one cell per side
        shown = w / h
        true = width / height
        slack = (1 + 1 / (min(w, h) / budget.factor)) ** 2
        assert true / slack <= shown <= true * slack, (width, height, w, h)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1_000_000, 1), (28672, 28)),
        ((1, 1_000_000), (28, 28672)),
        ((100_000, 3), (28672, 28)),
        ((3, 100_000), (28, 28672)),
        ((28672, 28), (28672, 28)),  # exactly the longest strip the budget holds
        ((5000, 10), (5012, 28)),  # aspect 500 fits: 179 x 1 cells
        ((1000, 1000), (896, 896)),  # ordinary sizes as before
        ((300, 100), (308, 112)),
    ],
)
def test_extreme_aspect_ratios_under_the_default_budget(size, expected) -> None:
    budget = PixelBudget()
    assert budget.max_aspect_ratio == 1024
    assert budget_size(*size, budget) == expected
    w, h = expected
    assert w * h <= budget.max_pixels


def test_the_upscale_never_overshoots_when_min_equals_max() -> None:
    budget = PixelBudget(min_pixels=4 * 28 * 28, max_pixels=4 * 28 * 28)
    assert budget_size(3, 1, budget) == (84, 28)
    assert budget_size(1, 1, budget) == (56, 56)
    assert budget_size(10, 10, budget) == (56, 56)


def test_fitted_images_really_have_the_budget_size() -> None:
    budget = PixelBudget()
    for size in ((1_000_000, 1), (1, 200_000), (100_000, 3)):
        fitted = fit_pixel_budget(Image.new("L", size, 200), budget)
        assert fitted.size == budget_size(*size, budget)
        assert math.prod(fitted.size) <= budget.max_pixels
    block = to_image_block(Image.new("RGB", (1_000_000, 1), "red"), budget=budget)
    from langchain_codevision.images import image_from_block

    assert image_from_block(block).size == (28672, 28)


def test_shrinking_averages_fine_detail_instead_of_aliasing_it() -> None:
    stripes = np.zeros((1000, 1000), np.uint8)
    stripes[:, ::2] = 255  # one-pixel columns: any point sampler turns them into bands
    for mode, pixels in (("L", stripes), ("RGB", np.dstack([stripes] * 3))):
        image = Image.fromarray(pixels, mode)
        small = np.asarray(resize_image(image, (250, 250)), np.float64)
        assert small.shape[:2] == (250, 250)
        assert abs(small.mean() - 127.5) < 2 and small.std() < 2  # grey, not bands
        sampled = np.asarray(image.resize((250, 250), Image.Resampling.NEAREST), np.float64)
        assert abs(sampled.mean() - 127.5) > 100  # aliasing: every sample hits one phase


def test_growing_and_alpha_images_keep_their_mode_and_content() -> None:
    grown = resize_image(Image.new("RGB", (10, 6), (200, 30, 10)), (40, 24))
    assert grown.size == (40, 24) and grown.getpixel((20, 12)) == (200, 30, 10)
    clear = Image.new("RGBA", (100, 100), (255, 0, 0, 0))  # invisible red
    clear.paste((0, 0, 255, 255), (50, 0, 100, 100))
    shrunk = resize_image(clear, (50, 50))
    assert shrunk.mode == "RGBA"
    red, _, blue, alpha = shrunk.getpixel((25, 25))  # on the edge: blue fading out
    assert alpha > 0 and red < 10 and blue > 240  # premultiplied: no red bleeds in


def test_a_resized_view_keeps_the_colour_profile() -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (1000, 1000), (10, 120, 200))
    image.info["icc_profile"] = profile
    assert resize_image(image, (500, 500)).info["icc_profile"] == profile
    data, resized = encode_view(image, PixelBudget())
    assert resized and Image.open(io.BytesIO(data)).info.get("icc_profile") == profile


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "F", "1"])
@pytest.mark.parametrize("size", [(1000, 700), (30, 20), (896, 896)])
def test_the_one_pass_view_equals_fitting_then_encoding(mode, size) -> None:
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).convert(mode)
    budget = PixelBudget()
    data, resized = encode_view(image, budget)
    expected = encode_image(fit_pixel_budget(image, budget))
    assert resized == (budget_size(*size, budget) != size)
    got, want = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(expected))
    assert (got.mode, got.size) == (want.mode, want.size)
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_pngs_decode_the_same_with_either_deflate(monkeypatch) -> None:
    import importlib.util
    import zlib

    import langchain_codevision.images as codec

    if importlib.util.find_spec("isal") is not None:  # a core dependency where it has wheels
        assert codec._deflate.__name__.startswith("isal")
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8))
    fast = encode_image(image)
    monkeypatch.setattr(codec, "_deflate", zlib)  # platforms without an isal wheel
    plain = encode_image(image)
    for data in (fast, plain):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(image))


def test_budgets_that_cannot_hold_a_cell_or_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold one 28x28 cell"):
        PixelBudget(min_pixels=1, max_pixels=28 * 28 - 1)
    with pytest.raises(ValueError, match="factor >= 1"):
        PixelBudget(factor=0)
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        PixelBudget(min_pixels=10, max_pixels=5)
    for size in ((0, 5), (5, 0), (-1, 5)):
        with pytest.raises(ValueError, match="smaller than 1"):
            budget_size(*size, PixelBudget())


def _decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_grey_rgb_page_is_viewed_as_a_greyscale_png_of_the_same_colours() -> None:
    from langchain_codevision.demo import render_page

    page, _ = render_page(size=(1000, 1000))
    page = page.convert("RGB").rotate(90, expand=True)
    budget = PixelBudget()
    data, resized = encode_view(np.asarray(page), budget)
    expected = encode_image(fit_pixel_budget(page, budget))
    got, want = _decoded(data), _decoded(expected)
    assert resized and got.mode == "L" and want.mode == "RGB"
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want))
    assert len(data) < 0.7 * len(expected)  # the point of it: fewer bytes to the model


@pytest.mark.parametrize("row", [0, 1, 36, 37, 500, 999])
def test_one_coloured_pixel_keeps_the_view_in_colour(row) -> None:
    pixels = np.full((1000, 1000, 3), 200, np.uint8)
    pixels[row, 123] = (200, 201, 200)  # in a sampled row, or not: found either way
    data, _ = encode_view(pixels, PixelBudget())
    got = _decoded(data)
    assert got.mode == "RGB"
    want = _decoded(encode_image(fit_pixel_budget(Image.fromarray(pixels), PixelBudget())))
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_grey_channel_reads_only_equal_rgb_channels() -> None:
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10)
    rgb = np.stack([grey] * 3, axis=-1)
    assert np.array_equal(grey_channel(rgb), grey)
    assert grey_channel(grey) is None  # already one channel
    assert grey_channel(np.dstack([rgb, np.full((6, 10), 255, np.uint8)])) is None  # RGBA
    assert grey_channel(rgb.astype(np.uint16)) is None
    tinted = rgb.copy()
    tinted[5, 9, 2] += 1
    assert grey_channel(tinted) is None


def test_grey_channel_keeps_every_grey_level_exactly() -> None:
    levels = np.repeat(np.arange(256, dtype=np.uint8), 40).reshape(80, 128)
    assert np.array_equal(grey_channel(np.stack([levels] * 3, axis=-1)), levels)
    strided = np.stack([levels] * 3, axis=-1)[:, ::2]  # a view, not one block of memory
    assert np.array_equal(grey_channel(strided), levels[:, ::2])


@pytest.mark.parametrize("colour", [(100, 101, 96), (7, 6, 9), (255, 254, 255), (0, 0, 1)])
def test_grey_channel_sees_a_colour_whose_grey_value_matches_its_neighbours(colour) -> None:
    """A pixel whose weighted grey rounds to the page's grey is still not grey."""
    page = np.full((100, 100, 3), colour[0], np.uint8)
    page[50, 50] = colour  # row 50: not one of the sampled rows (every 37th)
    assert grey_channel(page) is None
