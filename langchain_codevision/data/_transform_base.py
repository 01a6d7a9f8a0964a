"""The :class:`Transform` base class shared by geometric transforms and degradations.

Coordinates are continuous pixel coordinates: an image of size ``(width, height)`` covers
``[0, width] x [0, height]`` and pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``. A box is
``(x0, y0, x1, y1)`` with ``x0 <= x1`` and ``y0 <= y1``. With this convention every
transform here maps boxes exactly (all of them are axis aligned), and the centre of a pixel
maps to the centre of the pixel it lands on.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

Size = tuple[int, int]
"""``(width, height)`` of an image."""
Point = tuple[float, float]
"""``(x, y)`` in continuous pixel coordinates."""
Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in continuous pixel coordinates."""

ImageT = TypeVar("ImageT", Image.Image, np.ndarray)


def image_size(image: Image.Image | np.ndarray) -> Size:
    """The ``(width, height)`` of a PIL image or an ``HxW`` / ``HxWxC`` array.

    Raises:
        TypeError: ``image`` is neither a PIL image nor a numpy array.
        ValueError: The array is not two- or three-dimensional.
    """
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"an image array must be HxW or HxWxC, got shape {image.shape}")
        return int(image.shape[1]), int(image.shape[0])
    raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


def _as_size(size: Sequence[int]) -> Size:
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"an image size must be positive, got {tuple(size)}")
    return width, height


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a parameter value (tuples become lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Transform(ABC):
    """An image transform that also maps points and boxes.

    Subclasses are frozen dataclasses whose fields are their parameters. ``size`` is the
    input size the transform is bound to (``None`` = unbound); geometric coordinate mapping
    needs it, either bound or passed per call.

    Attributes:
        name: The name stored on records (``"rotate_90"``, ``"blur"``, ...).
        geometric: Whether coordinates change.
        exact_inverse: Whether ``inverse().apply(apply(image))`` restores every pixel.
    """

    name: ClassVar[str] = ""
    geometric: ClassVar[bool] = False
    exact_inverse: ClassVar[bool] = False

    size: Size | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", _as_size(self.size))

    # -- images -----------------------------------------------------------------------------
    def apply(self, image: ImageT) -> ImageT:
        """Transform a PIL image (any mode) or a numpy array; returns the same kind."""
        size = image_size(image)
        if self.geometric and self.size is not None and size != self.size:
            raise ValueError(
                f"{self.name}: bound to size {self.size} but the image is {size}; "
                "use .bind(image_size) or an unbound transform"
            )
        if isinstance(image, Image.Image):
            return self._apply_pil(image)
        return self._apply_array(image)

    def __call__(self, image: ImageT) -> ImageT:
        """Same as :meth:`apply`."""
        return self.apply(image)

    @abstractmethod
    def _apply_pil(self, image: Image.Image) -> Image.Image: ...

    @abstractmethod
    def _apply_array(self, array: np.ndarray) -> np.ndarray: ...

    # -- geometry ---------------------------------------------------------------------------
    def output_size(self, size: Sequence[int] | None = None) -> Size:
        """Size of the output for an input of ``size`` (default: the bound size)."""
        return self._output_size(self._resolve(size, "output_size"))

    def _output_size(self, size: Size) -> Size:
        return size

    def map_point(self, point: Sequence[float], size: Sequence[int] | None = None) -> Point:
        """Where ``point`` of the input image lands in the output image.

        Args:
            point: ``(x, y)`` in the input image.
            size: Input image size; defaults to the bound size.
        """
        x, y = float(point[0]), float(point[1])
        if not self.geometric:
            return x, y
        return self._map_point((x, y), self._resolve(size, "map_point"))

    def _map_point(self, point: Point, size: Size) -> Point:
        return point

    def map_box(self, box: Sequence[float], size: Sequence[int] | None = None) -> Box:
        """Where box ``(x0, y0, x1, y1)`` of the input image lands in the output image."""
        if len(box) != 4:
            raise ValueError(f"a box needs 4 numbers (x0, y0, x1, y1), got {list(box)}")
        ax, ay = self.map_point((box[0], box[1]), size)
        bx, by = self.map_point((box[2], box[3]), size)
        return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)

    def _resolve(self, size: Sequence[int] | None, what: str) -> Size:
        if size is not None:
            return _as_size(size)
        if self.size is not None:
            return self.size
        raise ValueError(
            f"{self.name}.{what} needs the input image size: pass size=(width, height) "
            "or bind the transform first with .bind(size)"
        )

    def bind(self, size: Sequence[int]) -> Transform:
        """A copy bound to input images of ``size`` (``(width, height)``)."""
        return dataclasses.replace(self, size=_as_size(size))

    @abstractmethod
    def inverse(self) -> Transform:
        """The transform that undoes this one (bound to the output size when bound).

        Geometric inverses map coordinates back exactly. Pixels come back exactly only when
        :attr:`exact_inverse` is true; a degradation's inverse is the coordinate identity.
        """

    # -- serialisation ----------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The parameters (dataclass fields other than ``size``), JSON friendly."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "size"
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` plus ``"size"`` when bound; see :meth:`from_dict`."""
        data: dict[str, Any] = {"name": self.name, **self.params()}
        if self.size is not None:
            data["size"] = list(self.size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transform:
        """Rebuild a transform (or chain) written by :meth:`to_dict`."""
        from langchain_codevision.data.transforms import transform_from_dict

        return transform_from_dict(data)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Identity(Transform):
    """Leaves images and coordinates unchanged (the name of an untransformed record)."""

    name: ClassVar[str] = "identity"
    exact_inverse: ClassVar[bool] = True

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        return image.copy()

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        return array.copy()

    def inverse(self) -> Transform:
        """Identity again."""
        return self
