"""Photometric degradations: the image gets harder to read, its geometry barely changes.

These build the robustness and "emergent tool" cases (a model that enhances contrast,
brightens, sharpens or zooms before reading). Every one is deterministic: the same
parameters (and ``seed`` for :class:`Noise`) give the same pixels.

* :class:`LowContrast` pulls values towards the mean, :class:`Dim` darkens,
  :class:`Bright` washes out towards white, :class:`Blur` is a Gaussian blur,
  :class:`Noise` adds Gaussian noise, :class:`Jpeg` re-encodes at a low quality and
  :class:`ScaleDown` shrinks the image (its coordinate mapping is exact).

Arrays: ``uint8`` data spans 0..255, ``uint16``/``int32`` 0..65535 and float data 0..1
(floats are not clipped). A 2- or 4-channel array's last channel is alpha and is kept.
PIL modes ``1``, ``P``, ``CMYK`` and the like are converted to ``L``/``RGB``/``RGBA`` first.

Example:
    >>> from PIL import Image
    >>> from langchain_codevision.data.degradations import Blur, Noise
    >>> image = Image.new("RGB", (64, 64), "white")
    >>> Noise(sigma=0.05, seed=3).apply(image).size
    (64, 64)
    >>> Blur(radius=2).inverse().name
    'identity'
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np
from PIL import Image

from langchain_codevision.data._transform_base import Identity, Size, Transform
from langchain_codevision.data.geometry import Resize

_PIL_NATIVE = {"L", "LA", "RGB", "RGBA", "I;16", "I", "F"}


def _value_range(array: np.ndarray) -> float:
    if array.dtype == np.uint8:
        return 255.0
    if np.issubdtype(array.dtype, np.integer):
        return 65535.0
    if np.issubdtype(array.dtype, np.floating):
        return 1.0
    raise ValueError(f"cannot degrade an array of dtype {array.dtype}; use uint8, uint16 or float")


def _to_dtype(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    if np.issubdtype(like.dtype, np.integer):
        top = _value_range(like)
        return np.clip(np.rint(values), 0, top).astype(like.dtype)
    return values.astype(like.dtype)


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim == 3 and array.shape[2] in (2, 4):
        return array[..., :-1], array[..., -1:]
    return array, None


def _pil_workable(image: Image.Image) -> Image.Image:
    if image.mode in _PIL_NATIVE:
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


@dataclass(frozen=True)
class Degradation(Transform):
    """A pixel-value change: coordinates stay put, so the inverse is the coordinate identity."""

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        source = _pil_workable(image)
        result = self._apply_array(np.asarray(source))
        return Image.fromarray(np.ascontiguousarray(result))

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        colour, alpha = _split_alpha(array)
        changed = _to_dtype(self._degrade(colour.astype(np.float64), _value_range(array)), array)
        if alpha is None:
            return changed
        return np.concatenate([changed, alpha], axis=-1)

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        raise NotImplementedError

    def inverse(self) -> Transform:
        """The coordinate identity (pixels cannot be restored)."""
        return Identity(size=self.size)


def _check_unit(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    if not low < value <= high:
        raise ValueError(f"{name} must be in ({low}, {high}], got {value}")


@dataclass(frozen=True)
class LowContrast(Degradation):
    """Pull values towards the image mean: ``mean + (v - mean) * factor``."""

    name: ClassVar[str] = "low_contrast"
    factor: float = 0.35

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_unit("low_contrast factor", self.factor)

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        mean = float(values.mean()) if values.size else 0.0
        return mean + (values - mean) * self.factor


@dataclass(frozen=True)
class Dim(Degradation):
    """Darken: ``v * factor``."""

    name: ClassVar[str] = "dim"
    factor: float = 0.35

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_unit("dim factor", self.factor)

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        return values * self.factor


@dataclass(frozen=True)
class Bright(Degradation):
    """Wash out towards white: ``v + (top - v) * amount``."""

    name: ClassVar[str] = "bright"
    amount: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.amount < 1.0:
            raise ValueError(f"bright amount must be in (0, 1), got {self.amount}")

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        return values + (top - values) * self.amount


@dataclass(frozen=True)
class Blur(Degradation):
    """Gaussian blur with standard deviation ``radius`` pixels (reflected borders)."""

    name: ClassVar[str] = "blur"
    radius: float = 2.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.radius > 0:
            raise ValueError(f"blur radius must be positive, got {self.radius}")

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        planes = values[..., None] if values.ndim == 2 else values
        out = np.empty_like(planes, dtype=np.float32)
        for c in range(planes.shape[2]):
            out[..., c] = cv2.GaussianBlur(
                planes[..., c].astype(np.float32),
                (0, 0),
                sigmaX=self.radius,
                borderType=cv2.BORDER_REFLECT,
            )
        return out[..., 0] if values.ndim == 2 else out


@dataclass(frozen=True)
class Noise(Degradation):
    """Add Gaussian noise with standard deviation ``sigma`` (fraction of the value range)."""

    name: ClassVar[str] = "noise"
    sigma: float = 0.08
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_unit("noise sigma", self.sigma)

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return values + rng.normal(0.0, self.sigma * top, size=values.shape)


@dataclass(frozen=True)
class Jpeg(Degradation):
    """Re-encode as JPEG at ``quality`` (1..95): block and ringing artefacts."""

    name: ClassVar[str] = "jpeg"
    quality: int = 12

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.quality <= 95:
            raise ValueError(f"jpeg quality must be in 1..95, got {self.quality}")

    def _degrade(self, values: np.ndarray, top: float) -> np.ndarray:
        planes = values[..., 0] if values.ndim == 3 and values.shape[2] == 1 else values
        if planes.ndim == 3 and planes.shape[2] != 3:
            raise ValueError(f"jpeg needs 1 or 3 colour channels, got {planes.shape[2]}")
        as_bytes = np.clip(np.rint(planes * (255.0 / top)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(as_bytes).save(buffer, format="JPEG", quality=self.quality)
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer), dtype=np.float64) * (top / 255.0)
        return decoded.reshape(values.shape)


@dataclass(frozen=True)
class ScaleDown(Degradation):
    """Shrink by ``factor`` (area resampling); the output side is ``max(1, round(side*f))``.

    Coordinates map exactly (each axis scales by output/input). The inverse resizes back to
    the bound size: coordinates come back exactly, pixels approximately.
    """

    name: ClassVar[str] = "scale_down"
    geometric: ClassVar[bool] = True
    factor: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"scale_down factor must be in (0, 1), got {self.factor}")

    def _output_size(self, size: Size) -> Size:
        return max(1, round(size[0] * self.factor)), max(1, round(size[1] * self.factor))

    def _map_point(self, point: tuple[float, float], size: Size) -> tuple[float, float]:
        return Resize(*self._output_size(size))._map_point(point, size)

    def _apply_pil(self, image: Image.Image) -> Image.Image:
        width, height = self._output_size(image.size)
        return Resize(width, height).apply(image)

    def _apply_array(self, array: np.ndarray) -> np.ndarray:
        width, height = self._output_size((array.shape[1], array.shape[0]))
        return Resize(width, height).apply(array)

    def inverse(self) -> Transform:
        """A :class:`Resize` back to the bound input size.

        Raises:
            ValueError: The transform is unbound (the original size is unknown).
        """
        if self.size is None:
            raise ValueError(
                "scale_down.inverse needs the original image size: bind it first with .bind(size)"
            )
        return Resize(*self.size, size=self.output_size())
