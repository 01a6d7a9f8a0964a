"""Rendered source material: ground truth, determinism, small labels, loaders and fonts."""

from __future__ import annotations

import csv
import json
import random
import statistics
import string
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from langchain_codevision.data import fonts
from langchain_codevision.data.folder import load_annotated_folder
from langchain_codevision.data.records import (
    RecordError,
    SkippedRecordsWarning,
    read_parquet,
    write_parquet,
)
from langchain_codevision.data.render import (
    render_bar_chart,
    render_document,
    render_receipt,
    render_table,
)
from langchain_codevision.data.sources import (
    SMALL_LABEL_MAX_FRACTION,
    TASKS,
    Sample,
    generate_samples,
    make_sample,
)
from langchain_codevision.data.transforms import ORIENTATIONS, get_transform, inverse_name

SEEDS = range(4)


@pytest.fixture(scope="module")
def samples() -> dict[str, list[Sample]]:
    return {task: [make_sample(task, seed) for seed in SEEDS] for task in TASKS}


def _inside(box: tuple, size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def _has_ink(image: Image.Image, box: tuple) -> bool:
    """The region holds drawn content: a real spread of values, not a flat background."""
    region = np.asarray(image.convert("L").crop(tuple(round(v) for v in box)), dtype=np.float64)
    return region.size > 0 and region.std() > 12 and region.max() - region.min() > 60


# -- ground truth -------------------------------------------------------------------------------
def test_every_task_has_consistent_ground_truth(samples: dict[str, list[Sample]]) -> None:
    for task, group in samples.items():
        for sample in group:
            assert sample.task == task and sample.question and sample.answer
            assert sample.image.mode == "RGB"
            for line in sample.lines:
                assert _inside(line.box, sample.image.size), (task, line)
                assert _has_ink(sample.image, line.box), (task, line)
            if task == "which_transform":
                assert sample.bbox is None and sample.transform == sample.answer
                assert sample.answer in ORIENTATIONS
                continue
            assert _inside(sample.bbox, sample.image.size), task
            assert _has_ink(sample.image, sample.bbox), task


def test_document_ink_lies_inside_the_line_boxes() -> None:
    for seed in SEEDS:
        doc = render_document(random.Random(seed))
        gray = np.asarray(doc.image.convert("L"), dtype=np.int32)
        ink = np.abs(gray - np.median(gray)) > 8
        covered = np.zeros_like(ink)
        for line in doc.lines:
            x0, y0, x1, y1 = (int(v) for v in line.box)
            covered[y0:y1, x0:x1] = True
        assert ink.sum() > 5000
        assert not (ink & ~covered).any()


def test_read_line_answers_are_the_rendered_line(samples: dict[str, list[Sample]]) -> None:
    for sample in samples["read_line"]:
        prefix = sample.question.split('"')[1]
        matches = [line for line in sample.lines if line.text.startswith(prefix + " ")]
        assert [line.text for line in matches] == [sample.answer]
        assert matches[0].box == sample.bbox


def test_count_letter_answers_count_the_paragraph(samples: dict[str, list[Sample]]) -> None:
    for sample in samples["count_letter"]:
        letter, prefix = sample.question.split('"')[1], sample.question.split('"')[3]
        paragraphs = [[sample.lines[k] for k in indices] for indices in sample.meta["paragraphs"]]
        (paragraph,) = [p for p in paragraphs if p[0].text.startswith(prefix + " ")]
        text = " ".join(line.text for line in paragraph)
        assert sample.answer == str(text.lower().count(letter)) and int(sample.answer) > 0
        assert sample.bbox[1] == paragraph[0].box[1] and sample.bbox[3] == paragraph[-1].box[3]


def test_shortest_word_is_unique(samples: dict[str, list[Sample]]) -> None:
    for sample in samples["shortest_word"]:
        prefix = sample.question.split('"')[1]
        (line,) = [line for line in sample.lines if line.text.startswith(prefix + " ")]
        words = [w.strip(string.punctuation) for w in line.text.split()]
        lengths = sorted(len(w) for w in words if w)
        assert len(sample.answer) == lengths[0] < lengths[1]
        assert sample.answer in words


def test_receipts_add_up() -> None:
    for seed in range(10):
        receipt = render_receipt(random.Random(seed))
        cents = [round(float(p) * 100) for p in receipt.meta["items"].values()]
        assert f"{sum(cents) // 100}.{sum(cents) % 100:02d}" == receipt.meta["total"]
        assert receipt.find(role="total")[0].text == receipt.meta["total"]
        for item, price in receipt.meta["items"].items():
            assert receipt.find(role="price", key=item)[0].text == price


def test_tables_and_charts_print_their_values() -> None:
    table = render_table(random.Random(2))
    for key, value in table.meta["values"].items():
        assert table.find(role="cell", key=key)[0].text == value
    chart = render_bar_chart(random.Random(2))
    values = {k: int(v) for k, v in chart.meta["values"].items()}
    heights = {k: box[3] - box[1] for k, box in chart.meta["bars"].items()}
    tallest = max(values, key=values.get)
    assert max(heights, key=heights.get) == tallest
    for category, value in chart.meta["values"].items():
        assert chart.find(role="value", key=category)[0].text == value


def test_small_labels_are_small() -> None:
    for seed in range(12):
        sample = make_sample("small_label", seed)
        x0, y0, x1, y1 = sample.bbox
        area = sample.image.width * sample.image.height
        assert (x1 - x0) * (y1 - y0) <= SMALL_LABEL_MAX_FRACTION * area
        assert sample.lines[0].text == sample.answer
        assert sample.meta["photo"]


def test_photographs_are_real_and_varied() -> None:
    photos = {make_sample("sign_text", seed).meta["photo"] for seed in range(12)}
    assert len(photos) >= 3
    sample = make_sample("small_label", 0)
    outside = np.asarray(sample.image.convert("L"), dtype=np.float64)
    assert outside.std() > 20  # a photo, not a flat canvas


# -- transforms on samples ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ORIENTATIONS)
def test_transformed_samples_keep_the_answer_in_its_box(name: str) -> None:
    for task in ("read_line", "small_label", "chart_value", "table_cell"):
        original = make_sample(task, 1)
        moved = original.transformed(name)
        assert moved.transform == name and moved.answer == original.answer
        expected = get_transform(name).apply(original.image.crop(original.bbox))
        assert moved.image.crop(moved.bbox).tobytes() == expected.tobytes()
        assert moved.to_record().source_bbox() == list(original.bbox)
        back = moved.transformed(inverse_name(name))
        assert back.image.tobytes() == original.image.tobytes()
        assert back.bbox == original.bbox
        assert back.transform == f"{name}+{inverse_name(name)}"


def test_which_transform_can_be_undone() -> None:
    for seed in range(6):
        sample = make_sample("which_transform", seed)
        fixed = sample.transformed(inverse_name(sample.answer))
        for line in fixed.lines:
            assert _has_ink(fixed.image, line.box)
        widths = [line.box[2] - line.box[0] for line in fixed.lines]
        heights = [line.box[3] - line.box[1] for line in fixed.lines]
        assert statistics.median(widths) > statistics.median(heights)  # upright: lines are wide


def test_degradations_apply_to_samples() -> None:
    sample = make_sample("read_line", 0).transformed("blur")
    assert sample.transform == "blur" and sample.bbox == make_sample("read_line", 0).bbox


# -- determinism and records --------------------------------------------------------------------
def _fingerprint(sample: Sample) -> tuple:
    return (sample.image.tobytes(), sample.question, sample.answer, sample.bbox, sample.transform)


def test_generation_is_deterministic() -> None:
    a = generate_samples(12, seed=5, transforms=["identity", *ORIENTATIONS])
    b = generate_samples(12, seed=5, transforms=["identity", *ORIENTATIONS])
    assert [_fingerprint(s) for s in a] == [_fingerprint(s) for s in b]
    c = generate_samples(12, seed=6)
    assert all(_fingerprint(x) != _fingerprint(y) for x, y in zip(a, c, strict=True))
    assert [s.task for s in a[:10]] == list(TASKS)
    assert {s.transform for s in a} - {None} <= set(ORIENTATIONS)


def test_samples_become_records(tmp_path: Path) -> None:
    samples = generate_samples(10, seed=1, transforms=["identity", "rotate_270"])
    records = [s.to_record(index=i, split="test") for i, s in enumerate(samples)]
    loaded = read_parquet(write_parquet(records, tmp_path / "synthetic.parquet"))
    for sample, record in zip(samples, loaded, strict=True):
        assert record.question == sample.question and record.answer == sample.answer
        assert record.transform == sample.transform and record.ability == sample.task
        assert record.bbox == (None if sample.bbox is None else list(sample.bbox))
        assert record.images[0].tobytes() == sample.image.tobytes()


def test_unknown_tasks_are_named() -> None:
    with pytest.raises(ValueError, match="unknown task 'poetry'; valid tasks: read_line"):
        make_sample("poetry")
    with pytest.raises(ValueError, match="unknown task"):
        generate_samples(1, tasks=["poetry"])
    with pytest.raises(ValueError, match="unknown transform 'spin'"):
        generate_samples(1, transforms=["spin"])


def test_rendering_is_fast() -> None:
    make_sample("read_line", 99)  # warm the font and photo caches
    make_sample("small_label", 99)
    timings = {}
    for task in ("read_line", "small_label", "sign_text", "chart_value"):
        runs = []
        for seed in range(5):
            start = time.perf_counter()
            make_sample(task, 100 + seed)
            runs.append(time.perf_counter() - start)
        timings[task] = statistics.median(runs)
    # typically 3-30 ms here; the bound leaves room for a busy machine
    assert max(timings.values()) < 0.15, timings


# -- fonts --------------------------------------------------------------------------------------
def test_several_fonts_are_available() -> None:
    assert len(fonts.usable_fonts()) >= 3
    assert fonts.find_font("dejavusans.ttf").name == "DejaVuSans.ttf"
    assert fonts.load_font("DejaVuSerif", 20).size == 20


def test_missing_font_names_it_and_the_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(fonts.FontNotFoundError) as info:
        fonts.find_font("NoSuchFont-Regular")
    message = str(info.value)
    assert "'NoSuchFont-Regular'" in message
    assert "searched:" in message and "fonts" in message
    with pytest.raises(fonts.FontNotFoundError, match="NoSuchFont"):
        fonts.usable_fonts(("NoSuchFont",))


def test_extra_font_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = fonts.find_font("DejaVuSansMono")
    (tmp_path / "MyMono.ttf").write_bytes(source.read_bytes())
    monkeypatch.setenv("CODEVISION_FONT_DIRS", str(tmp_path))
    fonts.available_fonts.cache_clear()
    try:
        assert fonts.find_font("MyMono") == tmp_path / "MyMono.ttf"
        assert str(tmp_path) in [str(p) for p in fonts.font_dirs()]
    finally:
        monkeypatch.delenv("CODEVISION_FONT_DIRS")
        fonts.available_fonts.cache_clear()


# -- user folders -------------------------------------------------------------------------------
@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    from skimage import data

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")  # 600x400
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg")  # 451x300
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    return tmp_path


def test_folder_from_jsonl(folder: Path) -> None:
    entries = [
        {"file": "coffee.png", "question": "What is in the cup?", "answer": "coffee"},
        {"image": "cat.jpg", "question": "Animal?", "answer": "cat", "bbox": [10, 10, 200, 250]},
        {"file": "cat.jpg", "question": "Upside?", "answer": "no", "transform": "rotate_180"},
    ]
    (folder / "annotations.jsonl").write_text("\n".join(json.dumps(e) for e in entries))
    records = load_annotated_folder(folder, dataset_name="mine")
    assert [r.answer for r in records] == ["coffee", "cat", "no"]
    assert records[0].images[0].size == (600, 400) and records[0].bbox is None
    assert records[1].bbox == [10.0, 10.0, 200.0, 250.0]
    assert records[2].transform == "rotate_180" and records[2].dataset_name == "mine"
    assert [r.index for r in records] == [0, 1, 2] and records.skipped == []


def test_folder_from_csv_with_errors(folder: Path) -> None:
    rows = [
        {"file": "coffee.png", "question": "Q1", "answer": "A1", "bbox": "0,0,600,400"},
        {"file": "broken.png", "question": "Q2", "answer": "A2", "bbox": ""},
        {"file": "cat.jpg", "question": "Q3", "answer": "A3", "bbox": "[400, 10, 460, 40]"},
        {"file": "missing.png", "question": "Q4", "answer": "A4", "bbox": ""},
        {"file": "cat.jpg", "question": "Q5", "answer": "A5", "bbox": "1 2 3 4"},
    ]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(RecordError, match=r"line 3 of labels\.csv \(broken\.png\)"):
        load_annotated_folder(folder, "labels.csv")
    with pytest.warns(SkippedRecordsWarning, match="skipped 3"):
        records = load_annotated_folder(folder, "labels.csv", on_error="skip")
    assert [r.question for r in records] == ["Q1", "Q5"]
    assert records[0].bbox == [0.0, 0.0, 600.0, 400.0] and records[1].bbox == [1, 2, 3, 4]
    reasons = {s.location: s.reason for s in records.skipped}
    assert "not a recognised image format" in reasons["line 3 of labels.csv"]
    assert "outside the 451x300 image" in reasons["line 4 of labels.csv"]
    assert "not found" in reasons["line 5 of labels.csv"]


def test_folder_entry_errors(folder: Path) -> None:
    (folder / "annotations.jsonl").write_text(
        json.dumps({"file": "coffee.png", "question": "Q"}) + "\n"
    )
    with pytest.raises(RecordError, match=r"line 1 of annotations\.jsonl.*missing 'answer'"):
        load_annotated_folder(folder)
    (folder / "annotations.jsonl").write_text(
        json.dumps({"file": "coffee.png", "question": "Q", "answer": "A", "transform": "x"})
    )
    with pytest.raises(RecordError, match="unknown transform 'x'"):
        load_annotated_folder(folder)
    (folder / "annotations.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotations\.jsonl"):
        load_annotated_folder(folder)
