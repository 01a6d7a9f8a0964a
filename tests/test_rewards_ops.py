"""Reading ops from tool calls: the release's heuristic (default) with its blind spots, and
the AST mode that fixes them; through ``parse_ops`` and through a whole scored rollout."""

from __future__ import annotations

import pytest

from langchain_codevision.rewards import parse_ops, score_rollout
from tests.test_rewards import answer, call, verl

# (code, what the release's heuristic reads, what the AST mode reads)
BLIND_SPOTS = [
    ("result = Image.fromarray(np.rot90(np.array(image), k=3))", ("rotate_90",), ("rotate_270",)),
    (
        "a = np.array(image)\nresult = Image.fromarray(np.rot90(a, 3))",
        ("rotate_90",),
        ("rotate_270",),
    ),
    (
        "result = Image.fromarray(cv2.rotate(np.array(image), cv2.ROTATE_90_CLOCKWISE))",
        (),
        ("rotate_270",),
    ),
    ("result = image.transpose(Image.Transpose.ROTATE_270)", (), ("rotate_270",)),
    ("result = image.rotate(angle=90, expand=True)", (), ("rotate_90",)),
    ("result = Image.fromarray(np.fliplr(np.array(image)))", (), ("flip_horizontal",)),
    ("result = Image.fromarray(cv.flip(np.array(image), 0))", (), ("flip_vertical",)),
    ("result = image.resize((64, 64), Image.LANCZOS)", (), ("resize",)),
    ("e = ImageEnhance.Contrast(image)\nresult = e.enhance(2.0)", (), ("contrast_up",)),
    ("# result = image.rotate(90)\nresult = image", ("rotate_90",), ()),
    ("result = image.rotate(90)\nthis is not python(", ("rotate_90",), ()),
    (
        "for a in (90, 180, 270):\n    r = image.rotate(a)\nresult = r",
        (),
        ("rotate_90", "rotate_180", "rotate_270"),
    ),
    ("import cv2 as c\nresult = c.rotate(np.array(image), c.ROTATE_180)", (), ("rotate_180",)),
]


@pytest.mark.parametrize(("code", "release", "strict"), BLIND_SPOTS)
def test_blind_spots_kept_by_default_fixed_in_ast_mode(
    code: str, release: tuple, strict: tuple
) -> None:
    assert parse_ops(code, "").ops == release
    assert parse_ops(code, "", mode="ast").ops == strict


def test_semicolon_assignments_are_not_replayed_by_the_release() -> None:
    code = "x1 = 100; result = image.crop((x1, 100, 300, 300))"
    assert parse_ops(code).boxes == () and parse_ops(code).ops == ()
    assert parse_ops(code, mode="ast").boxes == ((100.0, 100.0, 300.0, 300.0),)
    two_lines = "x1 = 100\nresult = image.crop((x1, 100, 300, 300))"
    assert parse_ops(two_lines).boxes == ((100.0, 100.0, 300.0, 300.0),)
    assert parse_ops(two_lines).ops == ("crop",)


def test_release_box_evaluation() -> None:
    code = (
        "cx, cy = 200, 200\nhalf = 100\nleft = max(0, cx - half)\n"
        "box = (left, cy - half, int(cx + half + 0.7), round(cy + half))\nresult = image.crop(box)"
    )
    assert parse_ops(code).boxes == ((100.0, 100.0, 300.0, 300.0),)
    assert parse_ops("w, h = image.size\nresult = image.crop((0, 0, w, h))").boxes == ()
    assert parse_ops("r = image.crop((1.5, 2, 3, 4)).crop((1.5, 2, 3, 4))").boxes == (
        (1.5, 2.0, 3.0, 4.0),
    )


@pytest.mark.parametrize(
    ("description", "ops"),
    [
        ("crop the sign", ("crop",)),
        ("no horizontal flip needed", ("flip_horizontal",)),  # negation is not understood
        ("mirror it horizontally", ("flip_horizontal",)),
        ("vertical flip", ("flip_vertical",)),
        ("rotate by 90", ()),
        ({"description": "crop"}, ()),  # a dict counts as ""
        (["crop"], ("crop",)),  # other non-strings are read as str()
        (None, ()),
    ],
)
def test_description_rules(description: object, ops: tuple) -> None:
    got = parse_ops("result = image", description)
    assert got.ops == ops
    assert parse_ops("result = image", description, mode="ast").ops == ()


