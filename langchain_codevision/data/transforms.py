"""Invertible image transforms by name: the registry, chains and serialisation.

Records store transforms by name, as the reference release does: one name
(``"rotate_90"``, ``"flip_horizontal"``, ``"crop"``, ...) or a list of names applied in order
(``["crop", "rotate_90"]``). In code a chain is also named by its steps joined with ``"+"``
(``"rotate_90+flip_horizontal"`` rotates, then flips); rows store it as the list
(:func:`transform_for_row`), and :func:`transform_names` reads every form back as a list.
Names carry no parameters; :meth:`Transform.to_dict` keeps them
(``{"name": "blur", "radius": 2.5}``; a chain adds ``"steps"``, a list of such dicts).

* Orientation transforms (:data:`ORIENTATIONS`): ``rotate_90``, ``rotate_180``,
  ``rotate_270`` (counter-clockwise, as PIL ``Image.rotate(angle, expand=True)``),
  ``flip_horizontal``, ``flip_vertical``; each is undone exactly by :func:`inverse_name`.
* ``crop`` (needs ``box``), ``uncrop``, ``resize`` and ``identity``.
* Degradations (:data:`DEGRADATIONS`): ``low_contrast``, ``dim``, ``bright``, ``blur``,
  ``noise``, ``jpeg``, ``scale_down``.

Every transform works on PIL images (any mode) and numpy arrays and maps points and boxes
exactly (see :mod:`langchain_codevision.data._transform_base` for the coordinate convention).

Example:
    >>> from PIL import Image
    >>> from langchain_codevision.data.transforms import (
    ...     expected_fixes, fix_for, parse_transform, transform_for_row)
    >>> image = Image.new("L", (40, 30))
    >>> chain = parse_transform("rotate_90+flip_horizontal").bind(image.size)
    >>> chain.inverse().apply(chain.apply(image)).tobytes() == image.tobytes()
    True
    >>> chain.inverse().name, fix_for("rotate_90")
    ('flip_horizontal+rotate_270', 'rotate_270')
    >>> transform_for_row("crop+rotate_90"), expected_fixes(["crop", "rotate_90"])
    (['crop', 'rotate_90'], ['crop', 'rotate_270'])
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from langchain_codevision.data._transform_base import (
    Box,
    Identity,
    ImageT,
    Point,
    Size,
    Transform,
    image_size,
)
from langchain_codevision.data.degradations import (
    Blur,
    Bright,
    Degradation,
    Dim,
    Jpeg,
    LowContrast,
    Noise,
    ScaleDown,
)
from langchain_codevision.data.geometry import (
    Crop,
    FlipHorizontal,
    FlipVertical,
    Resize,
    Rotate90,
    Rotate180,
    Rotate270,
    Uncrop,
)

ROTATIONS: tuple[str, ...] = ("rotate_90", "rotate_180", "rotate_270")
"""The quarter turns, counter-clockwise."""
FLIPS: tuple[str, ...] = ("flip_horizontal", "flip_vertical")
"""The mirror flips."""
ORIENTATIONS: tuple[str, ...] = ROTATIONS + FLIPS
"""Transforms that change orientation only (the benchmark's transformed variants)."""
DEGRADATIONS: tuple[str, ...] = (
    "low_contrast",
    "dim",
    "bright",
    "blur",
    "noise",
    "jpeg",
    "scale_down",
)
"""Photometric degradations (``scale_down`` also shrinks the geometry)."""

_CLASSES: tuple[type[Transform], ...] = (
    Identity,
    Rotate90,
    Rotate180,
    Rotate270,
    FlipHorizontal,
    FlipVertical,
    Crop,
    Uncrop,
    Resize,
    LowContrast,
    Dim,
    Bright,
    Blur,
    Noise,
    Jpeg,
    ScaleDown,
)
REGISTRY: dict[str, type[Transform]] = {cls.name: cls for cls in _CLASSES}
"""Transform classes by name."""
TRANSFORM_NAMES: tuple[str, ...] = tuple(REGISTRY)
"""Every valid transform name."""
_IDENTITY_ALIASES = frozenset({"", "none", "identity", "original"})


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown transform {name!r}; valid names: {', '.join(TRANSFORM_NAMES)}")


def get_transform(name: str, **params: Any) -> Transform:
    """Build one transform by name.

    Args:
        name: A name from :data:`TRANSFORM_NAMES` (``"none"``/``""`` mean identity).
        **params: The transform's parameters (``box=`` for crop, ``radius=`` for blur, ...)
            and optionally ``size=(width, height)`` to bind it.

    Raises:
        ValueError: Unknown name (the message lists the valid ones) or bad parameters.
    """
    key = name.strip().lower()
    if key in _IDENTITY_ALIASES:
        key = "identity"
    cls = REGISTRY.get(key)
    if cls is None:
        raise _unknown(name)
    if cls is Crop and "box" not in params:
        raise ValueError("crop needs a box: get_transform('crop', box=(x0, y0, x1, y1))")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {key!r}: {exc}") from exc


@dataclass(frozen=True)
class Compose(Transform):
    """A chain of transforms applied left to right; named by its steps joined with ``+``."""

    steps: tuple[Transform, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        flat: list[Transform] = []
        for step in self.steps:
            flat.extend(step.steps if isinstance(step, Compose) else (step,))
        if self.size is not None:
            flat = _bind_chain(flat, self.size)
        object.__setattr__(self, "steps", tuple(flat))

    @property  # type: ignore[override]
    def name(self) -> str:  # type: ignore[override]
        """Step names joined by ``+`` (``"identity"`` for an empty chain)."""
        return "+".join(step.name for step in self.steps) or "identity"

    @property  # type: ignore[override]
    def geometric(self) -> bool:  # type: ignore[override]
        """Whether any step changes coordinates."""
        return any(step.geometric for step in self.steps)

    @property  # type: ignore[override]
    def exact_inverse(self) -> bool:  # type: ignore[override]
        """Whether every step restores pixels exactly."""
        return all(step.exact_inverse for step in self.steps)

    def apply(self, image: ImageT) -> ImageT:
        """Apply every step in order."""
        size = image_size(image)
        if self.geometric and self.size is not None and size != self.size:
            raise ValueError(f"{self.name}: bound to size {self.size} but the image is {size}")
        for step in self.steps:
            image = step.apply(image)
        return image

    def _apply_pil(self, image: Image.Image) -> Image.Image:  # pragma: no cover - via apply
        return self.apply(image)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:  # pragma: no cover - via apply
        return self.apply(array)

    def _output_size(self, size: Size) -> Size:
        for step in self.steps:
            size = step.output_size(size)
        return size

    def map_point(self, point: Sequence[float], size: Sequence[int] | None = None) -> Point:
        """Map ``point`` through every step."""
        current = self._resolve(size, "map_point") if self.geometric else None
        x, y = float(point[0]), float(point[1])
        for step in self.steps:
            x, y = step.map_point((x, y), current)
            if current is not None:
                current = step.output_size(current)
        return x, y

    def inverse(self) -> Transform:
        """The inverse steps in reverse order (bound when this chain is bound)."""
        steps = self.steps if self.size is None else _bind_chain(self.steps, self.size)
        return Compose(
            steps=tuple(step.inverse() for step in reversed(steps)),
            size=None if self.size is None else self.output_size(),
        )

    def params(self) -> dict[str, Any]:
        """No parameters of its own; see :meth:`to_dict`."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": "a+b", "steps": [a.to_dict(), b.to_dict()]}`` (+ ``"size"`` if bound)."""
        data: dict[str, Any] = {
            "name": self.name,
            "steps": [_unbound_dict(step) for step in self.steps],
        }
        if self.size is not None:
            data["size"] = list(self.size)
        return data


def _unbound_dict(step: Transform) -> dict[str, Any]:
    data = step.to_dict()
    data.pop("size", None)
    return data


def _bind_chain(steps: Sequence[Transform], size: Size) -> list[Transform]:
    bound = []
    for step in steps:
        bound.append(step.bind(size))
        size = step.output_size(size)
    return bound


def compose(*transforms: Transform | str | Mapping[str, Any]) -> Compose:
    """Chain transforms (objects, names or dicts), applied left to right."""
    return Compose(steps=tuple(parse_transform(t) for t in transforms))


def parse_transform(spec: Transform | str | Mapping[str, Any] | Sequence[Any] | None) -> Transform:
    """Turn any stored form into a :class:`Transform`.

    Args:
        spec: A transform, a name (``"rotate_90"``), a chain name
            (``"rotate_90+flip_horizontal"``), a dict from :meth:`Transform.to_dict`, a list
            of any of these (a chain), or ``None`` (identity).

    Raises:
        ValueError: An unknown name (listing the valid ones) or bad parameters.
    """
    if spec is None:
        return Identity()
    if isinstance(spec, Transform):
        return spec
    if isinstance(spec, str):
        parts = [part.strip() for part in spec.split("+")]
        if len(parts) == 1:
            return get_transform(parts[0])
        return Compose(steps=tuple(get_transform(part) for part in parts))
    if isinstance(spec, Mapping):
        return transform_from_dict(spec)
    if isinstance(spec, Sequence):
        return Compose(steps=tuple(parse_transform(item) for item in spec))
    raise TypeError(f"cannot read a transform from {type(spec).__name__}")


def transform_from_dict(data: Mapping[str, Any]) -> Transform:
    """Inverse of :meth:`Transform.to_dict` (also accepts a bare ``{"name": "a+b"}``)."""
    if "name" not in data:
        raise ValueError(f"a transform dict needs a 'name', got keys {sorted(data)}")
    params = {key: value for key, value in data.items() if key not in ("name", "steps")}
    name = str(data["name"])
    if "steps" in data or "+" in name:
        if "steps" in data:
            steps = tuple(transform_from_dict(step) for step in data["steps"])
        else:
            steps = tuple(get_transform(part) for part in name.split("+"))
        extra = sorted(set(params) - {"size"})
        if extra:
            raise ValueError(f"a chain takes no parameters of its own, got {extra}")
        return Compose(steps=steps, **params)
    return get_transform(name, **params)


def inverse_name(name: str) -> str:
    """The name of the transform that exactly undoes ``name`` (a name or chain name).

    ``rotate_X`` gives ``rotate_{(360 - X) % 360}``, flips give themselves and a chain gives
    the inverses in reverse order.

    Raises:
        ValueError: Unknown name, or a transform with no parameter-free exact inverse
            (``crop``, degradations).
    """
    steps = _names(name)
    inverses = []
    for step in steps:
        if step == "identity":
            continue
        if step not in ORIENTATIONS:
            raise ValueError(
                f"{step!r} has no exact inverse by name; invertible names: "
                f"{', '.join(ORIENTATIONS)}"
            )
        inverses.append(_ORIENTATION_INVERSE[step])
    return "+".join(reversed(inverses)) or "identity"


def fix_for(name: str) -> str | None:
    """The transform a model should apply to undo ``name``, or ``None`` when none exists.

    Orientation transforms (and chains of them) give :func:`inverse_name`; ``identity`` gives
    ``None`` (nothing to fix), as do ``crop`` (the lost pixels cannot come back) and the
    degradations (no exact fix; enhancing is up to the model).

    Raises:
        ValueError: Unknown name.
    """
    steps = [step for step in _names(name) if step != "identity"]
    if not steps or any(step not in ORIENTATIONS for step in steps):
        return None
    return inverse_name(name)


def _names(name: str) -> list[str]:
    steps = []
    for part in str(name).split("+"):
        key = part.strip().lower()
        key = "identity" if key in _IDENTITY_ALIASES else key
        if key not in REGISTRY:
            raise _unknown(part)
        steps.append(key)
    return steps


# -- names as records store them -----------------------------------------------------------------
TransformSpec = str | Sequence[Any] | Transform | Mapping[str, Any] | None
"""Any stored or in-code form of a record's transform."""


def _list_text(text: str) -> list[Any] | None:
    """The list that ``text`` spells in JSON or Python literal syntax, else ``None``."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, list):
            return value
    return None


def transform_names(transform: TransformSpec) -> list[str]:
    """The names of the transforms applied, in order, whatever form they are stored in.

    Args:
        transform: ``None``; a name (``"rotate_90"``); a chain name (``"crop+rotate_90"``);
            a list, tuple or array of names (the release's form, ``["crop", "rotate_90"]``);
            the text of such a list (``"['crop', 'rotate_90']"``, as older writers stored
            it); a :class:`Transform`; or a dict from :meth:`Transform.to_dict`.

    Returns:
        The step names, stripped, with identity names (``""``, ``"none"``, ``"identity"``,
        ``"original"``) left out; ``[]`` when nothing was applied. Names are not checked
        against the registry (release data may carry names this package does not know).

    Raises:
        TypeError: ``transform`` (or a list item) is of no supported kind.
    """
    if transform is None:
        return []
    if isinstance(transform, Transform):
        items: list[Any] = list(transform.steps) if isinstance(transform, Compose) else [transform]
        return [n for item in items for n in _split(item.name)]
    if isinstance(transform, str):
        listed = _list_text(transform)
        return _split(transform) if listed is None else transform_names(listed)
    if isinstance(transform, Mapping):
        if "steps" in transform:
            return transform_names(list(transform["steps"]))
        return transform_names(str(transform.get("name", "")))
    if isinstance(transform, (Sequence, np.ndarray)):
        names: list[str] = []
        for item in list(transform):
            if isinstance(item, (str, Transform, Mapping)):
                names.extend(transform_names(item))
            else:
                raise TypeError(f"a transform list holds names, got {type(item).__name__}")
        return names
    raise TypeError(f"cannot read transform names from {type(transform).__name__}")


def _split(name: str) -> list[str]:
    parts = (part.strip() for part in str(name).split("+"))
    return [part for part in parts if part.lower() not in _IDENTITY_ALIASES]


def transform_for_row(transform: TransformSpec) -> str | list[str] | None:
    """The form a row stores: the release's list for a chain, a name for a single transform.

    A list stays the same list (its items as strings; only chain-named items are expanded),
    so release rows are written back unchanged; a single name stays a string; a chain
    (``"crop+rotate_90"``, a :class:`Compose`) becomes the list of its step names
    (``["crop", "rotate_90"]``, identity steps left out); nothing applied gives ``None``.
    A list is never turned into its text.

    Raises:
        TypeError: ``transform`` is of no supported kind.
    """
    if transform is None:
        return None
    if isinstance(transform, str) and _list_text(transform) is not None:
        transform = _list_text(transform)
    if isinstance(transform, (list, tuple, np.ndarray)):
        stored: list[str] = []
        for item in list(transform):
            if not isinstance(item, (str, Transform)):
                raise TypeError(f"a transform list holds names, got {type(item).__name__}")
            name = item.name if isinstance(item, Transform) else str(item)
            stored.extend(transform_names(name) if "+" in name else [name])
        return stored
    if isinstance(transform, (str, Transform)):
        names = transform_names(transform)
        chain = isinstance(transform, Compose) or "+" in str(transform)
        if not names:
            return None
        return names if chain else names[0]
    return transform_names(transform)


def expected_fixes(transform: TransformSpec) -> list[str]:
    """The operations the release's reward expects a model to use on a record.

    As the release's reward computes them: each ``rotate_X`` expects its inverse
    ``rotate_{(360 - X) % 360}`` (nothing when that is no quarter turn, or ``X`` is no
    integer); every other name (flips, which are their own inverse, ``crop``, and any
    other name) is expected as it is. The release keeps a set; this returns the names in
    the order of the transforms, each once. Accepts every form :func:`transform_names`
    reads; chain names (``"crop+rotate_90"``, this package's, never the release's) are
    split into their steps first.

    Example:
        >>> expected_fixes(["crop", "rotate_90"]), expected_fixes("flip_vertical")
        (['crop', 'rotate_270'], ['flip_vertical'])
        >>> expected_fixes(None), expected_fixes("rotate_180+rotate_180")
        ([], ['rotate_180'])
    """
    fixes: list[str] = []
    for name in transform_names(transform):
        fix: str | None = name
        if name.startswith("rotate_"):
            fix = None
            try:
                inverse = (360 - int(name.split("_")[1]) % 360) % 360
            except ValueError:
                inverse = 0
            if inverse in (90, 180, 270):
                fix = f"rotate_{inverse}"
        if fix is not None and fix not in fixes:
            fixes.append(fix)
    return fixes


_ORIENTATION_INVERSE = {
    "rotate_90": "rotate_270",
    "rotate_180": "rotate_180",
    "rotate_270": "rotate_90",
    "flip_horizontal": "flip_horizontal",
    "flip_vertical": "flip_vertical",
}

__all__ = [
    "DEGRADATIONS",
    "FLIPS",
    "ORIENTATIONS",
    "REGISTRY",
    "ROTATIONS",
    "TRANSFORM_NAMES",
    "Blur",
    "Box",
    "Bright",
    "Compose",
    "Crop",
    "Degradation",
    "Dim",
    "FlipHorizontal",
    "FlipVertical",
    "Identity",
    "Jpeg",
    "LowContrast",
    "Noise",
    "Point",
    "Resize",
    "Rotate90",
    "Rotate180",
    "Rotate270",
    "ScaleDown",
    "Size",
    "Transform",
    "TransformSpec",
    "Uncrop",
    "compose",
    "expected_fixes",
    "fix_for",
    "get_transform",
    "image_size",
    "inverse_name",
    "parse_transform",
    "transform_for_row",
    "transform_from_dict",
    "transform_names",
]
