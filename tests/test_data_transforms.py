"""Invertible transforms: PIL semantics, exact round trips, coordinate maps, degradations."""

from __future__ import annotations

import io
import random

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from langchain_codevision.data.transforms import (
    DEGRADATIONS,
    ORIENTATIONS,
    REGISTRY,
    ROTATIONS,
    TRANSFORM_NAMES,
    Blur,
    Compose,
    Crop,
    Identity,
    Jpeg,
    LowContrast,
    Noise,
    Resize,
    ScaleDown,
    Transform,
    Uncrop,
    compose,
    expected_fixes,
    fix_for,
    get_transform,
    inverse_name,
    parse_transform,
    transform_for_row,
    transform_from_dict,
    transform_names,
)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).crop((0, 0, 512, 340))  # not square


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def _page() -> Image.Image:
    image = Image.new("RGB", (620, 410), "white")
    draw = ImageDraw.Draw(image)
    for row in range(16):
        draw.text((20, 10 + row * 24), f"Line {row:02d}: reading order matters", fill="black")
    return image


def _modes(image: Image.Image) -> list[Image.Image]:
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    gray16 = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    return [
        image.convert("RGB"),
        image.convert("L"),
        rgba,
        image.convert("P", palette=Image.Palette.ADAPTIVE),
        image.convert("1"),
        image.convert("F"),
        image.convert("I"),
        gray16,
        image.convert("CMYK"),
    ]


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()


# -- orientation semantics ------------------------------------------------------------------
@pytest.mark.parametrize("name", ROTATIONS)
def test_rotations_match_pil_rotate_expand(name: str, astronaut: Image.Image) -> None:
    angle = int(name.split("_")[1])
    for image in [*_modes(astronaut), _page()]:
        assert _same(get_transform(name).apply(image), image.rotate(angle, expand=True))


def test_rotate_90_is_counter_clockwise() -> None:
    image = Image.new("L", (4, 2), 0)
    image.putpixel((3, 0), 255)  # top-right corner
    turned = get_transform("rotate_90").apply(image)
    assert turned.size == (2, 4)
    assert turned.getpixel((0, 0)) == 255  # top-right goes to top-left when turning CCW


def test_flips_match_pil(astronaut: Image.Image) -> None:
    assert _same(get_transform("flip_horizontal").apply(astronaut), astronaut.transpose(0))
    assert _same(get_transform("flip_vertical").apply(astronaut), astronaut.transpose(1))


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_numpy_matches_pil(name: str, astronaut: Image.Image) -> None:
    t = get_transform(name)
    for image in (astronaut, astronaut.convert("L")):
        out = t.apply(np.asarray(image))
        assert out.flags.c_contiguous
        assert np.array_equal(out, np.asarray(t.apply(image)))


# -- exact round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ORIENTATIONS)
def test_round_trip_pixel_for_pixel_all_modes(name: str, astronaut: Image.Image) -> None:
    for image in [*_modes(astronaut), _page()]:
        t = get_transform(name).bind(image.size)
        assert _same(t.inverse().apply(t.apply(image)), image), image.mode


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_fix_for_undoes_the_transform(name: str, coffee: Image.Image) -> None:
    fixed = get_transform(fix_for(name)).apply(get_transform(name).apply(coffee))
    assert _same(fixed, coffee)


def test_fix_names_follow_the_reference_rule() -> None:
    for angle in (90, 180, 270):
        assert inverse_name(f"rotate_{angle}") == f"rotate_{(360 - angle) % 360}"
        assert fix_for(f"rotate_{angle}") == f"rotate_{(360 - angle) % 360}"
    assert fix_for("flip_horizontal") == "flip_horizontal"
    assert fix_for("flip_vertical") == "flip_vertical"
    assert inverse_name("rotate_90+flip_vertical") == "flip_vertical+rotate_270"
    assert fix_for("identity") is None and fix_for("none") is None
    assert fix_for("crop") is None
    assert all(fix_for(name) is None for name in DEGRADATIONS)
    with pytest.raises(ValueError, match="no exact inverse"):
        inverse_name("blur")


