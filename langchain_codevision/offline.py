"""Moved to :mod:`langchain_codevision.models.policies`; this path keeps working."""

from .models.policies import MEASURE_CODE, OfflineOrientationModel

__all__ = ["MEASURE_CODE", "OfflineOrientationModel"]
