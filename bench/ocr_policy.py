"""Benchmark the offline OCR policy on real document pages, upright and transformed.

Run: ``python bench/ocr_policy.py [--pages N] [--questions K] [--workers W] [--pdf FILE ...]``.
Writes ``bench/results/ocr_policy.{json,md}``.

Pages come from real PDF manuals not made by this project: by default two Debian
documentation packages (``4ti2-doc``, ``camlidl-doc``) fetched with ``apt-get download``
and unpacked with ``dpkg -x``; ``--pdf`` uses your own files instead. Each page is
rendered with ``pdftoppm`` (100 dpi) and cut to a band of up to six text lines; its
``pdftotext -bbox-layout`` text layer gives the ground truth. Questions (K per page, the
same under every transform, cycling through the types): the line starting with given
words, the word after a word, the last and the shortest word of a line, how often a letter
occurs on a line, and which transform was applied. Each page is shown as given and under
six transforms built with :mod:`langchain_codevision.data.transforms`.

Two arms on the same items, scored with the evaluation's own rule
(:func:`langchain_codevision.eval.scoring.score_item`):

* plain OCR: the same OCR engine on the image as given and the same answer rules, no code
  and no orientation fix (the baseline);
* policy: ``OfflineOCRModel`` through the real graph and the jailed kernel.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from html import unescape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from bench._common import RESULTS, write_report
from langchain_codevision.data.transforms import parse_transform
from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.eval.scoring import score_item
from langchain_codevision.kernel import KernelLimits, KernelPool
from langchain_codevision.loop.graph import create_codevision_graph
from langchain_codevision.models import OfflineOCRModel
from langchain_codevision.models._ocr_read import read_image_lines
from langchain_codevision.models._ocr_rules import answer_question, parse_question

PACKAGES = ("4ti2-doc", "camlidl-doc")
TRANSFORMS = (
    "none",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    "flip_horizontal",
    "flip_vertical",
    "rotate_90+flip_horizontal",
)
KINDS = ("read_line", "word_after", "last_word", "shortest_word", "count_letter", "orientation")
DPI = 100
BAND_LINES = 6
_LINE = re.compile(
    r'<line xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</line>', re.S
)
_WORD = re.compile(r"<word [^>]*>(.*?)</word>")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def fetch_pdfs(folder: Path) -> list[Path]:
    """The PDF manuals of :data:`PACKAGES`, downloaded and unpacked under ``folder``."""
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=folder, check=True, capture_output=True)
    for deb in folder.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(folder / "root")], check=True)
    return sorted((folder / "root").rglob("*.pdf"))


def page_lines(pdf: Path, page: int) -> list[tuple[tuple[float, float, float, float], list[str]]]:
    """The text layer's lines of one page: (box in pixels at :data:`DPI`, words)."""
    html = subprocess.run(
        ["pdftotext", "-f", str(page), "-l", str(page), "-bbox-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    scale = DPI / 72
    lines = []
    for match in _LINE.finditer(html):
        box = tuple(float(match.group(i)) * scale for i in range(1, 5))
        words = [unescape(w) for w in _WORD.findall(match.group(5))]
        if words:
            lines.append((box, words))
    return lines


def render_band(pdf: Path, page: int, folder: Path) -> tuple[Image.Image, list[list[str]]] | None:
    """A band of up to :data:`BAND_LINES` body lines of ``page`` and their words, or None."""
    lines = sorted(page_lines(pdf, page), key=lambda line: (round(line[0][1]), line[0][0]))
    body = [i for i, (_, words) in enumerate(lines) if len(words) >= 6]
    if len(body) < 5:
        return None
    chosen = lines[body[0] : body[0] + BAND_LINES]
    if sum(len(words) >= 4 for _, words in chosen) < 4:
        return None
    stem = folder / f"{pdf.stem}-{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            str(DPI),
            "-f",
            str(page),
            "-l",
            str(page),
            "-png",
            "-singlefile",
            str(pdf),
            str(stem),
        ],
        check=True,
    )
    image = Image.open(f"{stem}.png").convert("RGB")
    x0 = min(b[0] for b, _ in chosen) - 20
    y0 = min(b[1] for b, _ in chosen) - 14
    x1 = max(b[2] for b, _ in chosen) + 20
    y1 = max(b[3] for b, _ in chosen) + 14
    band = image.crop((max(0, int(x0)), max(0, int(y0)), int(x1), int(y1)))
    return band, [words for _, words in chosen]


def _clean(word: str) -> str:
    return word.strip(".,;:()[]{}\"'")