def test_numpy_round_trips_for_many_dtypes_and_shapes() -> None:
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (37, 53), dtype=np.uint8),
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        rng.integers(0, 256, (37, 53, 4), dtype=np.uint8),
        rng.integers(0, 65536, (37, 53), dtype=np.uint16),
        rng.random((37, 53, 2)).astype(np.float32),
        rng.random((37, 53, 7)),
    ]
    chains = [compose(*random.Random(k).choices(ORIENTATIONS, k=3)) for k in range(6)]
    for array in arrays:
        for t in [*map(get_transform, ORIENTATIONS), *chains]:
            bound = t.bind((array.shape[1], array.shape[0]))
            back = bound.inverse().apply(bound.apply(array))
            assert back.dtype == array.dtype and np.array_equal(back, array)


def test_random_chains_round_trip_on_real_images(astronaut: Image.Image) -> None:
    rng = random.Random(1234)
    for _ in range(25):
        names = rng.choices(ORIENTATIONS, k=rng.randint(1, 5))
        chain = parse_transform("+".join(names)).bind(astronaut.size)
        out = chain.apply(astronaut)
        assert out.size == chain.output_size()
        assert _same(chain.inverse().apply(out), astronaut)
        assert chain.inverse().name == inverse_name(chain.name)


# -- coordinates ----------------------------------------------------------------------------
def _random_box(rng: random.Random, size: tuple[int, int], integer: bool) -> tuple:
    w, h = size
    if integer:
        x0, x1 = sorted(rng.sample(range(w + 1), 2))
        y0, y1 = sorted(rng.sample(range(h + 1), 2))
        return (x0, y0, x1, y1)
    xs = sorted(rng.uniform(0, w) for _ in range(2))
    ys = sorted(rng.uniform(0, h) for _ in range(2))
    return (xs[0], ys[0], xs[1], ys[1])


