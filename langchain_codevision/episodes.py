"""Moved to :mod:`langchain_codevision.loop.kernels`; this path keeps working."""

from .loop.kernels import EpisodeKernels, default_pool

__all__ = ["EpisodeKernels", "default_pool"]