def make_question(
    kind: str, lines: list[list[str]], transform: str, seed: int
) -> tuple[str, str] | None:
    """One question of ``kind`` about the band's ``lines`` and its truth, or None."""
    if kind == "orientation":
        return "Which transform was applied to this image?", transform
    plain = [
        words
        for words in lines
        if len(words) >= 4 and all(_PLAIN.match(_clean(w) or "-") for w in words[:2])
    ]
    if not plain:
        return None
    words = plain[seed % len(plain)]
    start = " ".join(words[:2])
    if sum(" ".join(w[:2]) == start for w in lines) > 1:
        return None
    cleaned = [_clean(w) for w in words if _clean(w)]
    if kind == "read_line":
        return f'Read the line that starts with "{start}".', " ".join(words)
    if kind == "last_word":
        if not _PLAIN.match(cleaned[-1]):
            return None
        return f'What is the last word on the line that starts with "{start}"?', cleaned[-1]
    if kind == "shortest_word":
        shortest = min(len(w) for w in cleaned)
        ties = [w for w in cleaned if len(w) == shortest]
        if len(ties) > 1:
            return None
        return f'What is the shortest word on the line that starts with "{start}"?', ties[0]
    if kind == "count_letter":
        count = " ".join(words).lower().count("e")
        return (
            f'How many times does the letter "e" appear on the line that starts with "{start}"?',
            str(count),
        )
    if kind == "word_after":
        every = [_clean(w).lower() for line in lines for w in line]
        for i in range(len(words) - 1):
            word, after = _clean(words[i]), _clean(words[i + 1])
            if (
                len(word) >= 4
                and len(after) >= 2
                and _PLAIN.match(word)
                and _PLAIN.match(after)
                and every.count(word.lower()) == 1
            ):
                return f'What is the word after "{word}"?', after
        return None
    return None


