"""KernelSession against a real sandboxed ipykernel."""

from __future__ import annotations

import asyncio
import hashlib
import time

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.kernel import KernelLimits, KernelSession


def test_state_persists_and_outputs_are_structured(kernel: KernelSession) -> None:
    first = kernel.execute("counter = 41\nprint('hello')")
    second = kernel.execute("import sys\ncounter += 1\nprint('oops', file=sys.stderr)\ncounter")
    assert first.ok and first.stdout == "hello\n"
    assert second.stderr == "oops\n"
    assert second.text == "42"
    assert second.duration_s > 0
    assert second.execution_count == first.execution_count + 1


def test_preamble_names_match_the_reference_protocol(kernel: KernelSession) -> None:
    names = "Image, ImageEnhance, ImageFilter, ImageOps, ImageDraw, ImageFont, np, cv2, math"
    out = kernel.execute(f"print([type(x).__name__ for x in ({names})])")
    assert out.ok, out.error
    assert out.stdout.count("module") == 9


def test_image_round_trip_keeps_full_resolution(kernel: KernelSession, document_image) -> None:
    kernel.put_image(0, document_image)
    out = kernel.execute(
        "result = image.rotate(90, expand=True)", image=0, collect=("result", "output", "image")
    )
    assert out.ok, out.error
    [produced] = out.result_images
    assert produced.name == "result"
    expected = document_image.rotate(90, expand=True)
    assert produced.size == expected.size
    assert np.array_equal(np.asarray(produced.image), np.asarray(expected))


def test_binding_gives_a_fresh_copy_and_a_draw_handle(kernel: KernelSession) -> None:
    kernel.put_image("page", Image.new("RGB", (20, 10), "white"))
    out = kernel.execute(
        "draw.rectangle((0, 0, 4, 4), fill='red')", image="page", collect=("result", "image")
    )
    assert out.ok, out.error
    [drawn] = out.result_images
    assert drawn.name == "image" and drawn.image.getpixel((1, 1)) == (255, 0, 0)
    again = kernel.execute("print(image.getpixel((1, 1)))", image="page")
    assert again.stdout.strip() == "(255, 255, 255)"


IN_PLACE_WRITES = [
    "draw.rectangle((0, 0, 4, 4), fill='red')",
    "ImageDraw.Draw(image).point((1, 1), fill='red')",
    "image.paste((255, 0, 0), (0, 0, 5, 5))",
    "image.putpixel((1, 1), (255, 0, 0))",
    "image.putdata([(255, 0, 0)] * (20 * 10))",
    "img.load()[1, 1] = (255, 0, 0)",
    "pixels = image.load()\npixels[1, 1] = (255, 0, 0)",
    "image.frombytes(bytes([255, 0, 0]) * (20 * 10))",
    "exec('image.load()[1, 1] = (255, 0, 0)')",
    "image.im.putpixel((1, 1), (255, 0, 0))",
    "image.readonly = 0\nImageDraw.Draw(image).point((1, 1), fill='red')",
    "setattr(image, 'readonly', 0)\nimage.paste((255, 0, 0), (0, 0, 5, 5))",
]


@pytest.mark.parametrize("code", IN_PLACE_WRITES)
def test_a_cell_changes_its_binding_never_the_registered_image(
    kernel: KernelSession, code: str
) -> None:
    kernel.put_image("page", Image.new("RGB", (20, 10), "white"))
    out = kernel.execute(code, image="page", collect=("image",))
    assert out.ok, out.error
    [changed] = out.result_images
    assert changed.image.getpixel((1, 1)) == (255, 0, 0)
    again = kernel.execute("print(image.getpixel((1, 1)))", image="page")
    assert again.stdout.strip() == "(255, 255, 255)", again


