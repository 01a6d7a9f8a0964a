"""Code that :class:`~langchain_codevision.models.ocr_policy.OfflineOCRModel` writes.

Each template is plain Python for the sandboxed kernel, under the protocol's 2,048-character
code limit, using only the names every profile binds (``image``, ``Image``, ``ImageOps``,
``np``). The OCR engine (``rapidocr`` 3.x on ONNX Runtime: one intra-op thread, no
orientation classifier, logging off so only the records reach the output) runs inside the
kernel. Every template prints the text it reads as ``LINE x0,y0,x1,y1 conf | text`` records
(pixel boxes on the step's output image) and leaves that image in ``result``.

* :data:`READ_PAGE_CODE`: judge the orientation on a small copy (text-line shape from
  detection, then recognition confidence of the four candidate fixes on a piece of each of
  the three longest lines only), undo it, read the fixed page. Prints ``ORIENTATION
  <applied transform> <score per candidate>``.
* :data:`JUDGE_CODE`: the same without reading the fixed page (for orientation questions).
* :func:`zoom_code`: crop a box, upscale it and read it again.
* :data:`PLAIN_READ_CODE`: the simpler retry after an error: read the image as given.
"""

from __future__ import annotations

__all__ = ["JUDGE_CODE", "ORIENTATION_FIXES", "PLAIN_READ_CODE", "READ_PAGE_CODE", "zoom_code"]

ORIENTATION_FIXES: dict[str, str | None] = {
    "none": None,
    "rotate_180": "ROTATE_180",
    "flip_horizontal": "FLIP_LEFT_RIGHT",
    "flip_vertical": "FLIP_TOP_BOTTOM",
    "rotate_90": "ROTATE_270",
    "rotate_270": "ROTATE_90",
    "rotate_90+flip_horizontal": "TRANSVERSE",
    "rotate_90+flip_vertical": "TRANSPOSE",
}
"""Applied transform name -> the ``Image.Transpose`` member that undoes it."""

_ENGINE = """\
from rapidocr import RapidOCR
ocr = RapidOCR(params={"Global.log_level": "critical", "Global.use_cls": False,
                       "EngineConfig.onnxruntime.intra_op_num_threads": 1})
def run(im, det=True, rec=True):  # flags persist
    return ocr(im.convert("RGB"), use_det=det, use_cls=False, use_rec=rec)
def show(im):
    r = run(im)
    for b, text, conf in zip(r.boxes, r.txts, r.scores) if r.txts else []:
        x0, y0, x1, y1 = (*b.min(0).astype(int), *b.max(0).astype(int))
        print(f"LINE {x0},{y0},{x1},{y1} {conf:.3f} | {text}")
"""

READ_PAGE_CODE = (
    _ENGINE
    + """\
src = ImageOps.autocontrast(image.convert("RGB"))
small = src.copy()
small.thumbnail((800, 800))
found = run(small, rec=False).boxes
found = [] if found is None else found
rects = [(*b.min(0).astype(int), *(b.max(0).astype(int) + 1)) for b in found]
top = sorted(rects, key=lambda r: -max(r[2] - r[0], r[3] - r[1]))[:3]
T = Image.Transpose
tall = sum(r[3] - r[1] > r[2] - r[0] for r in top) * 2 > len(top)
top = [(a, b, c, min(d, b + 8 * (c - a))) if tall else (a, b, min(c, a + 8 * (d - b)), d)
       for a, b, c, d in top]  # a piece is enough
if tall:
    cands = {"rotate_90": T.ROTATE_270, "rotate_270": T.ROTATE_90,
        "rotate_90+flip_horizontal": T.TRANSVERSE, "rotate_90+flip_vertical": T.TRANSPOSE}
else:
    cands = {"none": None, "rotate_180": T.ROTATE_180,
        "flip_horizontal": T.FLIP_LEFT_RIGHT, "flip_vertical": T.FLIP_TOP_BOTTOM}
scores = {}
for name, op in cands.items():
    confs = []
    for r in top:
        c = small.crop(r) if op is None else small.crop(r).transpose(op)
        got = run(c, det=False)
        confs.append(float(got.scores[0]) if got.txts and got.txts[0].strip() else 0.0)
    scores[name] = float(np.mean(confs or [0.0]))
applied = max(scores, key=scores.get) if top else "none"
if "none" in scores and scores["none"] >= scores[applied] - 0.01:
    applied = "none"
op = cands.get(applied)
result = src if op is None else src.transpose(op)
print("ORIENTATION", applied, " ".join(f"{n}={s:.3f}" for n, s in scores.items()))
"""
)
JUDGE_CODE = READ_PAGE_CODE
READ_PAGE_CODE = JUDGE_CODE + "show(result)\n"

PLAIN_READ_CODE = (
    _ENGINE
    + """\
result = image.convert("RGB")
print("ORIENTATION unknown")
show(result)
"""
)


def zoom_code(box: tuple[int, int, int, int], scale: int = 2) -> str:
    """Crop ``box`` (clamped to the image), upscale it ``scale`` times and read it."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return (
        _ENGINE
        + f"""\
w, h = image.size
box = (max(0, {x0}), max(0, {y0}), min(w, {x1}), min(h, {y1}))
crop = image.convert("RGB").crop(box)
result = crop.resize((crop.width * {scale}, crop.height * {scale}), Image.LANCZOS)
show(result)
"""
    )