def build_items(pdfs: list[Path], pages: int, per_item: int, folder: Path) -> list[EvalItem]:
    """``pages`` bands spread over ``pdfs``, each under every transform, with questions."""
    bands = []
    for pdf in pdfs:
        count = int(
            re.search(
                r"Pages:\s+(\d+)",
                subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout,
            ).group(1)
        )
        for page in range(5, count + 1, 3):
            got = render_band(pdf, page, folder)
            if got is not None:
                bands.append((pdf.name, page, *got))
            if sum(b[0] == pdf.name for b in bands) >= (pages + len(pdfs) - 1) // len(pdfs):
                break
    items = []
    text_kinds = [kind for kind in KINDS if kind != "orientation"]
    turn = 0
    for index, (name, page, band, lines) in enumerate(bands[:pages]):
        # the same questions under every transform of a page: accuracies are paired
        wanted = ["orientation"] if index % 2 == 1 else []
        for tries in range(4 * len(text_kinds)):
            if len(wanted) >= per_item:
                break
            kind = text_kinds[(turn + tries) % len(text_kinds)]
            if kind not in wanted and make_question(kind, lines, "none", index) is not None:
                wanted.append(kind)
        turn += per_item
        for transform in TRANSFORMS:
            image = (
                band
                if transform == "none"
                else parse_transform(transform).bind(band.size).apply(band)
            )
            for kind in wanted[:per_item]:
                question, truth = make_question(kind, lines, transform, index)  # type: ignore[misc]
                items.append(
                    EvalItem(
                        id=f"{name}-p{page}-{transform}-{kind}",
                        question=question,
                        answers=[truth],
                        images=[image],
                        transform=transform,
                        qtype=kind,
                        dataset=name,
                    )
                )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--questions", type=int, default=2, help="per page and transform")
    parser.add_argument("--pdf", type=Path, nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2, help="episodes at a time")
    parser.add_argument("--minutes", type=float, default=60.0, help="start no item after this")
    args = parser.parse_args()
    for tool in ("pdftoppm", "pdftotext", "pdfinfo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: install poppler-utils (scripts/install-system-deps.sh)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the cleanup below runs
    folder = Path(tempfile.mkdtemp(prefix="ocr-bench-"))
    try:
        pdfs = args.pdf or fetch_pdfs(folder)
        items = build_items(pdfs, args.pages, args.questions, folder)
        rows = run(items, args.workers, args.minutes)
        planned = len(items)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(rows, [p.name for p in pdfs], args, planned)


def _one(graph: object, item: EvalItem, plain_lines: dict[int, list]) -> dict:
    """Both arms on one item."""
    image = item.images[0]
    start = time.perf_counter()
    if id(image) not in plain_lines:
        plain_lines[id(image)] = read_image_lines(image)
    plain = answer_question(parse_question(item.question), plain_lines[id(image)])
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    state = graph.invoke({"image": image, "question": item.question})  # type: ignore[attr-defined]
    steps = state.get("steps", [])
    return {
        "id": item.id,
        "transform": item.transform,
        "kind": item.qtype,
        "truth": item.answers[0],
        "plain": plain,
        "plain_ok": score_item(item, plain).correct,
        "policy": state.get("answer"),
        "policy_ok": score_item(item, state.get("answer")).correct,
        "code_calls": len(steps),
        "errors": sum(1 for step in steps if step.get("error")),
        "plain_s": round(plain_s, 2),
        "policy_s": round(time.perf_counter() - start, 2),
    }


def run(items: list[EvalItem], workers: int, minutes: float) -> list[dict]:
    """Both arms on the items, ``workers`` episodes at a time (one kernel each).

    No item starts after ``minutes`` (the items are page by page, so a cut keeps whole
    pages first).
    """
    deadline = time.monotonic() + 60 * minutes
    plain_lines: dict[int, list] = {}
    queue = iter(items)
    rows: list[dict] = []
    with KernelPool(size=workers, limits=KernelLimits(timeout=300.0)) as pool:
        graph = create_codevision_graph(OfflineOCRModel(), pool=pool)
        with ThreadPoolExecutor(workers) as threads:
            running: set = set()

            def start_next() -> None:
                item = next(queue, None) if time.monotonic() < deadline else None
                if item is not None:
                    running.add(threads.submit(_one, graph, item, plain_lines))

            for _ in range(workers):
                start_next()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.discard(future)
                    row = future.result()
                    rows.append(row)
                    print(
                        f"[{len(rows)}/{len(items)}] {row['id']}: plain={row['plain_ok']} "
                        f"policy={row['policy_ok']} calls={row['code_calls']} "
                        f"({row['policy_s']:.1f}s)",
                        flush=True,
                    )
                    start_next()
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _table(rows: list[dict], up_policy: float) -> list[str]:
    """Markdown tables: accuracy per transform, then per question kind."""
    lines = [
        "",
        "| transform | items | plain OCR | policy | policy / upright | code calls | s/item |",
        "|---|---|---|---|---|---|---|",
    ]
    for transform in TRANSFORMS:
        group = [r for r in rows if r["transform"] == transform]
        acc = _mean([r["policy_ok"] for r in group])
        plain = _mean([r["plain_ok"] for r in group])
        rel = acc / up_policy if up_policy else 0.0
        calls = _mean([r["code_calls"] for r in group])
        seconds = _mean([r["policy_s"] for r in group])
        lines.append(
            f"| {transform} | {len(group)} | {plain:.3f} | {acc:.3f} | {rel:.3f} | {calls:.2f} "
            f"| {seconds:.1f} |"
        )
    lines += ["", "| question kind | items | plain OCR | policy |", "|---|---|---|---|"]
    for kind in sorted({r["kind"] for r in rows}):
        group = [r for r in rows if r["kind"] == kind]
        plain = _mean([r["plain_ok"] for r in group])
        acc = _mean([r["policy_ok"] for r in group])
        lines.append(f"| {kind} | {len(group)} | {plain:.3f} | {acc:.3f} |")
    return lines


def report(rows: list[dict], pdfs: list[str], args: argparse.Namespace, planned: int) -> None:
    """``results/ocr_policy.{json,md}``: targets, then the per-transform table."""
    upright = [r for r in rows if r["transform"] == "none"]
    moved = [r for r in rows if r["transform"] != "none"]
    up_policy = _mean([r["policy_ok"] for r in upright])
    up_plain = _mean([r["plain_ok"] for r in upright])
    tr_policy = _mean([r["policy_ok"] for r in moved])
    calls = _mean([r["code_calls"] for r in rows])
    ratio = tr_policy / up_policy if up_policy else 0.0
    gap = up_policy - up_plain
    metrics = [
        {"metric": "policy accuracy, upright", "value": up_policy},
        {"metric": "plain OCR accuracy, upright", "value": up_plain},
        {
            "metric": "upright: policy - plain OCR",
            "value": gap,
            "target": ">= -0.05",
            "ok": gap >= -0.05,
        },
        {"metric": "policy accuracy, transformed", "value": tr_policy},
        {
            "metric": "plain OCR accuracy, transformed",
            "value": _mean([r["plain_ok"] for r in moved]),
        },
        {
            "metric": "policy: transformed / upright",
            "value": ratio,
            "target": ">= 0.95",
            "ok": ratio >= 0.95,
        },
        {"metric": "code calls per item", "value": calls, "target": "<= 2", "ok": calls <= 2},
        {"metric": "kernel errors", "value": sum(r["errors"] for r in rows)},
        {"metric": "items", "value": len(rows)},
    ]
    extra = {
        "pdfs": ", ".join(pdfs),
        "pages": args.pages,
        "questions per page and transform": args.questions,
        "dpi": DPI,
        "band lines": BAND_LINES,
        "items planned": planned,
        "pages run": len({r["id"].rsplit("-", 2)[0] for r in rows}),
        "episodes at a time": args.workers,
        "command": "python bench/ocr_policy.py " + " ".join(sys.argv[1:]),
    }
    path = write_report("ocr_policy", "Offline OCR policy on real document pages", metrics, extra)
    with path.open("a") as out:
        out.write("\n".join(_table(rows, up_policy)) + "\n")
    data = json.loads((RESULTS / "ocr_policy.json").read_text())
    data["items"] = rows
    (RESULTS / "ocr_policy.json").write_text(json.dumps(data, indent=2))
    print(path.read_text())


if __name__ == "__main__":
    main()
