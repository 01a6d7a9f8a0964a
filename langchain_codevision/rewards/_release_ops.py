"""The release's heuristic op reader, reproduced (the default ``ops_mode="release"``).

This is what the release's RL reward saw (``tool_use_judge`` without an LLM): regular
expressions over the raw code, plus an AST pass for crop boxes in which assignments on
earlier lines are replayed. Its blind spots are kept on purpose, because they decide RL
parity: ``np.rot90(f(x), k=3)`` and ``np.rot90(a, 3)`` read as ``rotate_90``; nested
``cv2.rotate(np.array(img), ...)``, ``Image.Transpose.*``, ``rotate(angle=90)``,
``np.fliplr``, ``cv2.flip``, ``resize(..., Image.LANCZOS)`` and enhancers kept in a variable
are missed; assignments after ``;`` on the crop's line are not replayed; comments count.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ._numeric import eval_expression, eval_node, parse_code

__all__ = ["release_boxes", "release_ops"]

_QUARTERS = ((90.0, "rotate_90"), (180.0, "rotate_180"), (270.0, "rotate_270"))


def _quarter(angle: float) -> str | None:
    """The rotation op within 5 degrees of ``angle`` (on the circle), else ``None``."""
    for target, name in _QUARTERS:
        if abs((angle % 360 - target + 180) % 360 - 180) <= 5.0:
            return name
    return None


_ROTATE = re.compile(r"\.rotate\(\s*([^,\)]+)\s*(?:,\s*[^)]*)?\)")
_TRANSPOSE = {n: re.compile(rf"transpose\(\s*Image\.ROTATE_{n}\s*\)") for n in (90, 180, 270)}
_ROT90 = re.compile(r"np\.rot90\(\s*[^,\s)]+\s*(?:,\s*k\s*=\s*([-+]?\d+))?")
_CV_ROTATE = [
    (re.compile(rf"cv2\.rotate\(\s*[^,)]*\s*,\s*cv2\.{code}\s*\)"), op)
    for code, op in (
        ("ROTATE_90_CLOCKWISE", "rotate_270"),
        ("ROTATE_180", "rotate_180"),
        ("ROTATE_90_COUNTERCLOCKWISE", "rotate_90"),
    )
]
_MIRROR = re.compile(r"ImageOps\.mirror|transpose\(\s*Image\.FLIP_LEFT_RIGHT\s*\)")
_FLIP = re.compile(r"ImageOps\.flip|transpose\(\s*Image\.FLIP_TOP_BOTTOM\s*\)")


def _rotations(code: str) -> list[str]:
    found: list[str] = []
    for match in _ROTATE.finditer(code):
        angle = eval_expression(match.group(1).strip())
        op = None if angle is None else _quarter(angle)
        if op:
            found.append(op)
    for n, pattern in _TRANSPOSE.items():
        if pattern.search(code):
            found.append(f"rotate_{n}")
    for match in _ROT90.finditer(code):
        k = int(match.group(1)) % 4 if match.group(1) is not None else 1
        if k:
            found.append(f"rotate_{90 * k}")
    found.extend(op for pattern, op in _CV_ROTATE if pattern.search(code))
    return found


_ENHANCE = re.compile(
    r"ImageEnhance\.(Brightness|Contrast|Sharpness|Color)\s*\(\s*[^)]+\s*\)\s*\.enhance\(\s*([^\)]+?)\s*\)"
)
_FILTER = re.compile(r"ImageFilter\.([A-Za-z_]+)(?:\s*\(\s*([^\)]*)\s*\))?")
_SIMPLE = [
    (re.compile(p), label)
    for p, label in (
        (r"\.convert\(\s*['\"]L['\"]\s*\)", "grayscale"),
        (r"cv2\.cvtColor\(\s*[^,]+,\s*cv2\.COLOR_(?:BGR|RGB)2GRAY\s*\)", "grayscale"),
        (r"\.resize\(\s*\(\s*[^\)]+\)\s*\)", "resize"),
        (r"ImageOps\.fit\(\s*[^,]+,\s*\(\s*[^\)]+\)\s*\)", "resize"),
        (r"ImageOps\.autocontrast\(\s*[^\)]*\)", "autocontrast"),
        (r"ImageOps\.equalize\(\s*[^\)]*\)", "equalize"),
        (r"ImageOps\.invert\(\s*[^\)]*\)", "invert"),
        (r"ImageOps\.solarize\(\s*[^\)]*\)", "solarize"),
        (r"ImageOps\.posterize\(\s*[^\)]*\)", "posterize"),
        (r"cv2\.GaussianBlur\(\s*[^\)]*\)", "gaussian_blur"),
        (r"cv2\.(?:blur|boxFilter)\(\s*[^\)]*\)", "blur"),
        (r"cv2\.medianBlur\(\s*[^\)]*\)", "median_blur"),
        (r"cv2\.Canny\(\s*[^\)]*\)", "edge_detect"),
        (r"cv2\.Sobel\(\s*[^\)]*\)\s*|\s*cv2\.Laplacian\(\s*[^\)]*\)", "edge_detect"),
    )
]
_SCALE_ABS = re.compile(r"cv2\.convertScaleAbs\(\s*[^\)]*\)")
_ALPHA = re.compile(r"alpha\s*=\s*([-+]?\d+(?:\.\d+)?)")
_BETA = re.compile(r"beta\s*=\s*([-+]?\d+(?:\.\d+)?)")
_MORPHOLOGY = [
    (re.compile(r"cv2\.erode\(\s*[^\)]*\)"), "erode"),
    (re.compile(r"cv2\.dilate\(\s*[^\)]*\)"), "dilate"),
    (re.compile(r"cv2\.equalizeHist\(\s*[^\)]*\)"), "equalize"),
]
FILTER_LABELS = {
    "BLUR": "blur",
    "BOXBLUR": "blur",
    "GAUSSIANBLUR": "gaussian_blur",
    "MEDIANFILTER": "median_blur",
    "SHARPEN": "sharpen",
    "UNSHARPMASK": "sharpen",
    "SMOOTH": "smooth",
    "SMOOTH_MORE": "smooth",
    "DETAIL": "detail",
    "FIND_EDGES": "edge_detect",
}


def filter_label(name: str) -> str | None:
    """The op label of an ``ImageFilter`` name (the release's table)."""
    upper = name.upper()
    if upper.startswith("EDGE_ENHANCE"):
        return "edge_enhance"
    return FILTER_LABELS.get(upper)


def graded(base: str, factor: float | None, up: float = 1.05, down: float = 0.95) -> str:
    """``base_up`` / ``base_down`` / ``base`` for an enhancement factor (release bands)."""
    if factor is None:
        return base
    return f"{base}_up" if factor > up else f"{base}_down" if factor < down else base


def _others(code: str) -> list[str]:
    found: list[str] = []
    for match in _ENHANCE.finditer(code):
        factor = eval_expression(match.group(2).strip())
        found.append(graded(match.group(1).lower(), factor))
    for match in _FILTER.finditer(code):
        label = filter_label(match.group(1))
        if label:
            found.append(label)
    found.extend(label for pattern, label in _SIMPLE if pattern.search(code))
    for match in _SCALE_ABS.finditer(code):
        segment = match.group(0)
        alpha, beta = _ALPHA.search(segment), _BETA.search(segment)
        if alpha:
            found.append(graded("contrast", float(alpha.group(1))))
        if beta:
            found.append(graded("brightness", float(beta.group(1)), 0.5, -0.5))
    found.extend(label for pattern, label in _MORPHOLOGY if pattern.search(code))
    return list(dict.fromkeys(found))


def _env_before(tree: ast.Module, line: int) -> dict[str, Any]:
    """Replay the assignments that start on lines before ``line`` (the release's rule)."""
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign))]
    nodes.sort(key=lambda n: (n.lineno, n.col_offset))
    env: dict[str, Any] = {}
    for node in nodes:
        if node.lineno >= line:
            break
        if isinstance(node, ast.Assign):
            value = eval_node(node.value, env)
            for target in node.targets:
                _bind(target, value, env)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None and isinstance(node.target, ast.Name):
                value = eval_node(node.value, env)
                if value is not None:
                    env[node.target.id] = value
        elif isinstance(node.target, ast.Name):
            current, right = env.get(node.target.id), eval_node(node.value, env)
            if isinstance(current, float) and isinstance(right, float):
                update = _augmented(node.op, current, right)
                if update is not None:
                    env[node.target.id] = update
    return env


