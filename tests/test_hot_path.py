"""The graph's hot path: images stay pixels until something needs their PNG.

Real kernels, real graphs, a scripted model; every image is checked pixel for pixel.
"""

from __future__ import annotations

import base64
import copy
import io
import pickle

import numpy as np
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from PIL import Image, ImageDraw

import langchain_codevision
from langchain_codevision import create_codevision_graph, trajectory_images
from langchain_codevision.images import (
    PixelBudget,
    TrajectoryImage,
    as_pil,
    check_output_image,
    decode_trajectory_image,
    encode_image,
    encode_view,
    fit_pixel_budget,
    pixel_size,
    trajectory_image,
)
from langchain_codevision.kernel import KernelPool
from langchain_codevision.loop import ImageAwareSerializer
from tests.scripted_model import ScriptedChatModel, text_call

ANSWER = "<answer>done</answer>"
ROTATE = "result = image.rotate(90, expand=True)"
CROP = "result = image.crop((10, 10, 206, 122))"  # 196x112: fits the grid


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def page() -> Image.Image:
    image = Image.new("RGB", (420, 260), "white")
    draw = ImageDraw.Draw(image)
    for row in range(8):
        draw.text((12, 10 + 30 * row), f"row {row}: 0123456789 abcdef", fill="black")
    draw.rectangle((330, 150, 400, 240), fill=(200, 30, 60))
    return image


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()


def sent_images(model: ScriptedChatModel) -> list[Image.Image]:
    """Every image block the model was sent, decoded, in order of first appearance."""
    seen: dict[str, Image.Image] = {}
    for request in model.received:
        for message in request:
            for block in message.content if isinstance(message.content, list) else []:
                if isinstance(block, dict) and block.get("type") == "image":
                    data = base64.b64decode(block["base64"])
                    seen.setdefault(block["id"], Image.open(io.BytesIO(data)).copy())
    return list(seen.values())


def run(pool, page, replies, **kwargs):
    model = ScriptedChatModel(replies=replies, dialect="text")
    graph = create_codevision_graph(model, pool=pool, **kwargs)
    return model, graph


def test_no_png_is_made_for_the_trajectory_without_a_checkpointer(pool, page) -> None:
    budget = {"min_pixels": 28 * 28, "max_pixels": 150 * 28 * 28}  # 420x260 does not fit
    model, graph = run(pool, page, [text_call(ROTATE), text_call(CROP, 1), ANSWER], **budget)
    out = graph.invoke({"image": page, "question": "q"})
    assert [s["ok"] for s in out["steps"]] == [True, True]
    images = out["images"]
    assert all(isinstance(item, TrajectoryImage) for item in images)
    assert [item.encoded for item in images] == [False, False, True]  # the crop fits
    rotated = page.rotate(90, expand=True)
    expected = [page, rotated, rotated.crop((10, 10, 206, 122))]
    assert all(same(item.image, want) for item, want in zip(images, expected, strict=True))
    shown = sent_images(model)
    want = PixelBudget(28 * 28, 150 * 28 * 28)
    assert len(shown) == 3
    for view, full in zip(shown, expected, strict=True):
        assert same(view.convert(full.mode), fit_pixel_budget(full, want))  # lossless view
    # the fitting crop's trajectory PNG is the very bytes the model got
    assert decode_trajectory_image(images[2]).tobytes() == shown[2].tobytes()


def test_trajectory_images_are_public_copies(pool, page) -> None:
    _, graph = run(pool, page, [text_call(ROTATE), ANSWER])
    mine = page.copy()
    out = graph.invoke({"image": mine, "question": "q"})
    ImageDraw.Draw(mine).rectangle((0, 0, 100, 100), fill="green")  # the caller's object
    assert langchain_codevision.trajectory_images is trajectory_images
    first, second = trajectory_images(out)
    assert same(first, page) and same(second, page.rotate(90, expand=True))
    ImageDraw.Draw(first).rectangle((0, 0, 50, 50), fill="black")
    assert same(out["images"][0].image, page)  # the state kept its own pixels
    assert [im.size for im in trajectory_images(out["images"])] == [(420, 260), (260, 420)]
    assert trajectory_images({"answer": None}) == []


def test_checkpointed_episode_resumes_in_a_new_graph(pool, page) -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "hot-path"}}
    replies = [text_call(ROTATE), text_call(CROP, 1), ANSWER]
    _, first = run(pool, page, replies, checkpointer=saver)
    first.invoke({"image": page, "question": "q"}, config, interrupt_before=["execute"])
    first.invoke(None, config, interrupt_before=["execute"])  # ran step 1, stops before 2
    paused = first.get_state(config).values
    first.codevision_nodes.kernels.release(paused["episode_id"])
    assert len(paused["images"]) == 2 and all(i.encoded for i in paused["images"])
    # a new graph (new kernels) picks the episode up from the checkpoint alone
    model = ScriptedChatModel(replies=[ANSWER], dialect="text")  # step 2 was decided
    second = create_codevision_graph(model, pool=pool, checkpointer=saver)
    out = second.invoke(None, config)
    assert out["answer"] == "done" and [s["ok"] for s in out["steps"]] == [True, True]
    rotated = page.rotate(90, expand=True)
    got = trajectory_images(out)
    assert same(got[1], rotated) and same(got[2], rotated.crop((10, 10, 206, 122)))
    assert all(
        isinstance(item, TrajectoryImage) for item in second.get_state(config).values["images"]
    )


