"""Moved to :mod:`langchain_codevision.models.policies`; this path keeps working."""

from .models.policies import TextPolicyModel

__all__ = ["TextPolicyModel"]
