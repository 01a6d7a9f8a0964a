"""Moved to :mod:`langchain_codevision.loop.checkpointing`; this path keeps working."""

from .loop.checkpointing import ImageAwareSerializer, image_aware

__all__ = ["ImageAwareSerializer", "image_aware"]
