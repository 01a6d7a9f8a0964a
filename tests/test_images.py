"""Image loading, validation, budgets and encoding."""

from __future__ import annotations

import base64
import io
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.images import (
    ImageInputError,
    PixelBudget,
    budget_size,
    check_output_image,
    decode_trajectory_image,
    image_from_block,
    load_image,
    to_image_block,
    trajectory_image,
)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def sample() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))


def test_every_source_kind_loads_the_same_pixels(sample, tmp_path) -> None:
    data = png_bytes(sample)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    sources = [
        sample,
        np.asarray(sample),
        data,
        path,
        str(path),
        f"file://{path}",
        b64,
        f"data:image/png;base64,{b64}",
    ]
    for source in sources:
        assert np.array_equal(np.asarray(load_image(source)), np.asarray(sample)), type(source)


def test_http_urls_are_downloaded(sample, tmp_path) -> None:
    (tmp_path / "x.png").write_bytes(png_bytes(sample))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert load_image(f"{url}/x.png").size == (40, 30)
        with pytest.raises(ImageInputError, match="could not download"):
            load_image(f"{url}/missing.png")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"", "no image data"),
        (b"GIF89a-not-really", "not a recognised image format|corrupt"),
        ("", "the image string is empty"),
        ("data:image/png,abc", "only base64 data URLs"),
        (np.zeros((4, 4, 7), np.uint8), "HxW, HxWx1, HxWx2 .* or HxWx4"),
        (3.5, "unsupported image input of type float"),
        ("/nope/missing.jpg", "image file not found"),
    ],
)
def test_bad_sources_raise_clear_errors(source, message) -> None:
    with pytest.raises(ImageInputError, match=message):
        load_image(source)


def test_size_limits(tmp_path) -> None:
    with pytest.raises(ImageInputError, match="exceeds the limit"):
        load_image(Image.new("L", (100, 100)), max_pixels=5000)
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(path)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        load_image(path, max_pixels=10_000_000)
    with pytest.raises(ImageInputError, match="zero-sized"):
        load_image(np.zeros((0, 5), np.uint8))


def test_modes_are_normalised() -> None:
    assert load_image(Image.new("P", (4, 4))).mode == "RGB"
    assert load_image(Image.new("1", (4, 4))).mode == "L"
    assert load_image(Image.new("LA", (4, 4))).mode == "RGBA"
    assert load_image(Image.new("CMYK", (4, 4))).mode == "RGB"
    wide = load_image(Image.new("I;16", (4, 4), 1000))
    assert wide.mode == "L"
    floats = load_image(np.full((3, 3), 0.5))
    assert floats.getpixel((0, 0)) == 128  # 0.5 * 255 = 127.5, rounded


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1000, 1000), (896, 896)), ((28, 28), (56, 56)), ((300, 100), (308, 112))],
)
def test_budget_size(size, expected) -> None:
    budget = PixelBudget(min_pixels=56 * 56, max_pixels=1024 * 28 * 28)
    w, h = budget_size(*size, budget)
    assert (w, h) == expected
    assert w % 28 == 0 and h % 28 == 0 and budget.min_pixels <= w * h <= budget.max_pixels


def test_blocks_round_trip_and_declare_the_real_format(sample) -> None:
    for fmt in ("png", "jpeg", "webp"):
        block = to_image_block(sample, fmt=fmt)
        decoded = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
        assert decoded.format.lower() == fmt and block["mime_type"] == f"image/{fmt}"
    block = to_image_block(sample)
    assert np.array_equal(np.asarray(image_from_block(block)), np.asarray(sample))
    openai_part = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{block['base64']}"},
    }
    assert image_from_block(openai_part).size == sample.size
    with pytest.raises(ImageInputError, match="no data"):
        image_from_block({"type": "image"})


def test_output_checks() -> None:
    assert check_output_image(Image.new("L", (10, 10))) is None
    assert "aspect ratio 200" in check_output_image(Image.new("L", (400, 2)))
    assert "zero-sized" in check_output_image(Image.new("L", (0, 2)))


def test_trajectory_images_are_lossless(sample) -> None:
    item = trajectory_image(sample, 3, "tool", 2)
    assert (item["index"], item["origin"], item["step"], item["width"], item["height"]) == (
        3,
        "tool",
        2,
        40,
        30,
    )
    assert np.array_equal(np.asarray(decode_trajectory_image(item)), np.asarray(sample))


def test_one_encode_serves_model_and_trajectory_when_the_image_fits() -> None:
    from langchain_codevision.messages import encode_step_image

    budget = PixelBudget(min_pixels=28 * 28, max_pixels=100 * 28 * 28)
    block, stored = encode_step_image(Image.new("RGB", (56, 84), "red"), 4, budget, "png")
    assert base64.b64decode(block["base64"]) == stored["png"] and block["id"] == "cv-image-4"
    resized, full = encode_step_image(Image.new("RGB", (50, 84), "red"), 5, budget, "png")
    assert Image.open(io.BytesIO(base64.b64decode(resized["base64"]))).size == (56, 84)
    assert (full["width"], full["height"]) == (50, 84)