def test_a_reading_cell_binds_the_registered_pixels_without_a_copy(
    kernel: KernelSession,
) -> None:
    """A cell that only reads gets the registered image's own pixels, read-only."""
    kernel.put_image("page", Image.new("RGB", (20, 10), "white"))
    out = kernel.execute(
        "result = image.rotate(90, expand=True)", image="page", collect=("result",)
    )
    assert out.result_images[0].size == (10, 20)
    # checked in a cell of its own: naming ``readonly`` or ``.im`` would make the bind copy
    same = kernel.execute("print(image.readonly, image.im is __cv_runtime__.get('page').im)")
    assert same.stdout.split() == ["1", "True"], same
    shown = kernel.execute(
        "import pickle\nprint(type(image), isinstance(image, Image.Image))\n"
        "print(type(pickle.loads(pickle.dumps(image))).__qualname__, image.copy().readonly)"
    )
    assert shown.stdout.split() == ["<class", "'PIL.Image.Image'>", "True", "Image", "0"], shown
    compared = kernel.execute(
        "print(image == image.copy(), image.copy() == image, image == img, "
        "image == image.rotate(90))"
    )
    assert compared.stdout.split() == ["True", "True", "True", "False"], compared
    written = kernel.execute("print(image.readonly)\npixels = image.load()", image="page")
    assert written.stdout.strip() == "0", written  # a cell that names load() gets a copy


def test_a_helper_that_writes_pixels_directly_is_refused_not_obeyed(
    kernel: KernelSession,
) -> None:
    """Pixel access of a shared binding refuses writes: the registered image stays intact."""
    kernel.put_image("page", Image.new("L", (6, 6), 9))
    kernel.execute("def mark(picture):\n    picture.load()[0, 0] = 200")
    out = kernel.execute("mark(image)", image="page")
    assert out.error is not None and "readonly" in out.error.value
    again = kernel.execute("print(image.getpixel((0, 0)))", image="page")
    assert again.stdout.strip() == "9"


@pytest.mark.parametrize(
    "make",
    [
        "Image.new('L', (13, 7), 3)",
        "Image.new('LA', (5, 11), (9, 200))",
        "Image.new('RGBA', (17, 3), (1, 2, 3, 4))",
        "Image.new('1', (9, 9), 1)",
        "Image.new('P', (8, 8), 5)",
        "Image.new('I;16', (4, 4), 1000)",
        "Image.new('CMYK', (4, 4), (0, 0, 0, 0))",
        "Image.effect_noise((1203, 911), 40).convert('RGB')",
        "Image.effect_noise((2100, 2100), 40).convert('RGB')",  # PIL keeps it in 2 blocks
    ],
)
def test_pil_results_of_every_mode_arrive_as_the_kernel_packed_them(
    kernel: KernelSession, make: str
) -> None:
    out = kernel.execute(
        f"result = {make}\n"
        "from codevision_kernel_runtime import standard_mode\n"
        "import hashlib\n"
        "print(hashlib.sha256(standard_mode(result).tobytes()).hexdigest())",
        collect=("result",),
    )
    assert out.ok, out.error
    [produced] = out.result_images
    digest = hashlib.sha256(produced.image.tobytes()).hexdigest()
    assert digest == out.stdout.strip()


def test_stale_results_never_leak_into_the_next_call(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("L", (8, 8), 7))
    kernel.execute("result = image.point(lambda v: 200)", image=0, collect=("result",))
    out = kernel.execute("x = 1", image=0, collect=("result", "output"))
    assert out.result_images == []


def test_display_and_figures_come_back_as_images(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (30, 20), "blue"))
    out = kernel.execute(
        "display(img.resize((15, 10)))\n"
        "import matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(2, 1)); plt.plot([0, 1], [1, 0]); plt.show()",
        image=0,
    )
    assert out.ok, out.error
    sources = [image.source for image in out.images]
    assert sources == ["display", "figure"]
    assert out.images[0].size == (15, 10)
    assert out.images[1].png.startswith(b"\x89PNG")


def test_last_expression_image_is_returned(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (30, 20), "blue"))
    out = kernel.execute("img.crop((0, 0, 10, 10))", image=0)
    assert [i.size for i in out.images] == [(10, 10)]