def _geometric(rng: random.Random, size: tuple[int, int]) -> Transform:
    kind = rng.choice([*ORIENTATIONS, "crop", "scale_down", "resize"])
    w, h = size
    if kind == "crop":
        x0, y0 = rng.randint(0, w // 2), rng.randint(0, h // 2)
        return Crop(box=(x0, y0, rng.randint(x0 + 1, w), rng.randint(y0 + 1, h)))
    if kind == "scale_down":
        return ScaleDown(factor=rng.choice([0.5, 0.37, 0.8]))
    if kind == "resize":
        return Resize(rng.randint(20, 900), rng.randint(20, 900))
    return get_transform(kind)


@pytest.mark.parametrize("integer", [True, False])
def test_boxes_and_points_round_trip_through_random_chains(integer: bool) -> None:
    rng = random.Random(7)
    for _ in range(200):
        size = (rng.randint(20, 700), rng.randint(20, 700))
        steps, current = [], size
        for _ in range(rng.randint(1, 4)):
            step = _geometric(rng, current)
            steps.append(step)
            current = step.output_size(current)
        chain = Compose(steps=tuple(steps), size=size)
        box = _random_box(rng, size, integer)
        mapped = chain.map_box(box)
        back = chain.inverse().map_box(mapped)
        exact = integer and not any(isinstance(s, (ScaleDown, Resize)) for s in steps)
        if exact:
            assert back == tuple(float(v) for v in box)
        else:
            assert np.allclose(back, box, atol=1e-9)
        point = (box[0], box[3])
        assert np.allclose(chain.inverse().map_point(chain.map_point(point)), point, atol=1e-9)


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_pixel_centres_map_onto_their_pixels(name: str, astronaut: Image.Image) -> None:
    t = get_transform(name).bind(astronaut.size)
    before, after = np.asarray(astronaut), np.asarray(t.apply(astronaut))
    rng = random.Random(3)
    for _ in range(200):
        i, j = rng.randrange(astronaut.width), rng.randrange(astronaut.height)
        x, y = t.map_point((i + 0.5, j + 0.5))
        assert np.array_equal(after[int(y), int(x)], before[j, i])


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_box_content_follows_the_box(name: str) -> None:
    page = _page()
    box = (20, 34, 260, 58)  # the second text line
    t = get_transform(name).bind(page.size)
    mapped = tuple(int(v) for v in t.map_box(box))
    region = t.apply(page).crop(mapped)
    expected = get_transform(name).apply(page.crop(box))
    assert _same(region, expected)


def test_map_box_needs_a_size_for_geometric_transforms() -> None:
    with pytest.raises(ValueError, match=r"size=\(width, height\)"):
        get_transform("rotate_90").map_box((0, 0, 1, 1))
    assert get_transform("blur").map_box((1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)
    assert get_transform("blur").output_size((7, 5)) == (7, 5)
    with pytest.raises(ValueError, match="output_size needs the input image size"):
        get_transform("blur").output_size()
    assert get_transform("rotate_90").map_box((0, 0, 10, 5), size=(40, 30)) == (0, 30, 5, 40)


def test_bound_transform_rejects_other_sizes(astronaut: Image.Image) -> None:
    with pytest.raises(ValueError, match="bound to size"):
        get_transform("rotate_90").bind((10, 10)).apply(astronaut)
    with pytest.raises(ValueError, match="bound to size"):
        compose("rotate_90", "flip_vertical").bind((10, 10)).apply(astronaut)


# -- crop ---------------------------------------------------------------------------------------
def test_crop_inverse_pastes_into_the_original_frame(astronaut: Image.Image) -> None:
    box = (100, 50, 300, 200)
    crop = Crop(box=box).bind(astronaut.size)
    cut = crop.apply(astronaut)
    assert cut.size == (200, 150) and crop.output_size() == (200, 150)
    back = crop.inverse().apply(cut)
    assert isinstance(crop.inverse(), Uncrop) and back.size == astronaut.size
    assert _same(back.crop(box), astronaut.crop(box))
    outside = np.asarray(back).copy()
    outside[50:200, 100:300] = 0
    assert not outside.any()  # the partial inverse fills the rest with 0
    assert crop.map_point((100, 50)) == (0.0, 0.0)
    assert crop.inverse().map_box((0, 0, 200, 150)) == (100.0, 50.0, 300.0, 200.0)
    uncrop = crop.inverse()
    assert _same(uncrop.inverse().apply(uncrop.apply(cut)), cut)  # uncrop is exact


def test_crop_on_arrays_and_palette_images(astronaut: Image.Image) -> None:
    box = (10, 20, 110, 90)
    array = np.asarray(astronaut)
    crop = Crop(box=box).bind(astronaut.size)
    assert np.array_equal(crop.apply(array), array[20:90, 10:110])
    assert np.array_equal(
        crop.inverse().apply(crop.apply(array))[20:90, 10:110], array[20:90, 10:110]
    )
    palette = astronaut.convert("P", palette=Image.Palette.ADAPTIVE)
    back = crop.inverse().apply(crop.apply(palette))
    assert _same(back.crop(box).convert("RGB"), palette.crop(box).convert("RGB"))


def test_crop_errors(astronaut: Image.Image) -> None:
    with pytest.raises(ValueError, match="outside"):
        Crop(box=(0, 0, 600, 10)).apply(astronaut)
    with pytest.raises(ValueError, match="0 <= x0 < x1"):
        Crop(box=(50, 0, 10, 10))
    with pytest.raises(ValueError, match="whole pixel"):
        Crop(box=(0.5, 0, 10, 10))
    with pytest.raises(ValueError, match="original image size"):
        Crop(box=(0, 0, 10, 10)).inverse()
    with pytest.raises(ValueError, match="crop needs a box"):
        get_transform("crop")


# -- registry and serialisation ---------------------------------------------------------------
def test_unknown_names_list_the_valid_ones() -> None:
    for bad in ("rotate_45", "rotate_90+spin", "mirror"):
        with pytest.raises(ValueError) as info:
            parse_transform(bad)
        message = str(info.value)
        assert repr(bad.split("+")[-1]) in message
        assert all(name in message for name in TRANSFORM_NAMES)
    with pytest.raises(ValueError, match="valid names"):
        fix_for("rotate_45")


def _examples() -> list[Transform]:
    examples = []
    for name, cls in REGISTRY.items():
        if cls is Crop:
            examples.append(Crop(box=(1, 2, 30, 40)))
        elif cls is Uncrop:
            examples.append(Uncrop(box=(1, 2, 30, 40), canvas_size=(50, 60)))
        elif cls is Resize:
            examples.append(Resize(33, 44))
        else:
            examples.append(get_transform(name))
    examples += [Blur(radius=1.5), Noise(sigma=0.2, seed=9), Jpeg(quality=40)]
    examples.append(compose("rotate_90", Crop(box=(0, 0, 5, 5)), "blur"))
    examples.append(get_transform("flip_vertical").bind((12, 34)))
    return examples


@pytest.mark.parametrize("t", _examples(), ids=lambda t: t.name)
def test_dict_round_trip(t: Transform) -> None:
    data = t.to_dict()
    assert data["name"] == t.name
    assert transform_from_dict(data) == t
    assert Transform.from_dict(data) == t
    assert parse_transform(data) == t


def test_name_strings_as_records_store_them() -> None:
    chain = parse_transform("rotate_90+flip_horizontal")
    assert isinstance(chain, Compose) and chain.name == "rotate_90+flip_horizontal"
    assert str(chain) == chain.name
    assert parse_transform(["rotate_90", {"name": "flip_horizontal"}]) == chain
    assert transform_from_dict({"name": "rotate_90+flip_horizontal"}) == chain
    assert parse_transform(get_transform("blur").name) == Blur()
    for identity in (None, "", "none", "identity", "original"):
        assert parse_transform(identity) == Identity()
    assert get_transform("rotate_270").name == "rotate_270"


def test_bad_parameters_are_value_errors() -> None:
    for name, params in [
        ("blur", {"radius": 0}),
        ("low_contrast", {"factor": 1.5}),
        ("jpeg", {"quality": 0}),
        ("noise", {"sigma": -1}),
        ("scale_down", {"factor": 1.0}),
        ("bright", {"amount": 1.0}),
        ("blur", {"sigma": 2}),
    ]:
        with pytest.raises(ValueError):
            get_transform(name, **params)


# -- degradations -------------------------------------------------------------------------------
def _laplacian_var(image: Image.Image) -> float:
    return float(cv2.Laplacian(np.asarray(image.convert("L"), dtype=np.float64), cv2.CV_64F).var())


def test_degradations_measurably_change_real_images(astronaut: Image.Image) -> None:
    page = _page()
    gray = np.asarray(astronaut.convert("L"), dtype=np.float64)

    def stats(image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("L"), dtype=np.float64)

    assert stats(get_transform("low_contrast").apply(astronaut)).std() < 0.5 * gray.std()
    assert stats(get_transform("dim").apply(astronaut)).mean() < 0.5 * gray.mean()
    assert stats(get_transform("bright").apply(astronaut)).mean() > gray.mean() + 50
    for image in (astronaut, page):
        assert _laplacian_var(get_transform("blur").apply(image)) < 0.2 * _laplacian_var(image)
    jpeg = np.asarray(get_transform("jpeg").apply(page), dtype=np.float64)
    assert np.abs(jpeg - np.asarray(page, dtype=np.float64)).mean() > 1.0
    noisy = np.asarray(Noise(sigma=0.1, seed=1).apply(page.convert("L")), dtype=np.float64)
    diff = noisy - np.asarray(page.convert("L"), dtype=np.float64)
    assert 10 < diff.std() < 26  # white paper clips half the noise; sigma is 25.5 levels
    small = get_transform("scale_down").apply(astronaut)
    assert small.size == (256, 170)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradations_are_deterministic(name: str, coffee: Image.Image) -> None:
    t = get_transform(name)
    assert _same(t.apply(coffee), t.apply(coffee))
    assert np.array_equal(t.apply(np.asarray(coffee)), t.apply(np.asarray(coffee)))
    assert not _same(t.apply(coffee), coffee)


def test_noise_depends_on_the_seed(coffee: Image.Image) -> None:
    a, b = Noise(seed=1).apply(coffee), Noise(seed=2).apply(coffee)
    assert not _same(a, b)
    assert _same(a, Noise(seed=1).apply(coffee))


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradations_accept_every_mode(name: str, astronaut: Image.Image) -> None:
    t = get_transform(name)
    for image in _modes(astronaut):
        out = t.apply(image)
        assert out.size == t.output_size(image.size)
        if image.mode == "RGBA" and name != "scale_down":
            assert out.mode == "RGBA"
            assert out.getchannel("A").tobytes() == image.getchannel("A").tobytes()


def test_degradations_keep_dtype_and_alpha_on_arrays() -> None:
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (40, 60), dtype=np.uint16)
    unit = rng.random((40, 60, 3))
    for name in DEGRADATIONS:
        t = get_transform(name)
        out = t.apply(rgba)
        assert out.dtype == np.uint8
        if name != "scale_down":
            assert np.array_equal(out[..., 3], rgba[..., 3])
        assert t.apply(deep).dtype == np.uint16
        assert t.apply(unit).dtype == np.float64


def test_degradation_geometry() -> None:
    blur = Blur().bind((100, 80))
    assert blur.inverse() == Identity(size=(100, 80)) and not blur.exact_inverse
    assert blur.map_box((1, 2, 3, 4)) == (1, 2, 3, 4)
    scale = ScaleDown(factor=0.3).bind((101, 77))
    assert scale.output_size() == (30, 23)
    box = (10, 20, 55, 61)
    assert np.allclose(scale.inverse().map_box(scale.map_box(box)), box)
    image = Image.new("RGB", (101, 77), "white")
    assert scale.inverse().apply(scale.apply(image)).size == (101, 77)
    with pytest.raises(ValueError, match="original image size"):
        ScaleDown().inverse()
    low = LowContrast(factor=0.5)
    assert low.to_dict() == {"name": "low_contrast", "factor": 0.5}


def test_jpeg_output_is_a_real_jpeg_round_trip(coffee: Image.Image) -> None:
    out = Jpeg(quality=10).apply(coffee)
    buffer = io.BytesIO()
    coffee.save(buffer, format="JPEG", quality=10)
    assert _same(out, Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


# -- names as records store them (the release's list form) ----------------------------------------
@pytest.mark.parametrize(
    ("transform", "fixes"),
    [
        (["crop", "rotate_90"], ["crop", "rotate_270"]),
        (["rotate_90", "crop"], ["rotate_270", "crop"]),
        (["rotate_180"], ["rotate_180"]),
        ("rotate_270", ["rotate_90"]),
        ("flip_horizontal", ["flip_horizontal"]),
        (["flip_vertical", "crop"], ["flip_vertical", "crop"]),
        ("crop", ["crop"]),
        ("crop+rotate_90", ["crop", "rotate_270"]),
        ("['crop', 'rotate_90']", ["crop", "rotate_270"]),
        (("rotate_90", "rotate_90"), ["rotate_270"]),
        (np.array(["crop", "rotate_270"]), ["crop", "rotate_90"]),
        (compose("rotate_90", "flip_horizontal"), ["rotate_270", "flip_horizontal"]),
        (get_transform("rotate_180"), ["rotate_180"]),
        ({"name": "rotate_90"}, ["rotate_270"]),
        (["rotate_90", "blur"], ["rotate_270", "blur"]),  # other names are expected as they are
        ("rotate_-90", ["rotate_90"]),
        ("rotate_0", []),
        ("rotate_360", []),
        ("rotate_x", []),
        ("identity", []),
        ([], []),
        (None, []),
    ],
    ids=repr,
)
def test_expected_fixes_follow_the_release(transform: object, fixes: list[str]) -> None:
    assert expected_fixes(transform) == fixes


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_expected_fix_of_an_orientation_is_fix_for(name: str) -> None:
    assert expected_fixes(name) == [fix_for(name)] == expected_fixes([name])


@pytest.mark.parametrize(
    ("transform", "names", "row"),
    [
        (None, [], None),
        ("", [], None),
        ("identity", [], None),
        ("rotate_90", ["rotate_90"], "rotate_90"),
        (" rotate_90 ", ["rotate_90"], "rotate_90"),
        ("crop+rotate_90", ["crop", "rotate_90"], ["crop", "rotate_90"]),
        ("identity+rotate_90", ["rotate_90"], ["rotate_90"]),
        (["crop", "rotate_90"], ["crop", "rotate_90"], ["crop", "rotate_90"]),
        (["rotate_90"], ["rotate_90"], ["rotate_90"]),
        (["crop", "none"], ["crop"], ["crop", "none"]),  # a stored list is written unchanged
        (["crop+rotate_90"], ["crop", "rotate_90"], ["crop", "rotate_90"]),
        ([], [], []),
        ('["crop", "rotate_90"]', ["crop", "rotate_90"], ["crop", "rotate_90"]),
        (get_transform("flip_vertical"), ["flip_vertical"], "flip_vertical"),
        (compose("rotate_90"), ["rotate_90"], ["rotate_90"]),
        (["my_op"], ["my_op"], ["my_op"]),  # names unknown here are kept
    ],
    ids=repr,
)
def test_transform_names_and_row_form(transform: object, names: list[str], row: object) -> None:
    assert transform_names(transform) == names
    assert transform_for_row(transform) == row
    assert transform_names(transform_for_row(transform)) == names


def test_transform_names_reject_other_kinds() -> None:
    with pytest.raises(TypeError, match="cannot read"):
        transform_names(90)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="holds names"):
        transform_names(["rotate_90", 3])
