"""Geometric transforms with exact coordinate maps: quarter turns, flips, crop, resize.

Rotations turn counter-clockwise exactly like PIL's ``Image.rotate(angle, expand=True)``
(:class:`Rotate90` is ``rotate(90, expand=True)``); the fix for an applied ``rotate_X`` is
``rotate_{(360 - X) % 360}``, and a flip is its own fix. Quarter turns and flips restore
every pixel when inverted. A :class:`Crop` loses what lies outside its box: its inverse
(:class:`Uncrop`) pastes the crop back into a canvas of the original size filled with
``fill`` (0), so pixels come back exactly inside the box only; coordinates always map back
exactly.

Example:
    >>> from PIL import Image
    >>> from langchain_codevision.data.geometry import Rotate90
    >>> image = Image.new("RGB", (40, 30))
    >>> turn = Rotate90().bind(image.size)
    >>> turn.apply(image).size
    (30, 40)
    >>> turn.map_box((0, 0, 10, 5))
    (0.0, 30.0, 5.0, 40.0)
    >>> turn.inverse().map_box((0.0, 30.0, 5.0, 40.0))
    (0.0, 0.0, 10.0, 5.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from langchain_codevision.data._transform_base import Point, Size, Transform


@dataclass(frozen=True)
class _QuarterTurn(Transform):
    """Counter-clockwise rotation by ``turns`` quarter turns."""

    geometric: ClassVar[bool] = True
    exact_inverse: ClassVar[bool] = True
    turns: ClassVar[int] = 1
    _pil: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_90

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        return image.transpose(self._pil)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(array, k=self.turns, axes=(0, 1)))

    def _output_size(self, size: Size) -> Size:
        return size if self.turns == 2 else (size[1], size[0])

    def _map_point(self, point: Point, size: Size) -> Point:
        (x, y), (width, height) = point, size
        if self.turns == 1:
            return y, width - x
        if self.turns == 2:
            return width - x, height - y
        return height - y, x

    def inverse(self) -> Transform:
        """The opposite quarter turn, bound to the output size when this one is bound."""
        cls = _TURNS[(4 - self.turns) % 4]
        return cls(size=None if self.size is None else self.output_size())


@dataclass(frozen=True)
class Rotate90(_QuarterTurn):
    """Rotate 90 degrees counter-clockwise (PIL ``rotate(90, expand=True)``)."""

    name: ClassVar[str] = "rotate_90"
    turns: ClassVar[int] = 1
    _pil: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_90


@dataclass(frozen=True)
class Rotate180(_QuarterTurn):
    """Rotate 180 degrees."""

    name: ClassVar[str] = "rotate_180"
    turns: ClassVar[int] = 2
    _pil: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_180


@dataclass(frozen=True)
class Rotate270(_QuarterTurn):
    """Rotate 270 degrees counter-clockwise, i.e. 90 clockwise (PIL ``rotate(270, ...)``)."""

    name: ClassVar[str] = "rotate_270"
    turns: ClassVar[int] = 3
    _pil: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_270


_TURNS: dict[int, type[_QuarterTurn]] = {1: Rotate90, 2: Rotate180, 3: Rotate270}


@dataclass(frozen=True)
class FlipHorizontal(Transform):
    """Mirror left to right (``x -> width - x``); its own inverse."""

    name: ClassVar[str] = "flip_horizontal"
    geometric: ClassVar[bool] = True
    exact_inverse: ClassVar[bool] = True

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array[:, ::-1])

    def _map_point(self, point: Point, size: Size) -> Point:
        return size[0] - point[0], point[1]

    def inverse(self) -> Transform:
        """The same flip."""
        return self


@dataclass(frozen=True)
class FlipVertical(Transform):
    """Mirror top to bottom (``y -> height - y``); its own inverse."""

    name: ClassVar[str] = "flip_vertical"
    geometric: ClassVar[bool] = True
    exact_inverse: ClassVar[bool] = True

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array[::-1])

    def _map_point(self, point: Point, size: Size) -> Point:
        return point[0], size[1] - point[1]

    def inverse(self) -> Transform:
        """The same flip."""
        return self


def _int_box(box: Sequence[Any], what: str) -> tuple[int, int, int, int]:
    if len(box) != 4:
        raise ValueError(f"{what} box needs 4 integers (x0, y0, x1, y1), got {list(box)}")
    values = []
    for v in box:
        if float(v) != int(float(v)):
            raise ValueError(f"{what} box must hold whole pixel coordinates, got {list(box)}")
        values.append(int(float(v)))
    x0, y0, x1, y1 = values
    if x0 < 0 or y0 < 0 or x1 <= x0 or y1 <= y0:
        raise ValueError(f"{what} box must satisfy 0 <= x0 < x1 and 0 <= y0 < y1, got {values}")
    return x0, y0, x1, y1


def _check_inside(box: tuple[int, int, int, int], size: Size, what: str) -> None:
    if box[2] > size[0] or box[3] > size[1]:
        raise ValueError(f"{what} box {list(box)} lies outside the {size[0]}x{size[1]} image")


@dataclass(frozen=True)
class Crop(Transform):
    """Keep ``box`` (integer ``(x0, y0, x1, y1)``, which must lie inside the image).

    The inverse is :class:`Uncrop` and needs the original size (bind the crop first).
    """

    name: ClassVar[str] = "crop"
    geometric: ClassVar[bool] = True
    box: tuple[int, int, int, int] = (0, 0, 1, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "box", _int_box(self.box, "crop"))
        if self.size is not None:
            _check_inside(self.box, self.size, "crop")

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        _check_inside(self.box, image.size, "crop")
        return image.crop(self.box)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        _check_inside(self.box, (array.shape[1], array.shape[0]), "crop")
        return array[y0:y1, x0:x1].copy()

    def _output_size(self, size: Size) -> Size:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    def _map_point(self, point: Point, size: Size) -> Point:
        return point[0] - self.box[0], point[1] - self.box[1]

    def inverse(self) -> Transform:
        """An :class:`Uncrop` back into the bound original size.

        Raises:
            ValueError: The crop is unbound (the original size is unknown).
        """
        if self.size is None:
            raise ValueError(
                "crop.inverse needs the original image size: bind it first with .bind(size)"
            )
        return Uncrop(box=self.box, canvas_size=self.size, size=self.output_size())


@dataclass(frozen=True)
class Uncrop(Transform):
    """Paste a crop back at ``box`` into a ``canvas_size`` canvas filled with ``fill``."""

    name: ClassVar[str] = "uncrop"
    geometric: ClassVar[bool] = True
    exact_inverse: ClassVar[bool] = True
    box: tuple[int, int, int, int] = (0, 0, 1, 1)
    canvas_size: tuple[int, int] = (1, 1)
    fill: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "box", _int_box(self.box, "uncrop"))
        canvas = (int(self.canvas_size[0]), int(self.canvas_size[1]))
        object.__setattr__(self, "canvas_size", canvas)
        _check_inside(self.box, canvas, "uncrop")

    def _check_crop_size(self, size: Size) -> None:
        expected = (self.box[2] - self.box[0], self.box[3] - self.box[1])
        if size != expected:
            raise ValueError(f"uncrop expects a {expected[0]}x{expected[1]} image, got {size}")

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        self._check_crop_size(image.size)
        canvas = Image.new(image.mode, self.canvas_size, self.fill)
        if image.mode in ("P", "PA"):
            canvas.putpalette(image.getpalette() or [])
        canvas.paste(image, self.box[:2])
        return canvas

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        self._check_crop_size((array.shape[1], array.shape[0]))
        width, height = self.canvas_size
        canvas = np.full((height, width, *array.shape[2:]), self.fill, dtype=array.dtype)
        x0, y0, x1, y1 = self.box
        canvas[y0:y1, x0:x1] = array
        return canvas

    def _output_size(self, size: Size) -> Size:
        return self.canvas_size

    def _map_point(self, point: Point, size: Size) -> Point:
        return point[0] + self.box[0], point[1] + self.box[1]

    def inverse(self) -> Transform:
        """The :class:`Crop` of ``box`` (restores the pasted pixels exactly)."""
        return Crop(box=self.box, size=self.canvas_size)


@dataclass(frozen=True)
class Resize(Transform):
    """Resize to ``width`` x ``height`` (area averaging to shrink, bicubic to grow).

    Each axis scales by output/input, so coordinates map exactly; pixels do not round-trip.
    """

    name: ClassVar[str] = "resize"
    geometric: ClassVar[bool] = True
    width: int = 1
    height: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"resize needs a positive size, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def _output_size(self, size: Size) -> Size:
        return self.width, self.height

    def _map_point(self, point: Point, size: Size) -> Point:
        return point[0] * self.width / size[0], point[1] * self.height / size[1]

    def _shrinks(self, size: Size) -> bool:
        return self.width * self.height < size[0] * size[1]

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        resample = Image.Resampling.BOX if self._shrinks(image.size) else Image.Resampling.BICUBIC
        return image.resize((self.width, self.height), resample)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        shrink = self._shrinks((array.shape[1], array.shape[0]))
        native = array.dtype in (np.uint8, np.uint16, np.float32, np.float64)
        work = array if native else array.astype(np.float64)
        out = cv2.resize(
            work,
            (self.width, self.height),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC,
        )
        if array.ndim == 3 and out.ndim == 2:
            out = out[..., None]
        if not native:
            info = np.iinfo(array.dtype) if np.issubdtype(array.dtype, np.integer) else None
            if info is not None:
                out = np.clip(np.rint(out), info.min, info.max)
            out = out.astype(array.dtype)
        return out

    def inverse(self) -> Transform:
        """A resize back to the bound input size.

        Raises:
            ValueError: The transform is unbound (the input size is unknown).
        """
        if self.size is None:
            raise ValueError("resize.inverse needs the input size: bind it first with .bind(size)")
        return Resize(*self.size, size=(self.width, self.height))