def test_ndarray_results_are_converted_and_reported(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (16, 12), "white"))
    out = kernel.execute("result = np.asarray(image)[:, :, 0]", image=0, collect=("result",))
    [produced] = out.result_images
    assert produced.converted_from == "ndarray" and produced.image.mode == "L"
    floats = kernel.execute("result = np.full((4, 4), 0.5)", image=0, collect=("result",))
    assert floats.result_images[0].image.getpixel((0, 0)) == 128  # [0, 1] floats scaled
    odd = kernel.execute("result = np.zeros((4, 4, 7), float)", image=0, collect=("result",))
    assert odd.result_images == []
    assert odd.variables == [
        {
            "name": "result",
            "type": "ndarray",
            "kind": "ndarray",
            "shape": [4, 4, 7],
            "dtype": "float64",
        }
    ]


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        ("rng.integers(0, 256, (9, 13), dtype=np.uint8)", "L"),
        ("rng.integers(0, 256, (9, 13, 1), dtype=np.uint8)", "L"),
        ("rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)", "RGB"),
        ("rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)", "RGBA"),
        ("rng.integers(0, 256, (13, 9, 3), dtype=np.uint8).transpose(1, 0, 2)", "RGB"),
        ("rng.integers(0, 256, (18, 26, 3), dtype=np.uint8)[::2, ::-2]", "RGB"),
    ],
)
def test_array_results_arrive_exactly_and_stay_registered(
    kernel: KernelSession, make: str, mode: str
) -> None:
    """An 8-bit array result is sent as its own bytes (views and strides included)."""
    out = kernel.execute(
        f"rng = np.random.default_rng(7)\nresult = {make}\nsent = result.copy()",
        collect=("result",),
        register_as="arr",
    )
    [produced] = out.result_images
    assert produced.mode == mode and produced.size == (13, 9)
    expected = eval(make, {"rng": np.random.default_rng(7), "np": np})  # the test's own
    if expected.ndim == 3 and expected.shape[2] == 1:
        expected = expected[..., 0]
    assert np.array_equal(np.asarray(produced.image), expected)
    again = kernel.execute(
        "print(image.mode, image.size, np.array_equal(np.asarray(image), np.squeeze(sent)))",
        image="arr",
    )
    assert again.stdout.split() == [mode, "(13,", "9)", "True"], again


def test_a_registered_result_gets_its_own_pixels_before_the_next_request(
    kernel: KernelSession,
) -> None:
    """The kernel's copy of a registered result is made after the reply (not on the
    step's time) and is done when the next request comes, before any of its code runs."""
    kernel.put_image(0, Image.new("RGB", (40, 20), "white"))
    watch = (
        "seen = []\n"
        "get_ipython().events.callbacks['pre_run_cell'].insert(\n"
        "    0, lambda *_: seen.append((len(__cv_runtime__._owed),"
        " __cv_runtime__.images.get('1') is globals().get('result'))))"
    )
    assert kernel.execute(watch).ok
    first = kernel.execute(
        "result = image.rotate(90, expand=True)", image=0, collect=("result",), register_as=1
    )
    assert first.ok and first.result_images[0].size == (20, 40), first.error
    out = kernel.execute("print(seen[-1])")
    assert out.stdout.strip() == "(0, False)", out  # settled, and a copy of its own


def test_a_result_that_cannot_be_kept_is_a_clear_error_not_a_shared_image(
    kernel: KernelSession,
) -> None:
    kernel.put_image(0, Image.new("RGB", (8, 8), "white"))
    first = kernel.execute(
        "result = image.rotate(90)\n"
        "def no_room():\n    raise MemoryError('no room for a copy')\n"
        "result.copy = no_room",
        image=0,
        collect=("result",),
        register_as="r",
    )
    assert first.ok and len(first.result_images) == 1, first.error  # the host has its pixels
    out = kernel.execute("x = image", image="r")
    assert out.error is not None and out.error.name == "IndexError"
    assert "image 'r' could not be kept: MemoryError: no room for a copy" in out.error.value
    again = kernel.execute("result = image.copy()", image=0, collect=("result",), register_as="r")
    assert again.ok and kernel.execute("print(image.size)", image="r").stdout.strip() == "(8, 8)"


