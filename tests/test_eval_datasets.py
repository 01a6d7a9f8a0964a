"""Every loader on release-layout files built here from rendered text with known answers."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from langchain_codevision.data.records import Record, write_jsonl, write_parquet
from langchain_codevision.data.sources import make_sample
from langchain_codevision.data.transforms import get_transform
from langchain_codevision.eval.datasets import (
    PAPER_COLUMNS,
    EvalItem,
    detect_format,
    load_dataset,
    orientation_diagnostic,
    render_pdf_page,
    transformed_variants,
)
from langchain_codevision.images import encode_image


@pytest.fixture(scope="module")
def signs():
    return [make_sample("sign_text", k) for k in range(3)]


def test_mvtoolbench_parquet_and_jsonl_through_records(tmp_path, signs):
    records = [
        s.transformed("rotate_90").to_record(index=k, dataset_name="mvtoolbench", split="test")
        for k, s in enumerate(signs)
    ]
    for path in (
        write_parquet(records, tmp_path / "mv.parquet"),
        write_jsonl(records, tmp_path / "mv" / "mv.jsonl"),
    ):
        assert detect_format(path) == "mvtoolbench"
        items = load_dataset(path)
        assert [i.truth for i in items] == [s.answer for s in signs]
        assert items[0].transform == "rotate_90" and items[0].expected == ["rotate_270"]
        assert items[0].scoring == "answer" and items[0].dataset == "mvtoolbench"
        assert np.array_equal(np.asarray(items[1].images[0]), np.asarray(records[1].images[0]))
        assert items[2].bbox == pytest.approx(records[2].bbox)


def test_mvtoolbench_release_row_with_list_transform_and_relative_image(tmp_path, signs):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode_image(signs[0].image))
    row = {
        "data_source": "mvtoolbench",
        "prompt": [{"role": "user", "content": "<image>\n" + signs[0].question}],
        "images": [{"bytes": None, "path": "img/a.png"}],
        "reward_model": {"style": "rule", "ground_truth": signs[0].answer},
        "extra_info": {
            "answer": signs[0].answer,
            "bbox": None,
            "dataset_name": "mv",
            "index": 7,
            "question": signs[0].question,
            "split": "test",
            "transform": ["crop", "rotate_180"],
        },
    }
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (item,) = load_dataset(path)
    assert item.transform == "crop+rotate_180" and item.expected == ["crop", "rotate_180"]
    assert item.images[0].size == signs[0].image.size and item.id.startswith("mv-7")


def test_ocrbench_json(tmp_path, signs):
    for k, s in enumerate(signs):
        s.image.save(tmp_path / f"{k}.png")
    rows = [
        {
            "dataset_name": "IIIT5K",
            "id": k,
            "image_path": f"{k}.png",
            "question": s.question,
            "answers": [s.answer, s.answer.lower()] if k else s.answer,
            "type": "Regular Text Recognition",
        }
        for k, s in enumerate(signs)
    ]
    path = tmp_path / "OCRBench.json"
    path.write_text(json.dumps(rows))
    assert detect_format(path) == "ocrbench"
    items = load_dataset(path)
    assert [i.scoring for i in items] == ["ocrbench"] * 3
    assert items[0].answers == [signs[0].answer] and len(items[1].answers) == 2
    assert items[2].qtype == "Regular Text Recognition" and items[2].dataset == "IIIT5K"
    assert items[1].images[0].size == signs[1].image.size


def test_chartqa_like_expands_question_lists(tmp_path):
    chart = make_sample("chart_value", 0)
    chart.image.save(tmp_path / "c.png")
    rows = [
        {
            "imgname": "c.png",
            "Question": [chart.question, "How many bars?"],
            "Answer": [chart.answer, "5"],
            "Question Type": "Factoid",
        }
    ]
    path = tmp_path / "chartqapro.json"
    path.write_text(json.dumps(rows))
    assert detect_format(path) == "chartqa"
    items = load_dataset(path)
    assert [i.truth for i in items] == [chart.answer, "5"]
    assert {i.qtype for i in items} == {"Factoid"} and len({i.id for i in items}) == 2


def _pdf_renderer() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("pypdfium2") is not None or shutil.which("pdftoppm") is not None


@pytest.mark.skipif(not _pdf_renderer(), reason="needs pypdfium2 or poppler's pdftoppm")
def test_generic_folder_with_a_pdf_page(tmp_path, signs):
    signs[0].image.save(tmp_path / "a.png")
    signs[1].image.convert("RGB").save(tmp_path / "doc.pdf", resolution=72)
    lines = [
        {
            "id": "a",
            "image": "a.png",
            "question": signs[0].question,
            "answer": signs[0].answer,
            "type": "sign",
            "transform": "flip_vertical",
        },
        {
            "id": "p",
            "image": "doc.pdf#page=1",
            "question": "Which box?",
            "answer": "b",
            "scoring": "bbox",
            "bbox": [1, 2, 3, 4],
        },
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    assert detect_format(tmp_path) == "generic"
    a, p = load_dataset(tmp_path)
    assert a.expected == ["flip_vertical"] and a.qtype == "sign"
    assert p.scoring == "bbox" and p.bbox == [1, 2, 3, 4]
    page = render_pdf_page(tmp_path / "doc.pdf", 1, dpi=72)
    assert p.images[0].size == (2 * page.size[0], 2 * page.size[1])  # default 144 dpi
    assert abs(page.size[0] - signs[1].image.size[0]) <= 2  # 72 dpi: one pixel per point
    # the rendered page shows the sign's dark text where the original has it
    assert np.asarray(page.convert("L")).min() < 100
    with pytest.raises(ValueError, match="no questions"):
        load_dataset(tmp_path / "doc.pdf")


def test_transformed_variants_paper_columns(signs):
    base = EvalItem(
        id="s",
        question=signs[0].question,
        answers=[signs[0].answer],
        images=[signs[0].image],
        bbox=list(signs[0].bbox),
    )
    variants = transformed_variants([base])
    assert [v.transform for v in variants] == list(PAPER_COLUMNS)
    assert [v.id for v in variants][:2] == ["s@source", "s@rotate_90"]
    rot = variants[1]
    expected = get_transform("rotate_90").bind(base.images[0].size)
    assert np.array_equal(np.asarray(rot.images[0]), np.asarray(expected.apply(base.images[0])))
    assert rot.bbox == pytest.approx(list(expected.map_box(base.bbox)))
    assert rot.expected == ["rotate_270"] and variants[0].expected == []
    assert variants[0].images[0] is base.images[0] and rot.truth == base.truth


def test_orientation_diagnostic_balanced_five_way(signs):
    images = [make_sample("read_line", k).image.resize((200, 200)) for k in range(10)]
    items = orientation_diagnostic(images, seed=3)
    counts = Counter(i.truth for i in items)
    assert len(counts) == 5 and set(counts.values()) == {2}
    assert all(i.scoring == "choice" and len(i.choices) == 5 for i in items)
    assert "E. flip_vertical" in items[0].question
    for item, image in zip(items, images, strict=True):
        applied = get_transform(item.truth).bind(image.size).apply(image)
        assert np.array_equal(np.asarray(item.images[0]), np.asarray(applied))
    assert [i.truth for i in orientation_diagnostic(images, seed=3)] == [i.truth for i in items]


def test_unknown_format_is_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"image": "a.png", "question": "q", "answer": "a"}))
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(path, "nope")


def test_records_roundtrip_keeps_answer_text(signs):
    record = Record(question="q", answer="7", images=[signs[0].image])
    from langchain_codevision.eval.datasets import from_record

    assert from_record(record).answers == ["7"]
