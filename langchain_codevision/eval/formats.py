"""The dataset formats the evaluation reads.

A leaf module (no imports), so the command line can list them without loading the data
package.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

FORMATS: tuple[str, ...] = ("mvtoolbench", "ocrbench", "chartqa", "generic")
"""Every ``--format`` value."""
