"""Helpers that live *inside* the kernel (loaded by path by the session preamble).

They move images between host and kernel as raw ``.npy`` files in the session's private
working directory (no PNG encode on the hot path), bind the selected image to the names the
CodeVision protocol expects before a cell runs, collect result images after it, cap printed
output at the source and reset the namespace between episodes.

This module must import nothing from ``langchain_codevision``: it runs in the kernel.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import gc
import json
import mmap
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

IMAGE_MIME = "application/vnd.codevision.image+json"
TRUNCATION_MARKER = "\n[... output truncated: more than {limit} characters ...]\n"
ARRAY_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
"""The image mode of an 8-bit array by its bands (an ``HxW`` array has one)."""


class CappedStream:
    """A proxy for ``sys.stdout``/``sys.stderr`` that drops text past a per-cell limit."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.written = 0
        self.dropped = 0

    def reset(self) -> None:
        self.written = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        n = len(text)
        room = self._limit - self.written
        if room <= 0:
            self.dropped += n
            return n
        if n > room:
            self._inner.write(text[:room])
            self._inner.write(TRUNCATION_MARKER.format(limit=self._limit))
            self.written = self._limit
            self.dropped += n - room
            return n
        self.written += n
        return self._inner.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PixelBuffer:
    """A reusable shared-memory file for outgoing pixels.

    Writing into already-mapped pages avoids allocating a new file per image. The buffer is
    rewound before each cell; the host reads a cell's images before the next cell starts.
    """

    FIRST_BYTES = 8 << 20
    """The buffer's first size; one that never grew past it is kept by :meth:`wipe`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.written = 0  # bytes from the start that may hold pixels (zeroed by wipe)
        self._map: mmap.mmap | None = None
        self._fd = -1

    def rewind(self) -> None:
        self.offset = 0

    def wipe(self) -> None:
        """Forget every pixel written: zero them in place, or remove a grown buffer's file.

        Zeroing keeps the file's pages, so the next episode's first result writes into pages
        it already has (a new 1000x1000 page's worth of tmpfs pages is some 730 faults);
        a buffer grown past :attr:`FIRST_BYTES` goes, with its memory.
        """
        self.offset = 0
        mapped = self._map
        if mapped is not None and self._still_ours() and len(mapped) <= self.FIRST_BYTES:
            zeros = np.frombuffer(mapped, dtype=np.uint8, count=min(self.written, len(mapped)))
            zeros.fill(0)
            del zeros  # the mapping may be closed or grown later: no view may outlive this
        else:
            self._close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.written = 0

    def _still_ours(self) -> bool:
        """Whether :attr:`path` is still the file this buffer has open.

        Not so when it was removed, or replaced by another file (which a reset must not keep).
        """
        try:
            found, held = os.stat(self.path, follow_symlinks=False), os.fstat(self._fd)
        except OSError:
            return False
        return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)

    def _ensure(self, needed: int) -> mmap.mmap:
        if self._map is not None and not os.path.exists(self.path):
            self._close()  # the file was removed: start a new one
        if self._map is None or needed > len(self._map):
            size = max(needed, 2 * (len(self._map) if self._map else 0), self.FIRST_BYTES)
            size = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.ftruncate(self._fd, size)
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(self._fd, size)
        return self._map

    def _close(self) -> None:
        if self._map is not None:
            self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
        self._map, self._fd = None, -1

    def write(self, data: bytes) -> tuple[int, int]:
        """Append ``data``; returns ``(offset, length)``."""
        start, view = self.reserve(len(data))
        with view:
            view[:] = data
        return start, len(data)

    def reserve(self, length: int) -> tuple[int, memoryview]:
        """Set ``length`` bytes aside at the end; their offset, and a view to fill and release.

        The view pins the mapping: release it (``with view:``) before the next reserve.
        """
        start = self.offset
        buffer = self._ensure(start + length)
        self.offset = (start + length + 63) // 64 * 64
        self.written = max(self.written, start + length)
        return start, memoryview(buffer)[start : start + length]

    def write_image(self, image: Image.Image) -> tuple[int, int]:
        """Append an ``L``/``LA``/``RGB``/``RGBA`` image's packed pixels; ``(offset, length)``.

        The pixels are copied once, straight into the mapped pages: from PIL's own memory
        where PIL hands it out (:func:`core_pixels`; an ``RGB`` image's padding byte dropped
        by OpenCV's vectorised conversion), else packed by PIL block by block (``tobytes``
        packs them into a new string first, then that is copied).
        """
        image.load()  # a lazily read file's mode and size are final from here on
        length = image.width * image.height * len(image.getbands())
        start, view = self.reserve(length)
        with view:
            done = _copy_core(image, view)
            if done != length:
                try:
                    done = _pack_into(image, view)
                except Exception:  # a PIL without the raw encoder this uses: pack, then copy
                    done = -1
            if done != length:
                view[:] = image.tobytes()
        return start, length


IN_PLACE_WRITERS = frozenset({"load", "applyTransform", "apply_in_place", "im", "readonly"})
"""Attributes through which code can write an image's pixels where neither PIL's
copy-on-write nor :class:`SharedImage` copies first (``image.load()[x, y] = ...``, the
core ``image.im``, ImageCms in place, or by clearing ``readonly``): a cell that names one
binds a private copy."""

INDIRECT_ACCESS = frozenset({"eval", "exec", "getattr", "setattr", "vars"})
"""Names through which a cell can reach any attribute without naming it."""


def _writes_pixels(tree: ast.Module) -> bool:
    """Whether a cell may write pixels in place behind PIL's back (see IN_PLACE_WRITERS)."""
    return any(
        (isinstance(node, ast.Attribute) and node.attr in IN_PLACE_WRITERS)
        or (isinstance(node, ast.Name) and node.id in INDIRECT_ACCESS)
        for node in ast.walk(tree)
    )


class SharedImage(Image.Image):
    """A read-only image on another image's pixels (see :func:`shared_view`).

    PIL writes the core of an image in two places without its copy-on-write:
    ``putpalette`` (which turns an ``L`` core into ``P``) and ``frombytes``. Here both copy
    the pixels first, as ``paste`` and the rest do, so a helper defined in an earlier cell
    cannot change the registered image through them either.
    """

    def putpalette(self, *args: Any, **kwargs: Any) -> None:
        self._ensure_mutable()
        super().putpalette(*args, **kwargs)

    def frombytes(self, *args: Any, **kwargs: Any) -> None:
        self._ensure_mutable()
        super().frombytes(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        """Equal to an image of the same pixels, shared or not (PIL's test wants one class)."""
        if type(other) in (Image.Image, SharedImage):
            plain = other.copy() if isinstance(other, SharedImage) else other
            return Image.Image.__eq__(self.copy(), plain)
        return super().__eq__(other)

    __hash__ = Image.Image.__hash__

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled, copied and deep-copied as a plain image of the same pixels."""
        import copy

        return copy.copy, (self.copy(),)


# shown to model code as what it is: a PIL image
SharedImage.__module__, SharedImage.__name__, SharedImage.__qualname__ = (
    "PIL.Image",
    "Image",
    "Image",
)


def shared_view(image: Image.Image) -> Image.Image:
    """An image on the same pixels as ``image``, which copies them before its first change.

    PIL's ``readonly`` flag does it: ``paste``, ``putpixel``, ``putdata``, ``putalpha`` and
    ``ImageDraw`` copy a read-only image's pixels first (``Image._ensure_mutable``), and its
    pixel access refuses writes; :class:`SharedImage` adds the two writers PIL leaves out.
    Binding one costs nothing, where a copy of a 1000x1000 page moves 4 MB before every cell.
    """
    view = image._new(image.im)
    view.__class__ = SharedImage
    view.readonly = 1
    return view


class LazyDraw(ImageDraw.ImageDraw):
    """``ImageDraw.Draw(image)``, made on first use (making it copies a shared image)."""

    def __init__(self, image: Image.Image) -> None:
        self._cv_image = image

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_cv_") or "_cv_ready" in self.__dict__:
            raise AttributeError(name)
        self.__dict__["_cv_ready"] = True
        ImageDraw.ImageDraw.__init__(self, self._cv_image)
        return getattr(self, name)


class _BindTransformer(ast.NodeTransformer):
    """Prepend ``__cv_runtime__.before_cell()`` to cells that asked for an image binding."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if self.runtime.pending_request() is None:
            return node
        call = ast.parse(f"__cv_runtime__.before_cell({_writes_pixels(node)!r})").body[0]
        position = 0
        for position, stmt in enumerate(node.body):
            is_doc = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            is_future = isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"
            if not (is_future or (is_doc and position == 0)):
                break
        else:
            position = len(node.body)
        ast.copy_location(call, node.body[position] if position < len(node.body) else node)
        ast.fix_missing_locations(call)
        node.body.insert(position, call)
        return node


class Runtime:
    """Kernel-side state: registered images, output caps, result collection."""

    def __init__(
        self, shell: Any, transfer_dir: str, max_output_chars: int, max_pixels: int
    ) -> None:
        self.shell = shell
        self.max_pixels = max_pixels
        self.dir = Path(transfer_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.images: dict[str, Image.Image] = {}
        self.load_errors: dict[str, str] = {}
        self.out = PixelBuffer(self.dir / "out.pixels")
        self.streams = [
            CappedStream(sys.stdout, max_output_chars),
            CappedStream(sys.stderr, max_output_chars),
        ]
        sys.stdout, sys.stderr = self.streams
        self._owed: dict[str, Image.Image] = {}  # registered, not yet copied: see settle
        self._copy_after_reply = False
        shell.events.register("pre_run_cell", self._on_pre_run_cell)
        with contextlib.suppress(KeyError):  # IPython has no such event: copies come at once
            shell.events.register("post_reply", self.settle)  # the lean kernel's own event
            self._copy_after_reply = True
        shell.ast_transformers.append(_BindTransformer(self))
        formatters = shell.display_formatter.formatters
        for mime in ("image/png", "image/jpeg"):
            formatters[mime].for_type(Image.Image, lambda _img: None)
        shell.display_formatter.mimebundle_formatter.for_type(Image.Image, self._image_bundle)
        self.baseline: set[str] = set()

    # -- namespace -------------------------------------------------------------------
    def snapshot_baseline(self) -> None:
        """Remember the names that survive :meth:`reset` (the preamble's)."""
        self.baseline = set(self.shell.user_ns)

    def reset(self) -> None:
        """Forget user variables and images; keep the preamble's names."""
        ns = self.shell.user_ns
        for name in list(ns):
            if name not in self.baseline:
                del ns[name]
        self.shell.displayhook.flush()
        self.images.clear()
        self._owed.clear()
        self.load_errors.clear()
        self.out.wipe()
        for entry in self.dir.iterdir():
            if entry == self.out.path:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        gc.collect()

    # -- images in -----------------------------------------------------------------------
    def load(self, key: str, path: str) -> str:
        """Register the image stored at ``path`` (``.npy``) under ``key``."""
        self.load_errors.pop(str(key), None)
        array = np.load(path, allow_pickle=False)
        self.images[str(key)] = Image.fromarray(array)
        os.unlink(path)
        image = self.images[str(key)]
        return f"{image.mode} {image.size[0]}x{image.size[1]}"

    def drop(self, key: str) -> None:
        """Forget the image registered under ``key``."""
        self.images.pop(str(key), None)
        self._owed.pop(str(key), None)

    def warm(self, key: str) -> None:
        """Take the first-use paths once (bind a copy, draw, save pixels), then forget ``key``.

        A fresh kernel's first cell pays for code and pages it has not touched yet; the
        host calls this before lending the kernel, so no episode waits for it.
        """
        image = self.images.pop(str(key))
        copy = image.copy()
        ImageDraw.Draw(copy)
        self.save(copy)
        self.out.rewind()

    def get(self, key: Any) -> Image.Image:
        """Return the registered image ``key`` with a clear error when it does not exist."""
        try:
            return self.images[str(key)]
        except KeyError:
            if str(key) in self.load_errors:
                raise IndexError(f"image {key!r} {self.load_errors[str(key)]}") from None
            available = ", ".join(sorted(self.images, key=_index_order)) or "none"
            raise IndexError(
                f"image_index {key!r} does not exist; available image indices: {available}"
            ) from None

    # -- per-cell binding ----------------------------------------------------------------
    def _request_metadata(self) -> dict[str, Any]:
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None:
            return {}
        try:
            parent = kernel.get_parent("shell")
        except TypeError:  # older ipykernel
            parent = kernel.get_parent()
        metadata = (parent or {}).get("metadata") or {}
        request = metadata.get("codevision")
        return request if isinstance(request, dict) else {}

    def pending_request(self) -> dict[str, Any] | None:
        request = self._request_metadata()
        return request if "bind" in request else None

    def load_staged(self) -> None:
        """Load the images the host staged for this request (before the cell is parsed)."""
        loads = self._request_metadata().get("load")
        if not isinstance(loads, list):
            return
        for entry in loads:
            if not (isinstance(entry, list) and len(entry) == 2):
                continue
            key, path = (str(part) for part in entry)
            try:
                self.load(key, path)
            except Exception as exc:  # reported when the image is asked for
                self.images.pop(key, None)
                self.load_errors[key] = f"could not be loaded: {type(exc).__name__}: {exc}"

    def before_cell(self, copy: bool = True) -> None:
        """Bind ``image``/``img``/``draw`` and clear result names for this cell.

        The bound image is the registered one's own: a copy (``copy``, for cells that may
        write pixels in place, see :data:`IN_PLACE_WRITERS`) or a :func:`shared_view`,
        which copies on its first change. Either way the registered image never changes.
        """
        request = self.pending_request()
        if request is None:
            return
        ns = self.shell.user_ns
        for name in request.get("clear", ()):
            ns[name] = None
        key = request["bind"]
        if key is None:
            return
        source = self.get(key)
        # a palette lives in the shared core too, and PIL changes it without a copy first
        copy = copy or source.mode in ("P", "PA")
        bound = source.copy() if copy else shared_view(source)
        ns["image"] = ns["img"] = bound
        ns["draw"] = LazyDraw(bound)

    def clamp_box(self, image: Any, box: Any) -> tuple[int, int, int, int]:
        """Clamp a crop box to ``image`` (used by the graph's opt-in code repair)."""
        width, height = image.size
        left, upper, right, lower = (round(float(v)) for v in box)
        left, right = sorted((min(max(left, 0), width), min(max(right, 0), width)))
        upper, lower = sorted((min(max(upper, 0), height), min(max(lower, 0), height)))
        if right == left:
            right = min(left + 1, width) if left < width else left
            left = right - 1
        if lower == upper:
            lower = min(upper + 1, height) if upper < height else upper
            upper = lower - 1
        return left, upper, right, lower

    def settle(self) -> None:
        """Give each image registered by :meth:`collect` since the last cell its own pixels.

        The cell's object (or the array it came from) may change in place in a later
        cell; the registered image never does. In the lean kernel the copy is made after
        the reply (its ``post_reply`` event), while the host reads the pixels, and nothing
        of the user's runs in between; anywhere else :meth:`collect` copies at once.
        """
        while self._owed:
            key, image = self._owed.popitem()
            if self.images.get(key) is not image:
                continue  # replaced or dropped meanwhile
            try:
                self.images[key] = image.copy()
            except Exception as exc:  # out of memory: no image, rather than a shared one
                del self.images[key]
                self.load_errors[key] = f"could not be kept: {type(exc).__name__}: {exc}"

    def _on_pre_run_cell(self, *_args: Any) -> None:
        self.settle()
        for stream in self.streams:
            stream.reset()
        self.out.rewind()
        self.load_staged()

    # -- images out ----------------------------------------------------------------------
    def save(self, image: Image.Image, pixels: np.ndarray | None = None) -> dict[str, Any]:
        """Write ``image``'s raw pixels into the output buffer and describe it for the host.

        ``pixels``, when given, is the same image as an 8-bit ``HxW``, ``HxWx3`` or
        ``HxWx4`` array (a cell's array result): its bytes are the image's, so they are
        written as they are instead of being packed again from PIL's own layout. Images
        larger than the host accepts are refused here, before any pixel moves.
        """
        width, height = image.size
        if width * height > self.max_pixels:
            raise ValueError(
                f"the result image is {width}x{height} = {width * height} pixels; at most "
                f"{self.max_pixels} are accepted: resize or crop it first"
            )
        mode = None
        if pixels is not None and pixels.dtype == np.uint8:
            mode = ARRAY_MODES.get(pixels.shape[2] if pixels.ndim == 3 else 1)
        if mode is not None:
            offset, length = self.out.write(memoryview(np.ascontiguousarray(pixels)).cast("B"))
        else:
            image = standard_mode(image)
            mode = image.mode
            offset, length = self.out.write_image(image)
        return {
            "buffer": str(self.out.path),
            "offset": offset,
            "length": length,
            "mode": mode,
            "size": [width, height],
        }

    def _image_bundle(self, image: Image.Image) -> dict[str, Any]:
        info = self.save(image)
        info["source"] = "display"
        return {
            IMAGE_MIME: info,
            "text/plain": f"<image {info['mode']} {image.size[0]}x{image.size[1]}>",
        }

    def collect(self, names: list[str], first_only: bool, register_as: Any = None) -> str:
        """Describe (and save) the images held by ``names`` after a cell; JSON for the host."""
        ns = self.shell.user_ns
        found: list[dict[str, Any]] = []
        for name in names:
            value = ns.get(name)
            if value is None:
                continue
            entry: dict[str, Any] = {"name": name, "type": type(value).__name__}
            image, pixels = _as_image(value, entry)
            if image is not None:
                if image.size[0] == 0 or image.size[1] == 0:
                    entry["kind"] = "empty"
                    entry["size"] = list(image.size)
                else:
                    entry.update(self.save(image, pixels), kind="image")
                    if register_as is not None:  # its own copy: see settle
                        self.images[str(register_as)] = self._owed[str(register_as)] = image
                        self.load_errors.pop(str(register_as), None)
                        if not self._copy_after_reply:
                            self.settle()
                        register_as = None
            found.append(entry)
            if first_only and entry.get("kind") in ("image", "empty"):
                break  # an empty image is the result too (the host reports its size)
        return json.dumps(found)


def _pack_into(image: Image.Image, view: memoryview) -> int:
    """Pack ``image``'s pixels (its own mode's raw layout) into ``view``; bytes written."""
    image.load()
    encoder = Image._getencoder(image.mode, "raw", image.mode)
    encoder.setimage(image.im, (0, 0, *image.size))
    block = max(1 << 16, image.width * 4)
    done = 0
    while True:
        _, status, data = encoder.encode(block)
        if done + len(data) > len(view):
            return -1
        view[done : done + len(data)] = data
        done += len(data)
        if status:
            return done if status > 0 else -1


class _ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ``ArrowArray`` (what PIL exports an image's memory as)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class _ArrowSchema(ctypes.Structure):
    """The start of the Arrow C data interface's ``ArrowSchema``: its format string."""

    _fields_ = [("format", ctypes.c_char_p)]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

_CORE_LAYOUT = {"L": (b"C", 1), "RGB": (b"+w:4", 4), "RGBA": (b"+w:4", 4)}
"""Per mode: the Arrow format PIL exports its memory as, and the bytes per pixel there."""


def core_pixels(image: Image.Image) -> tuple[np.ndarray, Any] | None:
    """A read-only array on ``image``'s own pixel memory, and the capsule that keeps it.

    ``HxW`` for ``L``; ``HxWx4`` for ``RGB`` and ``RGBA``, as PIL keeps them (an ``RGB``
    pixel's fourth byte is padding). PIL hands its memory out through the Arrow C data
    interface (Pillow 11.2 and later) when an image lies in one block; everything else,
    and any layout this does not expect, gives ``None``. The array is valid while the
    capsule lives: drop both together.
    """
    try:
        image.load()
    except Exception:
        return None
    expected = _CORE_LAYOUT.get(image.mode)
    if expected is None or not hasattr(Image.core, "new_arrow"):
        return None
    width, height = image.size
    try:
        schema = image.im.__arrow_c_schema__()
        capsule = image.im.__arrow_c_array__()
        fmt = _ArrowSchema.from_address(_capsule_pointer(schema, b"arrow_schema")).format
        array = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
    except Exception:  # an older PIL, several blocks, an empty image
        return None
    layout, bands = expected
    if fmt != layout or array.length != width * height or array.offset or array.null_count:
        return None
    if bands > 1:  # a fixed-size list of ``bands`` bytes: the bytes are its child's
        if array.n_children != 1:
            return None
        array = array.children[0].contents
        if array.offset or array.length != width * height * bands:
            return None
    if array.n_buffers != 2 or not array.buffers[1]:
        return None
    memory = (ctypes.c_uint8 * (width * height * bands)).from_address(array.buffers[1])
    pixels = np.frombuffer(memory, dtype=np.uint8)
    pixels = pixels.reshape((height, width) if bands == 1 else (height, width, bands))
    pixels.flags.writeable = False
    return pixels, capsule


CVT_PIXELS = 1 << 16
"""Pixels per OpenCV call in :func:`_copy_core` (what OpenCV converts without its pool)."""


def _copy_core(image: Image.Image, view: memoryview) -> int:
    """Copy ``image``'s pixels from PIL's memory into ``view``; bytes written, ``-1`` if not.

    Every array made here is gone when it returns: none may outlive the copy, or the
    mapping behind ``view`` could not be released.
    """
    target = np.frombuffer(view, dtype=np.uint8)
    return target.size if copy_pixels(image, target) else -1


def copy_pixels(image: Image.Image, target: np.ndarray, chunk_pixels: int = CVT_PIXELS) -> bool:
    """Copy an ``L``/``RGB``/``RGBA`` image's pixels from PIL's memory into ``target``.

    ``target`` is a writable, C-contiguous ``uint8`` array of the image's ``height * width *
    bands`` bytes (any shape). Where PIL does not hand its memory out (:func:`core_pixels`)
    nothing is written and the answer is ``False``. The copy runs without the GIL (numpy's
    copy; for ``RGB``, OpenCV dropping PIL's padding byte ``chunk_pixels`` pixels per call,
    numpy where OpenCV is missing), where ``tobytes()`` holds it throughout.
    """
    found = core_pixels(image)
    if found is None:
        return False
    pixels, _capsule = found
    if target.dtype != np.uint8 or not (target.flags.c_contiguous and target.flags.writeable):
        raise ValueError("the target must be a writable, C-contiguous uint8 array")
    flat = target.reshape(-1)
    if image.mode != "RGB":
        flat[:] = pixels.reshape(-1)
        return True
    width, height = image.size
    rows = flat.reshape(height, width, 3)
    try:
        import cv2

        # OpenCV converts up to 2**16 pixels at a time on the calling thread; a larger
        # call wakes its thread pool (where it has one), whose workers then spin for a
        # while on every core
        step = max(1, chunk_pixels // width)
        for top in range(0, height, step):
            part = rows[top : top + step]
            if cv2.cvtColor(pixels[top : top + step], cv2.COLOR_RGBA2RGB, dst=part) is not part:
                raise ValueError("OpenCV did not write in place")
        return True
    except Exception:  # no OpenCV here: numpy drops the padding byte instead
        pass
    rows[...] = pixels[..., :3]
    return True


def standard_mode(image: Image.Image) -> Image.Image:
    """Any PIL mode as ``L``, ``LA``, ``RGB`` or ``RGBA`` (what the host accepts).

    16-bit and 32-bit integer and float images are scaled into 0..255 (values already in
    that range are kept, 16-bit ranges divided by 257, others stretched); NaN and inf are 0.
    """
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
    if mode == "RGBa":
        return image.convert("RGBA")
    if mode == "La":
        return image.convert("LA")
    if mode == "1":
        return image.convert("L")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_uint8(np.asarray(image)))
    return image.convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low >= 0 and high <= 1 and values.dtype.kind == "f" and high > 0:
        values = values * 255
    elif low >= 0 and high <= 255:
        pass
    elif low >= 0 and high <= 65535:
        values = values / 257
    elif high > low:
        values = (values - low) * (255 / (high - low))
    else:
        values = np.zeros_like(values)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _as_image(value: Any, entry: dict[str, Any]) -> tuple[Image.Image | None, np.ndarray | None]:
    """``value`` as an image, and as its 8-bit array when it was one (else ``None``)."""
    if isinstance(value, Image.Image):
        entry["kind"] = "image"
        return value, None
    if isinstance(value, np.ndarray):
        entry["kind"] = "ndarray"
        entry["shape"] = list(value.shape)
        entry["dtype"] = str(value.dtype)
        shaped = value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4))
        if not shaped or value.size == 0 or value.dtype.kind not in "biuf":
            return None, None
        if value.dtype == np.bool_:
            value = value.astype(np.uint8) * 255
        elif value.dtype != np.uint8:
            value = _to_uint8(value)
        entry["converted_from"] = "ndarray"
        if value.ndim == 3 and value.shape[2] == 1:
            value = value[..., 0]
        return Image.fromarray(value), value
    entry["kind"] = "other"
    return None, None


def _index_order(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.lstrip("-").isdigit() else (1, key)


def install(
    shell: Any, transfer_dir: str, max_output_chars: int, max_pixels: int = 40_000_000
) -> Runtime:
    """Create the runtime and publish it as ``__cv_runtime__`` in the user namespace."""
    runtime = Runtime(shell, transfer_dir, max_output_chars, max_pixels)
    shell.user_ns["__cv_runtime__"] = runtime
    return runtime
