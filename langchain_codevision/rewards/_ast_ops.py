"""The stricter op reader (``ops_mode="ast"``): what the parsed code does.

Statements are visited in order (so ``a = 10; img.crop((a, ...))`` sees ``a``), both
branches of an ``if`` count, a ``for`` over a literal list runs its body once per value (so
``for a in (90, 180, 270): image.rotate(a)`` reads as three rotations), imports and the
release's bound aliases (``cv``, ``numpy``, ``PIL.Image``) are resolved, and the image's size
is known when given. Comments and code that does not parse give nothing.
"""

from __future__ import annotations

import ast
from typing import Any

from ._numeric import eval_node, parse_code
from ._release_ops import filter_label, graded

__all__ = ["ast_ops"]

_ALIASES = {"cv": "cv2", "numpy": "np", "PIL": ""}
_IMAGE_NAMES = ("image", "img")
_TRANSPOSE = {
    "ROTATE_90": "rotate_90",
    "ROTATE_180": "rotate_180",
    "ROTATE_270": "rotate_270",
    "FLIP_LEFT_RIGHT": "flip_horizontal",
    "FLIP_TOP_BOTTOM": "flip_vertical",
    "TRANSPOSE": "transpose",
    "TRANSVERSE": "transpose",
}
_TRANSPOSE_CODES = [
    "flip_horizontal",
    "flip_vertical",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    "transpose",
    "transpose",
]
_CV_ROTATE = {
    "ROTATE_90_CLOCKWISE": "rotate_270",
    "ROTATE_180": "rotate_180",
    "ROTATE_90_COUNTERCLOCKWISE": "rotate_90",
}
_CV_ROTATE_CODES = ["rotate_270", "rotate_180", "rotate_90"]
_CALL_LABELS = {
    "ImageOps.mirror": "flip_horizontal",
    "ImageOps.flip": "flip_vertical",
    "np.fliplr": "flip_horizontal",
    "np.flipud": "flip_vertical",
    "ImageOps.grayscale": "grayscale",
    "ImageOps.autocontrast": "autocontrast",
    "ImageOps.equalize": "equalize",
    "ImageOps.invert": "invert",
    "ImageOps.solarize": "solarize",
    "ImageOps.posterize": "posterize",
    "ImageOps.fit": "resize",
    "ImageOps.contain": "resize",
    "ImageOps.pad": "resize",
    "ImageOps.scale": "resize",
    "cv2.resize": "resize",
    "cv2.GaussianBlur": "gaussian_blur",
    "cv2.blur": "blur",
    "cv2.boxFilter": "blur",
    "cv2.medianBlur": "median_blur",
    "cv2.bilateralFilter": "smooth",
    "cv2.Canny": "edge_detect",
    "cv2.Sobel": "edge_detect",
    "cv2.Scharr": "edge_detect",
    "cv2.Laplacian": "edge_detect",
    "cv2.threshold": "threshold",
    "cv2.adaptiveThreshold": "threshold",
    "cv2.erode": "erode",
    "cv2.dilate": "dilate",
    "cv2.morphologyEx": "morphology",
    "cv2.equalizeHist": "equalize",
    "cv2.createCLAHE": "equalize",
    "cv2.bitwise_not": "invert",
    "cv2.filter2D": "filter",
}
_ENHANCERS = {"Brightness", "Contrast", "Sharpness", "Color"}
_MAX_LOOP = 16


def _canonical(dotted: str) -> str:
    """``dotted`` with the release's module aliases applied (``cv`` -> ``cv2``, ...)."""
    head, *rest = dotted.split(".")
    return ".".join(p for p in [_ALIASES.get(head, head), *rest] if p)


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = aliases[node.id] if node.id in aliases else _ALIASES.get(node.id, node.id)
    return ".".join(p for p in [head, *reversed(parts)] if p)