def test_trajectory_image_serialises_as_png_everywhere(page) -> None:
    item = trajectory_image(page, 3, "tool", 2)
    assert not item.encoded and dict(item.metadata()) == {
        "index": 3,
        "origin": "tool",
        "step": 2,
        "width": 420,
        "height": 260,
    }
    restored = pickle.loads(pickle.dumps(item))
    assert item.encoded and restored == item and same(restored.image, page)
    assert copy.deepcopy(item) is item
    stock = JsonPlusSerializer()
    back = stock.loads_typed(stock.dumps_typed({"images": [item]}))["images"][0]
    assert isinstance(back, TrajectoryImage) and same(back.image, page)
    strict = JsonPlusSerializer(allowed_msgpack_modules=None)
    plain = strict.loads_typed(strict.dumps_typed([item]))[0]
    assert same(decode_trajectory_image(plain), page) and plain["index"] == 3
    wrapped = ImageAwareSerializer(JsonPlusSerializer())
    kind, data = wrapped.dumps_typed({"images": [item], "image": page})
    loaded = wrapped.loads_typed((kind, data))
    assert isinstance(loaded["images"][0], TrajectoryImage) and loaded["images"][0] == item
    assert same(Image.open(io.BytesIO(loaded["image"])), page)
    assert item["png"] is item["png"]  # encoded once
    with pytest.raises(KeyError):
        item["pixels"]
    fresh = trajectory_image(page, 0)
    assert "png" in fresh and "pixels" not in fresh and not fresh.encoded


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (257, 31)])
def test_fast_png_is_lossless(mode, size) -> None:
    rng = np.random.default_rng(7)
    bands = len(mode)
    array = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if bands == 1 else array, mode)
    data = encode_image(image, "png")
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    assert decoded.format == "PNG" and same(decoded, image)


def test_png_with_a_colour_profile_keeps_it(page) -> None:
    profile = b"\0" * 16  # carried as metadata: the writer must not drop it
    tagged = page.copy()
    tagged.info["icc_profile"] = profile
    decoded = Image.open(io.BytesIO(encode_image(tagged, "png")))
    assert decoded.info.get("icc_profile") == profile and same(decoded.convert("RGB"), page)


def test_a_trajectory_image_can_be_the_next_input(pool, page) -> None:
    item = trajectory_image(page.rotate(90, expand=True), 1, "tool", 1)
    stored = trajectory_image(page, 2, "tool", 2).to_dict()  # as a checkpoint holds it
    _, graph = run(pool, page, [ANSWER])
    out = graph.invoke({"image": [item, stored], "question": "q"})
    assert out["answer"] == "done" and not item.encoded
    first, second = trajectory_images(out)
    assert same(first, page.rotate(90, expand=True)) and same(second, page)
    assert [i["origin"] for i in out["images"]] == ["input", "input"]


def test_kernel_results_reach_the_model_as_arrays(pool, page) -> None:
    with pool.session() as kernel:
        kernel.put_image(0, page)
        out = kernel.execute(ROTATE, image=0, collect=("result",))
    result = out.result_images[0]
    assert isinstance(result.pixels, np.ndarray) and not result.pixels.flags.writeable
    assert result.size == (260, 420) and result.mode == "RGB"
    assert same(result.image, page.rotate(90, expand=True))  # PIL made on demand, equal
    _, graph = run(pool, page, [text_call(ROTATE), ANSWER])
    episode = graph.invoke({"image": page, "question": "q"})
    tool_output = episode["images"][1]
    assert isinstance(tool_output.pixels, np.ndarray) and not tool_output.encoded
    assert same(tool_output.image, page.rotate(90, expand=True))
    restored = pickle.loads(pickle.dumps(tool_output))  # serialises as its PNG
    assert same(restored.image, page.rotate(90, expand=True))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_the_codec_reads_arrays_as_it_reads_pil(mode) -> None:
    rng = np.random.default_rng(3)
    bands = len(mode)
    shape = (300, 410) if bands == 1 else (300, 410, bands)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    image = as_pil(array)
    assert image.mode == mode and pixel_size(array) == image.size == (410, 300)
    assert encode_image(array, "png") == encode_image(image, "png")
    budget = PixelBudget(28 * 28, 100 * 28 * 28)  # 410x300 must shrink
    assert encode_view(array, budget) == encode_view(image, budget)
    assert encode_view(array, budget)[1] is True
    assert encode_image(array, "jpeg")[:2] == b"\xff\xd8"  # other formats go through PIL
    item = trajectory_image(array, 1, "tool", 1)
    assert item.pixels is array and (item.width, item.height) == (410, 300)
    assert same(Image.open(io.BytesIO(item.png)), image) and same(item.image, image)
    assert check_output_image(array[:1], 200.0) is not None  # 410x1: too long
    wide = np.zeros((2, 3, 5), np.uint8)  # five bands: not a pixel layout, refused clearly
    with pytest.raises(ValueError, match="HxWx"):
        as_pil(wide)