def test_register_as_makes_an_output_addressable(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (40, 20), "white"))
    kernel.execute(
        "result = image.rotate(90, expand=True)", image=0, collect=("result",), register_as=1
    )
    out = kernel.execute("print(image.size)", image=1)
    assert out.stdout.strip() == "(20, 40)"


@pytest.mark.parametrize(
    "change",
    [
        "result.paste((255, 0, 0), (0, 0, 5, 5))",
        "result.load()[1, 1] = (255, 0, 0)",
        "pixels[1, 1] = (255, 0, 0)",  # the array an array result came from
    ],
)
def test_a_registered_result_keeps_its_pixels_when_the_cell_object_changes(
    kernel: KernelSession, change: str
) -> None:
    kernel.put_image(0, Image.new("RGB", (20, 10), "white"))
    make = (
        "pixels = np.asarray(image).copy()\nresult = pixels"
        if change.startswith("pixels")
        else "result = image.copy()"
    )
    first = kernel.execute(make, image=0, collect=("result",), register_as=1)
    assert first.ok, first.error
    assert kernel.execute(change).ok
    again = kernel.execute("print(image.getpixel((1, 1)))", image=1)
    assert again.stdout.strip() == "(255, 255, 255)", again


@pytest.mark.parametrize(
    "helper",
    [
        "def change(picture):\n    picture.putpalette([0, 0, 0, 255, 0, 0] * 128)",
        "def change(picture):\n    picture.frombytes(bytes([200]) * (4 * 4))",
    ],
)
def test_a_helper_cannot_change_the_registered_image_through_pil_writers_without_a_copy(
    kernel: KernelSession, helper: str
) -> None:
    """``putpalette`` (an ``L`` core turns ``P``) and ``frombytes`` write the core in place."""
    kernel.put_image("page", Image.new("L", (4, 4), 7))
    assert kernel.execute(helper).ok  # defined in a cell of its own: nothing here names it
    changed = kernel.execute("change(image)\nprint(image.mode)", image="page")
    assert changed.ok, changed.error
    registered = kernel.execute("print(__cv_runtime__.get('page').im.mode)")
    assert registered.stdout.strip() == "L", registered
    again = kernel.execute("print(image.mode, image.getpixel((0, 0)))", image="page")
    assert again.stdout.split() == ["L", "7"], again


def test_a_palette_image_is_bound_as_a_copy(kernel: KernelSession) -> None:
    """A ``P`` image's conversions write its palette's alpha into the core: always a copy."""
    kernel.execute(
        "result = Image.new('P', (4, 4), 1)\nresult.putpalette([0, 0, 0, 255, 255, 255])",
        collect=("result",),
        register_as="p",
    )
    assert kernel.execute("size = image.size", image="p").ok
    # checked in a cell of its own: naming ``.im`` or ``readonly`` would make the bind copy
    out = kernel.execute("print(image.im is __cv_runtime__.get('p').im, image.readonly)")
    assert out.stdout.split() == ["False", "0"], out


def test_missing_image_index_is_a_clear_error(kernel: KernelSession) -> None:
    kernel.reset()
    kernel.put_image(0, Image.new("RGB", (4, 4)))
    out = kernel.execute("result = image", image=7, collect=("result",))
    assert out.error is not None and out.error.name == "IndexError"
    assert "image_index '7' does not exist; available image indices: 0" in out.error.value


def test_user_line_numbers_are_not_shifted(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (4, 4)))
    out = kernel.execute("a = 1\nb = 2\nraise ValueError('boom')", image=0)
    assert out.error.name == "ValueError"
    assert "line 3" in out.error.traceback
    assert "\x1b[" not in out.error.traceback


def test_future_import_still_works_with_binding(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (4, 4)))
    out = kernel.execute(
        '"""doc"""\nfrom __future__ import annotations\nprint(image.size)', image=0
    )
    assert out.ok, out.error
    assert out.stdout.strip() == "(4, 4)"


