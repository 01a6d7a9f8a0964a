"""Make checkpointers store the episode's images as lossless PNG, encoded lazily.

LangGraph checkpoints the raw input of a run, and its default serializer cannot encode PIL
images. :func:`image_aware` wraps a checkpointer's serializer so that PIL images and image
arrays anywhere in plain containers are stored as lossless PNG bytes (which the graph reads
back like any other image input), and trajectory images
(:class:`~langchain_codevision.images.TrajectoryImage`, pixels in memory) as plain dicts of
PNG bytes and metadata. Each image is encoded once, the first time a checkpoint needs it,
however many checkpoints hold it; loading turns those dicts back into trajectory images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from langchain_codevision.images import (
    TrajectoryImage,
    as_trajectory_image,
    encode_image,
    serialisable_image_input,
)

__all__ = ["ImageAwareSerializer", "image_aware"]


_STORED_KEYS = frozenset({"png", "index", "origin", "step", "width", "height"})


def _convert(value: Any) -> Any:
    if isinstance(value, TrajectoryImage):
        return value.to_dict()
    if isinstance(value, Image.Image):
        return encode_image(value, "png")
    if isinstance(value, np.ndarray):
        return serialisable_image_input(None, value).to_dict()["png"]
    if isinstance(value, dict):
        return {key: _convert(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_convert(item) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_convert(item) for item in value)
    return value


def _revive(value: Any) -> Any:
    if isinstance(value, dict):
        if value.keys() == _STORED_KEYS and isinstance(value["png"], bytes):
            return as_trajectory_image(value)
        return {key: _revive(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_revive(item) for item in value]
    return value


class ImageAwareSerializer:
    """A serializer wrapper: images become PNG bytes, everything else passes through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialise ``obj`` after converting images."""
        return self.inner.dumps_typed(_convert(obj))

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialise with the wrapped serializer; stored trajectory images come back."""
        return _revive(self.inner.loads_typed(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def image_aware(checkpointer: Any) -> Any:
    """Wrap ``checkpointer.serde`` (in place, once) so that image inputs serialise."""
    serde = getattr(checkpointer, "serde", None)
    if serde is not None and not isinstance(serde, ImageAwareSerializer):
        checkpointer.serde = ImageAwareSerializer(serde)
    return checkpointer