def _filter_bytes(png: bytes) -> set[int]:
    """The PNG filter type of every row (the first byte of each inflated row)."""
    import struct
    import zlib

    width, height, _, colour = struct.unpack(">IIBB", png[16:26])
    bands = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    chunks, position = b"", 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        if png[position + 4 : position + 8] == b"IDAT":
            chunks += png[position + 8 : position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(chunks)
    stride = width * bands + 1
    return {raw[row * stride] for row in range(height)}


def test_photos_are_written_with_the_up_filter_and_pages_without(monkeypatch) -> None:
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())  # 512x512 RGB
    page = np.asarray(Image.new("RGB", (512, 512), "white")).copy()
    page[100:110, 50:450] = 0  # a line of "text"
    filtered = encode_image(photo, "png")
    for array, png, filters in ((photo, filtered, {2}), (page, encode_image(page, "png"), {0})):
        assert _filter_bytes(png) == filters
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), array)  # lossless
    monkeypatch.setattr(langchain_codevision.images, "UP_FILTER_GAIN", 0.0)  # never filter
    unfiltered = encode_image(photo, "png")
    assert _filter_bytes(unfiltered) == {0}
    assert len(filtered) < 0.75 * len(unfiltered)


def test_every_route_is_taken_and_a_paused_episode_resumes_after_an_edit(pool, page) -> None:
    """The routes after ``model`` and ``execute`` (tool error, malformed reply, answer,
    turn limit), and what LangGraph works out from them after ``update_state``: a paused
    episode whose state was edited resumes where it was going."""
    replies = [
        text_call(ROTATE),
        text_call("1 / 0"),  # a runtime error: execute -> reflect
        "<tool_call>{not json",  # malformed: model -> reflect
        ANSWER,
    ]
    _model, graph = run(pool, page, replies)
    edges = {(edge.source, edge.target) for edge in graph.get_graph().edges}
    assert {(source, target) for source, target in edges if source in ("model", "execute")} >= {
        ("model", "execute"),
        ("model", "reflect"),
        ("model", "force_answer"),
        ("model", "finish"),
        ("execute", "model"),
        ("execute", "reflect"),
    }
    order = [
        name
        for chunk in graph.stream({"image": page, "question": "q"}, stream_mode="updates")
        for name in chunk
    ]
    assert order == [
        "prepare",
        "model",
        "execute",
        "model",
        "execute",
        "reflect",
        "model",
        "reflect",
        "model",
        "finish",
    ]
    limited = create_codevision_graph(
        ScriptedChatModel(replies=[text_call(ROTATE)], dialect="text"), pool=pool, max_turns=1
    )
    out = limited.invoke({"image": page, "question": "q"})
    assert out["stop_reason"] == "turn_limit"  # model -> force_answer

    paused = create_codevision_graph(
        ScriptedChatModel(replies=[text_call(ROTATE), ANSWER], dialect="text"),
        pool=pool,
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "edited"}}
    paused.invoke({"image": page, "question": "q"}, config, interrupt_before=["execute"])
    assert paused.get_state(config).next == ("execute",)
    pending = paused.get_state(config).values["pending"]
    paused.update_state(config, {"pending": pending})  # as the model node, by default
    assert paused.get_state(config).next == ("execute",)
    out = paused.invoke(None, config)
    assert out["answer"] == "done" and [s["ok"] for s in out["steps"]] == [True]


def test_the_view_of_a_result_is_made_by_the_waiting_caller_or_off_the_kernel_loop(
    pool, page, monkeypatch
) -> None:
    """``invoke``: in the thread that runs the node (it waits anyway); ``ainvoke``: in a
    worker thread, never on the kernel I/O loop every episode shares."""
    import asyncio
    import threading

    import langchain_codevision.loop.executor as executor
    from langchain_codevision.kernel._loop import on_loop_thread

    seen: list[tuple[str, bool]] = []
    original = executor.encode_step_image

    def spy(*args, **kwargs):
        seen.append((threading.current_thread().name, on_loop_thread()))
        return original(*args, **kwargs)

    monkeypatch.setattr(executor, "encode_step_image", spy)
    replies = [text_call(ROTATE), ANSWER]
    _model, graph = run(pool, page, replies)
    caller: list[str] = []

    def invoke() -> None:
        caller.append(threading.current_thread().name)
        assert graph.invoke({"image": page, "question": "q"})["steps"][0]["ok"]

    worker = threading.Thread(target=invoke, name="episode-caller")
    worker.start()
    worker.join()
    assert seen == [("episode-caller", False)] and caller == ["episode-caller"]
    seen.clear()
    _model, graph = run(pool, page, replies)
    out = asyncio.run(graph.ainvoke({"image": page, "question": "q"}))
    assert out["steps"][0]["ok"]
    assert len(seen) == 1 and seen[0][1] is False and seen[0][0] != threading.main_thread().name