def test_staged_images_arrive_with_the_next_request_of_any_kind(kernel: KernelSession) -> None:
    first, second = Image.new("RGB", (7, 5), "red"), Image.new("L", (3, 9), 128)
    kernel.put_image("s1", first)
    assert kernel._unsent  # written to the kernel's folder, not yet loaded
    broken = kernel.execute("def broken(:")  # a cell that never parses still loads them
    assert broken.error is not None and broken.error.name == "SyntaxError"
    out = kernel.execute("result = image", image="s1", collect=("result",))
    assert out.ok and out.result_images[0].size == (7, 5)
    kernel.put_image("s2", second)
    kernel.drop_image("s1")  # a helper request sends what is staged first
    listed = kernel.execute("print(sorted(__cv_runtime__.images))").stdout
    assert "'s2'" in listed and "'s1'" not in listed
    kernel.put_image("s3", first)
    kernel.put_image("s3", second)  # staged twice: the last one counts
    out = kernel.execute("result = image", image="s3", collect=("result",))
    assert out.result_images[0].size == (3, 9)
    kernel.put_image("s4", first)
    kernel.drop_image("s4")
    left = kernel.execute(
        "import pathlib\nprint(len([p for p in pathlib.Path(__cv_runtime__.dir).parent.rglob"
        "('in-*.npy')]))"
    )
    assert left.stdout == "0\n"  # every staged file was loaded and removed


def test_a_staged_image_that_cannot_be_loaded_is_a_clear_error(kernel: KernelSession) -> None:
    kernel.put_image("gone", Image.new("RGB", (4, 4)))
    kernel._unsent[-1][1] += ".missing"  # as if the file were removed before the load
    out = kernel.execute("result = image", image="gone", collect=("result",))
    assert out.error is not None and "could not be loaded" in out.error.value
    kernel.put_image("gone", Image.new("RGB", (6, 6)))  # a second try works
    again = kernel.execute("result = image", image="gone", collect=("result",))
    assert again.ok and again.result_images[0].size == (6, 6)


def test_reset_clears_variables_and_images(kernel: KernelSession) -> None:
    kernel.put_image(0, Image.new("RGB", (4, 4)))
    kernel.execute("secret_value = 123")
    kernel.reset()
    out = kernel.execute("print('secret_value' in globals(), 'np' in globals())")
    assert out.stdout.strip() == "False True"
    missing = kernel.execute("x = 1", image=0)
    assert missing.error is not None and missing.error.name == "IndexError"


def test_reset_zeroes_the_result_buffer_in_place_and_lets_a_grown_one_go(
    kernel: KernelSession,
) -> None:
    """A reset kernel keeps its pixel buffer's pages (the next episode's first result does
    not fault them in again) but none of its pixels; a buffer that grew goes altogether."""
    inode = "import os; print(os.stat(__cv_runtime__.out.path).st_ino)"

    def buffer_bytes(count: int) -> np.ndarray:
        buffer = np.empty(count, dtype=np.uint8)
        assert kernel.host.files.read_into("px/out.pixels", 0, buffer) == count
        return buffer

    kernel.reset()
    kernel.put_image(0, Image.new("RGB", (300, 200), (200, 100, 50)))
    out = kernel.execute("result = image.rotate(90, expand=True)", image=0, collect=("result",))
    assert out.ok and np.asarray(out.result_images[0].image).max() == 200
    first = kernel.execute(inode).stdout
    assert buffer_bytes(180_000).max() == 200
    kernel.reset()
    assert kernel.execute(inode).stdout == first  # the same file, and so its pages
    assert buffer_bytes(180_000).max() == 0  # but not one pixel of the last episode
    kernel.put_image(0, Image.new("L", (50, 40), 77))
    again = kernel.execute("result = image", image=0, collect=("result",))
    assert again.ok and np.asarray(again.result_images[0].image).min() == 77

    swap = (  # model code puts a file of its own where the buffer was
        "import os\np = __cv_runtime__.out.path\nos.unlink(p)\n"
        "open(p, 'w').write('left for the next episode')"
    )
    assert kernel.execute(swap).ok
    kernel.reset()
    left = kernel.execute("import os\nprint(os.path.exists(__cv_runtime__.out.path))")
    assert left.stdout.strip() == "False"  # not kept: it is not the buffer's own file
    kernel.put_image(0, Image.new("L", (30, 20), 66))
    after_swap = kernel.execute("result = image", image=0, collect=("result",))
    assert after_swap.ok and np.asarray(after_swap.result_images[0].image).max() == 66

    kernel.put_image(1, Image.new("RGB", (2000, 2000), (1, 2, 3)))  # 12 MB: the buffer grows
    grown = kernel.execute("result = image.copy()", image=1, collect=("result",))
    assert grown.ok and grown.result_images[0].size == (2000, 2000)
    kernel.reset()
    gone = kernel.execute("import os; print(os.path.exists(__cv_runtime__.out.path))")
    assert gone.stdout.strip() == "False"
    kernel.put_image(0, Image.new("RGB", (8, 8), (9, 9, 9)))
    fresh = kernel.execute("result = image", image=0, collect=("result",))
    assert fresh.ok and np.asarray(fresh.result_images[0].image).max() == 9
    kernel.reset()