def _last(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _arg(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[position] if len(call.args) > position else None


class _Reader:
    def __init__(self, size: tuple[int, int] | None) -> None:
        self.ops: list[str] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.notes: list[str] = []
        self.aliases: dict[str, str] = {}
        self.env: dict[str, Any] = {}
        self.enhancers: dict[str, str] = {}
        if size is not None:
            for name in _IMAGE_NAMES:
                self.env[name] = ("image", float(size[0]), float(size[1]))

    # -- values ------------------------------------------------------------------------
    def value(self, node: ast.AST | None) -> Any:
        return None if node is None else eval_node(node, self.env, extended=True)

    def number(self, node: ast.AST | None) -> float | None:
        value = self.value(node)
        return value if isinstance(value, float) else None

    def bind(self, target: ast.AST, node: ast.AST | None, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.env.pop(target.id, None)
            self.enhancers.pop(target.id, None)
            if value is not None:
                self.env[target.id] = value
            kind = self._enhancer(node)
            if kind:
                self.enhancers[target.id] = kind
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value if isinstance(value, list) and len(value) == len(target.elts) else None
            for position, elt in enumerate(target.elts):
                self.bind(elt, None, None if items is None else items[position])

    def _enhancer(self, node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Call):
            name = _dotted(node.func, self.aliases) or ""
            if name.startswith("ImageEnhance.") and name.split(".")[-1] in _ENHANCERS:
                return name.split(".")[-1].lower()
        return None

    # -- statements --------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.aliases[alias.asname] = _canonical(alias.name)
            return
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = _canonical(
                    f"{node.module or ''}.{alias.name}".lstrip(".")
                )
            return
        if isinstance(node, ast.For):
            self.expressions(node.iter)
            values = self.value(node.iter)
            if isinstance(node.target, ast.Name) and isinstance(values, list) and values:
                for item in values[:_MAX_LOOP]:
                    self.env[node.target.id] = item
                    self.block(node.body)
            else:
                self.bind(node.target, None, None)
                self.block(node.body)
            self.block(node.orelse)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.block(node.body)
            return
        for field in ("test", "iter", "context_expr", "subject"):
            part = getattr(node, field, None)
            if isinstance(part, ast.AST):
                self.expressions(part)
        for item in getattr(node, "items", []) or []:
            self.expressions(item)
        nested = False
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                nested = True
                for child in children:
                    if isinstance(child, ast.stmt):
                        self.statement(child)
                    else:
                        self.block(getattr(child, "body", []))
        if nested:
            return
        self.expressions(node)
        if isinstance(node, ast.Assign):
            value = self.value(node.value)
            for target in node.targets:
                self.bind(target, node.value, value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.bind(node.target, node.value, self.value(node.value))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            probe = ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)
            self.bind(node.target, None, self.value(probe))

    # -- expressions -------------------------------------------------------------------
    def expressions(self, node: ast.AST) -> None:
        for child in ast.walk(node):
            if isinstance(child, ast.Call):
                self.call(child)
            elif isinstance(child, ast.Attribute):
                name = _dotted(child, self.aliases) or ""
                if name.startswith("ImageFilter."):
                    label = filter_label(name.split(".")[1])
                    if label:
                        self.ops.append(label)
            elif isinstance(child, ast.Subscript):
                self.subscript(child)

    def call(self, node: ast.Call) -> None:
        name = _dotted(node.func, self.aliases) or ""
        method = _last(node.func) or ""
        if name in _CALL_LABELS:
            self.ops.append(_CALL_LABELS[name])
        elif name == "np.rot90":
            k = self.number(_arg(node, 1, "k"))
            turns = 1 if _arg(node, 1, "k") is None else (int(k) % 4 if k is not None else None)
            if turns:
                self.ops.append(f"rotate_{90 * turns}")
        elif name == "np.flip":
            self.ops.append(self._np_flip(_arg(node, 1, "axis")))
        elif name == "cv2.rotate":
            self._coded(_arg(node, 1, "rotateCode"), _CV_ROTATE, _CV_ROTATE_CODES)
        elif name == "cv2.flip":
            code = self.number(_arg(node, 1, "flipCode"))
            if code is not None:
                op = (
                    "flip_vertical"
                    if code == 0
                    else "flip_horizontal"
                    if code > 0
                    else "rotate_180"
                )
                self.ops.append(op)
        elif name == "cv2.cvtColor":
            code = _last(_arg(node, 1, "code")) or ""
            if "2GRAY" in code:
                self.ops.append("grayscale")
        elif name == "cv2.convertScaleAbs":
            alpha, beta = self.number(_arg(node, 2, "alpha")), self.number(_arg(node, 3, "beta"))
            if _arg(node, 2, "alpha") is not None:
                self.ops.append(graded("contrast", alpha))
            if _arg(node, 3, "beta") is not None:
                self.ops.append(graded("brightness", beta, 0.5, -0.5))
        elif name.startswith("cv2.") or name.startswith("np."):
            return
        elif method == "rotate":
            angle = self.number(_arg(node, 0, "angle"))
            op = None if angle is None else _quarter(angle)
            if op:
                self.ops.append(op)
        elif method == "transpose" and len(node.args) > 1:
            self.ops.append("transpose")
        elif method == "transpose":
            self._coded(_arg(node, 0, "method"), _TRANSPOSE, _TRANSPOSE_CODES)
        elif method == "crop" and not name.startswith("ImageOps."):
            self._crop(_arg(node, 0, "box"))
        elif method in ("resize", "thumbnail", "reduce"):
            self.ops.append("resize")
        elif method == "convert":
            mode = _arg(node, 0, "mode")
            if isinstance(mode, ast.Constant) and mode.value in ("L", "LA"):
                self.ops.append("grayscale")
        elif method == "enhance":
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            kind = self._enhancer(owner)
            if kind is None and isinstance(owner, ast.Name):
                kind = self.enhancers.get(owner.id)
            if kind:
                self.ops.append(graded(kind, self.number(_arg(node, 0, "factor"))))

    def _np_flip(self, axis: ast.AST | None) -> str:
        value = self.value(axis)
        if isinstance(value, float):
            return "flip_vertical" if value == 0 else "flip_horizontal" if value == 1 else "flip"
        return "rotate_180" if axis is None or value == [0.0, 1.0] else "flip"

    def _coded(self, node: ast.AST | None, names: dict[str, str], codes: list[str]) -> None:
        label = names.get(_last(node) or "")
        number = self.number(node) if label is None else None
        if label is None and number is not None and number.is_integer():
            position = int(number)
            label = codes[position] if 0 <= position < len(codes) else None
        if label:
            self.ops.append(label)

    def _crop(self, node: ast.AST | None) -> None:
        self.ops.append("crop")
        box = self.value(node)
        if isinstance(box, list) and len(box) == 4:
            self.boxes.append((box[0], box[1], box[2], box[3]))
        else:
            self.notes.append("a crop box could not be evaluated")

    def subscript(self, node: ast.Subscript) -> None:
        index = node.slice
        parts = list(index.elts) if isinstance(index, ast.Tuple) else [index]
        slices = [p for p in parts[:2] if isinstance(p, ast.Slice)]
        if len(slices) != len(parts[:2]) or not slices:
            return
        steps = [self.number(s.step) if s.step is not None else 1.0 for s in slices]
        reversed_axes = [i for i, step in enumerate(steps) if step is not None and step < 0]
        if reversed_axes == [0]:
            self.ops.append("flip_vertical")
        elif reversed_axes == [1]:
            self.ops.append("flip_horizontal")
        elif reversed_axes == [0, 1]:
            self.ops.append("rotate_180")
        if len(slices) == 2 and not reversed_axes:
            rows, cols = slices
            bounds = [self.number(b) for b in (cols.lower, rows.lower, cols.upper, rows.upper)]
            if all(b is not None for b in bounds):
                self.ops.append("crop")
                self.boxes.append(tuple(bounds))  # type: ignore[arg-type]


def _quarter(angle: float) -> str | None:
    for target, name in ((90.0, "rotate_90"), (180.0, "rotate_180"), (270.0, "rotate_270")):
        if abs((angle % 360 - target + 180) % 360 - 180) <= 5.0:
            return name
    return None


def ast_ops(
    code: str, image_size: tuple[int, int] | None
) -> tuple[list[str], list[tuple[float, float, float, float]], list[str]]:
    """Ops, crop boxes and notes of ``code`` read from its syntax tree."""
    try:
        tree = parse_code(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return [], [], [f"the code does not parse ({type(exc).__name__}): no ops read"]
    reader = _Reader(image_size)
    try:
        reader.block(tree.body)
    except RecursionError:
        reader.notes.append("the code nests too deeply: ops read so far are kept")
    boxes = list(dict.fromkeys(tuple(round(v, 6) for v in box) for box in reader.boxes))
    return reader.ops, boxes, list(dict.fromkeys(reader.notes))  # type: ignore[return-value]