def test_description_box_only_when_the_code_has_none() -> None:
    assert parse_ops("result = image", "crop [1, 2, 3, 4]").boxes == ((1.0, 2.0, 3.0, 4.0),)
    assert parse_ops("result = image", "area (1, 2, 3, 4)").boxes == ((1.0, 2.0, 3.0, 4.0),)
    got = parse_ops("result = image.crop((5, 6, 7, 8))", "crop [1, 2, 3, 4]")
    assert got.boxes == ((5.0, 6.0, 7.0, 8.0),)


@pytest.mark.parametrize(
    ("code", "ops"),
    [
        ("result = ImageEnhance.Brightness(image).enhance(0.5)", ("brightness_down",)),
        ("result = ImageEnhance.Sharpness(image).enhance(1.0)", ("sharpness",)),
        ("result = image.filter(ImageFilter.GaussianBlur(2))", ("gaussian_blur",)),
        ("result = image.filter(ImageFilter.EDGE_ENHANCE_MORE)", ("edge_enhance",)),
        ("result = image.convert('L')", ("grayscale",)),
        ("result = ImageOps.autocontrast(image)", ("autocontrast",)),
        ("g = cv2.Canny(np.array(image), 50, 150)", ("edge_detect",)),
        ("g = cv2.convertScaleAbs(a, alpha=1.5, beta=-10)", ("contrast_up", "brightness_down")),
        ("result = ImageOps.mirror(image)", ("flip_horizontal",)),
        ("result = image.transpose(Image.FLIP_TOP_BOTTOM)", ("flip_vertical",)),
        ("result = image.rotate(-92)", ("rotate_270",)),
        ("result = image.rotate(100)", ()),
    ],
)
def test_labels_agree_in_both_modes(code: str, ops: tuple) -> None:
    assert parse_ops(code).ops == ops
    assert parse_ops(code, mode="ast").ops == ops


def test_ast_mode_extras() -> None:
    sized = "w, h = image.size\nresult = image.crop((w // 4, 0, w // 2, h))"
    assert parse_ops(sized, mode="ast", image_size=(400, 300)).boxes == (
        (100.0, 0.0, 200.0, 300.0),
    )
    assert parse_ops(sized, mode="ast").boxes == ()
    assert "could not be evaluated" in parse_ops(sized, mode="ast").notes[0]
    sliced = "a = np.array(image)\nresult = Image.fromarray(a[50:150, 10:90])"
    assert parse_ops(sliced, mode="ast").boxes == ((10.0, 50.0, 90.0, 150.0),)
    assert parse_ops("result = Image.fromarray(np.array(image)[:, ::-1])", mode="ast").ops == (
        "flip_horizontal",
    )
    assert parse_ops("from PIL import ImageOps as O\nresult = O.mirror(image)", mode="ast").ops == (
        "flip_horizontal",
    )
    assert "does not parse" in parse_ops("result = (", mode="ast").notes[0]


def test_a_blind_spot_changes_the_reward() -> None:
    text = verl([call("result = Image.fromarray(np.rot90(np.array(image), k=3))"), answer("42")])
    release = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    strict = score_rollout(text, ground_truth="42", transform=["rotate_90"], ops_mode="ast")
    assert release.ops_used == ("rotate_90",) and release.mandatory == 0.0 and release.exact == 0
    assert strict.ops_used == ("rotate_270",) and strict.mandatory == 1.0 and strict.exact == 0.1
    assert strict.total - release.total == pytest.approx(1.1)
    assert release.ops_mode == "release" and strict.ops_mode == "ast"
    loop = "for a in (90, 180, 270):\n    r = image.rotate(a, expand=True)\nresult = r"
    hack = verl([call(loop), answer("42")])
    assert score_rollout(hack, ground_truth="42", transform=[]).spurious_penalty == 0.0
    assert (
        score_rollout(hack, ground_truth="42", transform=[], ops_mode="ast").spurious_penalty == 3
    )


@pytest.mark.parametrize("code", [None, 123, 4.5, ["result = image.rotate(90)"], {"a": 1}, ""])
def test_non_string_code(code: object) -> None:
    for mode in ("release", "ast"):
        got = parse_ops(code, "", mode=mode)  # type: ignore[arg-type]
        assert isinstance(got.ops, tuple)
    assert parse_ops(["result = image.rotate(90)"]).ops == ("rotate_90",)  # read as str()