@pytest.mark.parametrize(
    ("code", "message"),
    [("", "the code is empty"), ("   \n ", "the code is empty"), ("x" * 101, "101 characters")],
)
def test_code_is_validated(code: str, message: str) -> None:
    session = KernelSession(limits=KernelLimits(max_code_chars=100))
    out = session.execute(code)  # rejected before a kernel is even started
    assert out.error.name == "CodeRejected" and message in out.error.value
    assert not session.started
    with pytest.raises(TypeError, match="code must be a str"):
        session.execute(b"print(1)")  # type: ignore[arg-type]
    session.close()


def test_put_image_rejects_non_images(kernel: KernelSession) -> None:
    with pytest.raises(TypeError, match="PIL image or numpy array"):
        kernel.put_image(0, "not an image")  # type: ignore[arg-type]


async def test_async_api_shares_the_same_kernel(kernel: KernelSession) -> None:
    await kernel.aexecute("shared = 'async'")
    out = await kernel.aexecute("shared")
    assert out.text == "'async'"
    results = await asyncio.gather(*(kernel.aexecute(f"print({i})") for i in range(5)))
    assert sorted(r.stdout.strip() for r in results) == [str(i) for i in range(5)]


async def test_cancelling_an_execution_interrupts_the_kernel(kernel: KernelSession) -> None:
    task = asyncio.ensure_future(kernel.aexecute("import time\ntime.sleep(30)"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    out = await kernel.aexecute("print('still here')", timeout=10)
    assert out.stdout == "still here\n"


def test_close_is_idempotent_and_removes_the_workdir() -> None:
    session = KernelSession().start()
    root, pid = session.root, session.pid
    assert root is not None and root.exists() and pid
    session.close()
    session.close()
    assert not root.exists()
    with pytest.raises(RuntimeError, match="closed"):
        session.execute("1")


def test_large_and_several_images_share_the_pixel_buffer(kernel: KernelSession) -> None:
    rng = np.random.default_rng(1)
    big = Image.fromarray(rng.integers(0, 255, (2000, 3000, 3), dtype=np.uint8))  # 18 MB
    kernel.put_image("big", big)
    out = kernel.execute(
        "display(image.crop((0, 0, 10, 10)))\n"
        "result = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)",
        image="big",
        collect=("result",),
    )
    assert out.ok, out.error
    [flipped] = out.result_images
    expected = np.asarray(big)[:, ::-1]
    assert np.array_equal(np.asarray(flipped.image), expected)
    assert np.array_equal(np.asarray(out.images[1].image), np.asarray(big)[:10, :10])
    again = kernel.execute("result = image.crop((0, 0, 5, 5))", image="big", collect=("result",))
    assert np.array_equal(np.asarray(again.result_images[0].image), np.asarray(big)[:5, :5])


def test_small_results_are_read_on_the_loop_and_large_or_unknown_ones_in_a_thread(
    kernel: KernelSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_codevision.kernel import _cell
    from langchain_codevision.kernel._outputs import OutputCollector
    from langchain_codevision.kernel.result import ExecutionResult

    hops: list[object] = []
    real = _cell.asyncio.to_thread

    async def counted(function, *args):  # type: ignore[no-untyped-def]
        if getattr(function, "__name__", "") == "load_pending":  # not the page's own write
            hops.append(function)
        return await real(function, *args)

    monkeypatch.setattr(_cell.asyncio, "to_thread", counted)
    kernel.put_image("page", Image.new("RGB", (1000, 1000), "white"))
    small = kernel.execute("result = image.rotate(90)", image="page", collect=("result",))
    assert small.ok and small.result_images[0].size == (1000, 1000) and hops == []
    big = kernel.execute(
        "result = image.resize((2000, 1500))", image="page", collect=("result",)
    )  # 9 MB: past INLINE_READ_BYTES
    assert big.ok and big.result_images[0].size == (2000, 1500) and len(hops) == 1

    collector = OutputCollector(ExecutionResult(), kernel.limits, lambda where: None)
    collector.pending = [(None, {"length": 10}), (None, {"length": 20})]  # type: ignore[list-item]
    assert collector.pending_bytes() == 30
    for forged in ({"length": "lots"}, {"length": -1}, "not a description"):
        collector.pending = [(None, forged)]  # type: ignore[list-item]
        assert collector.pending_bytes() > _cell.INLINE_READ_BYTES


def test_host_session_checks_every_signature_and_skips_date_parsing() -> None:
    from jupyter_client.session import Session

    from langchain_codevision.kernel._client import HostSession

    key = b"0123456789abcdef"
    sender, host = Session(key=key), HostSession(key=key)
    message = sender.msg("status", {"execution_state": "idle"})
    _, wire = sender.feed_identities(sender.serialize(message))
    got = host.deserialize(wire)
    stock = Session(key=key).deserialize(list(wire))
    assert got["content"] == stock["content"] == {"execution_state": "idle"}
    assert got["msg_id"] == stock["msg_id"] and got["msg_type"] == "status"
    assert isinstance(got["header"]["date"], str)  # left as sent: nothing reads it
    with pytest.raises(ValueError, match="Duplicate Signature"):
        host.deserialize(wire)  # a replayed message
    forged = sender.serialize(sender.msg("status", {"execution_state": "busy"}))
    _, forged = sender.feed_identities(forged)
    forged[4] = b'{"execution_state": "idle"}'  # content changed after signing
    with pytest.raises(ValueError, match="Invalid Signature"):
        host.deserialize(forged)
    with pytest.raises(ValueError, match="Unsigned"):
        host.deserialize([b"", *forged[1:]])
    with pytest.raises(TypeError, match="malformed"):
        host.deserialize(forged[:3])


def test_direct_channels_take_queued_messages_and_stop_cleanly() -> None:
    import queue

    from langchain_codevision.kernel._client import Channel
    from langchain_codevision.kernel._loop import run_sync

    with KernelSession() as kernel:
        kernel.execute("x = 1")
        client = kernel._kc
        assert isinstance(client.iopub_channel, Channel)
        assert isinstance(client.shell_channel, Channel)
        msg_id = client.kernel_info()
        reply = run_sync(client.get_shell_msg(timeout=10))
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["msg_type"] == "kernel_info_reply"
        seen = []
        while True:  # busy, then idle, both already queued or arriving
            msg = run_sync(client.get_iopub_msg(timeout=10))
            if msg["parent_header"].get("msg_id") == msg_id:
                seen.append(msg["content"].get("execution_state"))
            if seen[-1:] == ["idle"]:
                break
        assert "busy" in seen
        with pytest.raises(queue.Empty):
            run_sync(client.get_iopub_msg(timeout=0.05))  # nothing left: waits, then Empty
        channel = client.iopub_channel
        assert kernel.execute("x + 1").text == "2"
    assert channel._direct is None  # closed with the session: the view is gone with it


def test_a_reply_met_while_probing_is_kept_for_its_waiter() -> None:
    """The preamble is queued behind the first ``kernel_info``; a second probe may meet its
    reply first, which must not be lost."""
    from langchain_codevision.kernel._loop import run_sync

    with KernelSession() as kernel:
        kernel.execute("x = 1")
        client = kernel._kc
        queued = client.execute("y = 41 + 1", silent=True, store_history=False)
        probe = client.kernel_info()  # answered after the execute above

        async def probe_then_wait() -> None:
            deadline = time.monotonic() + 10
            kept = {queued: None}
            assert await kernel._reply_seen(client.get_shell_msg, probe, deadline, 10, kept)
            assert kept[queued] is not None  # met on the way, kept
            assert kept[queued]["status"] == "ok"
            await asyncio.wait_for(kernel._preamble_done(queued, kept[queued]), 1)  # no wait

        run_sync(probe_then_wait())
        assert kernel.execute("y").text == "42"


def test_a_failing_preamble_is_a_start_error_that_names_it() -> None:
    from langchain_codevision.kernel import KernelStartError

    session = KernelSession(preamble="raise RuntimeError('no such setup')")
    with pytest.raises(KernelStartError, match="preamble failed: RuntimeError: no such setup"):
        session.start()
    session.close()


def test_pixels_are_copied_from_pil_memory_where_pil_hands_it_out(tmp_path) -> None:
    """The kernel's pixel writer reads PIL's own memory (one copy, padding dropped) for
    single-block L/RGB/RGBA images and packs everything else: the bytes are the same."""
    import importlib.util

    from langchain_codevision.kernel.jail import KERNEL_LIB

    spec = importlib.util.spec_from_file_location("runtime_under_test", KERNEL_LIB / "_runtime.py")
    runtime = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runtime)
    rng = np.random.default_rng(3)
    cases = {
        "L": Image.fromarray(rng.integers(0, 256, (17, 9), dtype=np.uint8)),
        "RGB": Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)),
        "RGBA": Image.fromarray(rng.integers(0, 256, (20, 31, 4), dtype=np.uint8)),
        "LA": Image.new("LA", (7, 5), (9, 200)),
        "RGB in blocks": Image.new("RGB", (2100, 2100), (1, 2, 3)),  # over PIL's 16 MiB block
        "cropped": Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).crop(
            (3, 5, 30, 33)
        ),
    }
    buffer = runtime.PixelBuffer(tmp_path / "out.pixels")
    for name, image in cases.items():
        found = runtime.core_pixels(image)
        assert (found is not None) == (name in ("L", "RGB", "RGBA", "cropped")), name
        if found is not None:
            pixels, _capsule = found
            assert not pixels.flags.writeable
            assert np.array_equal(pixels[..., :3] if image.mode == "RGB" else pixels, image)
        buffer.rewind()
        offset, length = buffer.write_image(image)
        assert bytes(buffer._map[offset : offset + length]) == image.tobytes(), name


def test_kernels_run_opencv_on_one_thread_and_sending_a_result_starts_none() -> None:
    """No thread pool per kernel: OpenCV runs on the cell's thread (many kernels share the
    cores), and the kernel's own pixel copy starts no thread either."""
    with KernelSession(limits=KernelLimits(timeout=20)) as session:
        session.put_image(0, Image.new("RGB", (1000, 1000), "white"))
        count = "import os\nprint(len(os.listdir('/proc/self/task')))"
        before = int(session.execute(count).stdout)
        out = session.execute(
            "result = image.rotate(90)", image=0, collect=("result",), register_as=1
        )
        assert out.ok and out.result_images[0].size == (1000, 1000), out.error
        assert int(session.execute(count).stdout) == before
        opencv = session.execute(
            "cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)\n"
            "print(cv2.getNumThreads())\n" + count,
            image=1,
        )
        assert opencv.stdout.split() == ["1", str(before)], opencv
        started = session.execute(  # the count does see a new thread
            "import threading\nt = threading.Thread(target=threading.Event().wait, args=(5,),"
            " daemon=True)\nt.start()\n" + count
        )
        assert int(started.stdout) == before + 1, started
