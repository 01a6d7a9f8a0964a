"""Find TrueType fonts on this machine for rendering text with known content.

Fonts are looked up by file name (case-insensitive, with or without ``.ttf``/``.otf``) in
matplotlib's bundled font folder (the DejaVu family, when matplotlib is installed), the
folders listed in ``CODEVISION_FONT_DIRS`` (``os.pathsep``-separated), and the usual system
and user font folders. A missing font raises :class:`FontNotFoundError`, naming the font and
every folder searched.

Example:
    >>> from langchain_codevision.data.fonts import load_font
    >>> load_font("DejaVuSans", 24).size
    24
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

DEFAULT_FONTS: tuple[str, ...] = (
    "DejaVuSans",
    "DejaVuSerif",
    "DejaVuSansMono",
    "DejaVuSans-Bold",
    "DejaVuSerif-Bold",
    "DejaVuSans-Oblique",
)
"""Fonts the renderers draw from (all in matplotlib's bundled DejaVu family)."""

_SUFFIXES = (".ttf", ".otf", ".ttc")


class FontNotFoundError(LookupError):
    """A requested font is not installed in any searched folder."""


def font_dirs() -> list[Path]:
    """The folders searched for fonts, in order (only those that exist)."""
    candidates: list[Path] = []
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    extra = os.environ.get("CODEVISION_FONT_DIRS", "")
    candidates += [Path(p) for p in extra.split(os.pathsep) if p]
    candidates += [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        Path.home() / ".local" / "share" / "fonts",
        Path.home() / ".fonts",
        Path("/Library/Fonts"),
        Path("C:/Windows/Fonts"),
    ]
    return [p for p in dict.fromkeys(candidates) if p.is_dir()]


@lru_cache(maxsize=1)
def available_fonts() -> dict[str, Path]:
    """Installed fonts by lower-case file stem (the first folder that has one wins)."""
    found: dict[str, Path] = {}
    for folder in font_dirs():
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                found.setdefault(path.stem.lower(), path)
    return found


def find_font(name: str) -> Path:
    """The file of font ``name`` (a file stem like ``"DejaVuSerif-Bold"`` or a path).

    Raises:
        FontNotFoundError: The font is not installed; the message names what was searched.
    """
    if Path(name).suffix.lower() in _SUFFIXES and Path(name).is_file():
        return Path(name)
    key = Path(name).stem.lower() if Path(name).suffix.lower() in _SUFFIXES else name.lower()
    path = available_fonts().get(key)
    if path is None:
        searched = ", ".join(str(p) for p in font_dirs()) or "no font folders exist"
        raise FontNotFoundError(
            f"font {name!r} not found; searched: {searched}. Install it, or add its folder "
            "to CODEVISION_FONT_DIRS"
        )
    return path


@lru_cache(maxsize=256)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """Font ``name`` at ``size`` pixels (cached).

    Raises:
        FontNotFoundError: The font is not installed.
    """
    return ImageFont.truetype(str(find_font(name)), size)


def usable_fonts(names: tuple[str, ...] = DEFAULT_FONTS) -> tuple[str, ...]:
    """The subset of ``names`` installed here.

    Raises:
        FontNotFoundError: None of them is installed.
    """
    usable = tuple(n for n in names if n.lower() in available_fonts())
    if not usable:
        find_font(names[0] if names else "(no font names given)")  # raises, naming folders
    return usable