def _augmented(op: ast.operator, current: float, right: float) -> float | None:
    probe = ast.BinOp(ast.Constant(current), op, ast.Constant(right))
    return eval_node(probe, {}) if not isinstance(op, ast.Pow) else None


def _bind(target: ast.expr, value: Any, env: dict[str, Any]) -> None:
    if value is None:
        return
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, list):
        names = [elt.id for elt in target.elts if isinstance(elt, ast.Name)]
        if len(names) == len(value):
            env.update(zip(names, value, strict=True))


_LITERAL_CROP = re.compile(
    r"\.crop\(\(\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*\)\)"
)


def release_boxes(code: str) -> list[list[float]]:
    """Crop boxes as the release finds them: AST-evaluated ``.crop(...)`` boxes, then literals."""
    boxes: list[list[float]] = []
    tree = None
    if "crop" in code or not code.isascii():  # no ``.crop`` attribute can exist otherwise
        try:
            tree = parse_code(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            tree = None
    if tree is not None:
        try:
            calls = [
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "crop"
            ]
            calls.sort(key=lambda n: (n.lineno, n.col_offset))
            for call in calls:
                if call.args:
                    value = eval_node(call.args[0], _env_before(tree, call.lineno))
                    if isinstance(value, list) and len(value) == 4:
                        boxes.append(value)
        except RecursionError:
            pass
    for match in _LITERAL_CROP.finditer(code):
        try:
            boxes.append([float(v) for v in match.groups()])
        except ValueError:
            continue
    unique: dict[tuple[float, ...], list[float]] = {}
    for box in boxes:
        key = tuple(round(v, 6) for v in box)
        unique.setdefault(key, list(key))
    return list(unique.values())


def release_ops(code: str) -> list[str]:
    """The ops the release reads from ``code`` (crop is added by the caller when boxes exist)."""
    return (
        _rotations(code)
        + [
            op
            for pattern, op in ((_MIRROR, "flip_horizontal"), (_FLIP, "flip_vertical"))
            if pattern.search(code)
        ]
        + _others(code)
    )
