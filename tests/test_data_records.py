"""MVToolBench-style records: rows, JSONL and parquet, the reference layout, validation."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from langchain_codevision.data.records import (
    EXTRA_INFO_KEYS,
    IMAGE_PLACEHOLDER,
    Record,
    RecordError,
    SkippedRecordsWarning,
    count_placeholders,
    read_jsonl,
    read_parquet,
    records_to_table,
    write_jsonl,
    write_parquet,
)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    from skimage import data

    return [
        Image.fromarray(data.astronaut()).resize((128, 128)),
        Image.fromarray(data.coffee()).resize((150, 100)),
        Image.fromarray(data.camera()).resize((90, 70)),  # mode L
    ]


@pytest.fixture()
def records(photos: list[Image.Image]) -> list[Record]:
    return [
        Record(
            question="What does the sign say?",
            answer="OPEN",
            images=[photos[0]],
            bbox=[10, 20, 60, 40],
            transform="rotate_90",
            dataset_name="signs",
            index=0,
            split="test",
            ability="ocr",
        ),
        Record(
            question="Which transform was applied?",
            answer="flip_horizontal",
            images=[photos[1]],
            transform="flip_horizontal",
            dataset_name="signs",
            index=1,
            split="test",
            system_prompt="Think, then answer.",
        ),
        Record(
            question="Are these the same scene?",
            answer="no",
            images=[photos[0], photos[2]],
            dataset_name="pairs",
            index=7,
            extra={"difficulty": 3},
        ),
    ]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _same_record(a: Record, b: Record) -> None:
    for name in ("question", "answer", "bbox", "transform", "dataset_name", "index", "split"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.system_prompt == b.system_prompt
    assert a.chat_prompt() == b.chat_prompt()
    assert len(a.images) == len(b.images)
    for x, y in zip(a.images, b.images, strict=True):
        assert x.size == y.size and np.array_equal(np.asarray(x), np.asarray(y))


# -- the row ------------------------------------------------------------------------------------
def test_row_has_the_verl_layout(records: list[Record]) -> None:
    row = records[0].to_row()
    assert set(row) == {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"}
    assert row["prompt"] == [{"role": "user", "content": "<image>\nWhat does the sign say?"}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "OPEN"}
    assert set(row["extra_info"]) == set(EXTRA_INFO_KEYS)
    assert row["extra_info"]["bbox"] == [10.0, 20.0, 60.0, 40.0]
    assert row["extra_info"]["transform"] == "rotate_90"
    assert row["data_source"] == "signs"
    (image,) = row["images"]
    assert image["path"] is None
    assert Image.open(io.BytesIO(image["bytes"])).format == "PNG"
    system_row = records[1].to_row()
    assert system_row["prompt"][0] == {"role": "system", "content": "Think, then answer."}
    assert records[2].to_row()["prompt"][-1]["content"].count(IMAGE_PLACEHOLDER) == 2


def test_row_round_trip(records: list[Record]) -> None:
    for record in records:
        _same_record(Record.from_row(record.to_row()), record)
    assert Record.from_row(records[2].to_row()).extra == {"difficulty": 3}


def test_transform_objects_and_arrays_are_accepted(photos: list[Image.Image]) -> None:
    from langchain_codevision.data.transforms import get_transform

    record = Record("q", 42, images=[np.asarray(photos[0])], transform=get_transform("rotate_180"))
    assert record.transform == "rotate_180" and record.answer == "42"
    assert isinstance(record.images[0], Image.Image)


def test_placeholder_mismatch_names_the_record(photos: list[Image.Image]) -> None:
    record = Record("q", "a", images=[photos[0]], index=12, dataset_name="docs")
    record.prompt = [{"role": "user", "content": "no placeholder here"}]
    with pytest.raises(RecordError, match=r"index 12 of 'docs'.*0 <image>.*1 image"):
        record.to_row()
    row = Record("q", "a", images=[photos[0]], index=5).to_row()
    row["images"] = []
    with pytest.raises(RecordError, match=r"index 5.*1 <image> placeholder\(s\) but .* 0 image"):
        Record.from_row(row)


def test_bad_bbox_and_missing_answer(photos: list[Image.Image]) -> None:
    row = Record("q", "a", images=[photos[0]], index=3).to_row()
    row["extra_info"]["bbox"] = [5, 5, 1, 1]
    with pytest.raises(RecordError, match=r"index 3.*x0 <= x1"):
        Record.from_row(row)
    row["extra_info"]["bbox"] = [1, 2, 3]
    with pytest.raises(RecordError, match="4 finite numbers"):
        Record.from_row(row)
    row = Record("q", "a", images=[photos[0]]).to_row()
    del row["extra_info"]["answer"]
    assert Record.from_row(row).answer == "a"  # falls back to reward_model.ground_truth
    del row["reward_model"]
    with pytest.raises(RecordError, match="no answer"):
        Record.from_row(row)


def test_custom_prompts_are_kept_verbatim(photos: list[Image.Image]) -> None:
    row = Record("What is shown?", "a cat", images=[photos[1]]).to_row()
    row["prompt"][-1]["content"] = "Look at this: <image>\nWhat is shown? Answer briefly."
    record = Record.from_row(row)
    assert record.question == "What is shown?"
    assert record.prompt == row["prompt"]
    assert record.to_row()["prompt"] == row["prompt"]
    assert count_placeholders(record.chat_prompt()) == 1


def test_multimodal_content_parts_are_read() -> None:
    image = Image.new("RGB", (10, 10), "red")
    row = {
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}
        ],
        "images": [image],
        "reward_model": {"style": "rule", "ground_truth": "red"},
    }
    record = Record.from_row(row)
    assert record.question == "Colour?" and record.answer == "red"


# -- parquet ------------------------------------------------------------------------------------
def test_parquet_round_trip(records: list[Record], tmp_path: Path) -> None:
    path = write_parquet(records, tmp_path / "out" / "data.parquet")
    loaded = read_parquet(path)
    assert len(loaded) == 3 and loaded.skipped == []
    for a, b in zip(loaded, records, strict=True):
        _same_record(a, b)
    assert loaded[2].extra == {"difficulty": 3}
    schema = pq.read_schema(path)
    assert schema.field("images").type == pa.list_(
        pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    )
    assert pa.types.is_struct(schema.field("extra_info").type)


def _reference_table(records: list[Record]) -> pa.Table:
    """A file laid out as the reference release's RL data: built by hand with pyarrow."""
    rows = {
        "data_source": [],
        "prompt": [],
        "images": [],
        "ability": [],
        "reward_model": [],
        "extra_info": [],
    }
    for r in records:
        rows["data_source"].append(r.dataset_name)
        rows["prompt"].append(
            ([{"role": "system", "content": r.system_prompt}] if r.system_prompt else [])
            + [{"role": "user", "content": "<image>\n" * len(r.images) + r.question}]
        )
        rows["images"].append([{"bytes": _png(im), "path": None} for im in r.images])
        rows["ability"].append(r.ability)
        rows["reward_model"].append({"style": "rule", "ground_truth": r.answer})
        rows["extra_info"].append(
            {
                "answer": r.answer,
                "bbox": r.bbox,
                "dataset_name": r.dataset_name,
                "index": r.index,
                "question": r.question,
                "split": r.split,
                "transform": r.transform,
            }
        )
    return pa.table(rows)


def test_reference_layout_loads_like_ours(records: list[Record], tmp_path: Path) -> None:
    records = records[:2]
    ref = tmp_path / "reference.parquet"
    pq.write_table(_reference_table(records), ref)
    ours = write_parquet(records, tmp_path / "ours.parquet")
    assert pq.read_schema(ref).field("extra_info").type.get_field_index("bbox") >= 0
    for a, b in zip(read_parquet(ref), read_parquet(ours), strict=True):
        _same_record(a, b)
    assert read_parquet(ref)[1].bbox is None


def test_parquet_with_image_paths(records: list[Record], tmp_path: Path) -> None:
    records[0].images[0].save(tmp_path / "pic.png")
    table = _reference_table(records[:1])
    table = table.set_column(
        table.schema.get_field_index("images"),
        "images",
        pa.array([[{"bytes": None, "path": "pic.png"}]]),
    )
    pq.write_table(table, tmp_path / "paths.parquet")
    (loaded,) = read_parquet(tmp_path / "paths.parquet")
    _same_record(loaded, records[0])


def test_unreadable_images_are_named_and_skippable(records: list[Record], tmp_path: Path) -> None:
    table = records_to_table(records)
    rows = table.to_pylist()
    rows[1]["images"] = [{"bytes": b"definitely not an image", "path": None}]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    with pytest.raises(RecordError, match=r"row 1 of bad.parquet \(index 1\): image 0"):
        read_parquet(path)
    with pytest.warns(SkippedRecordsWarning, match="skipped 1 record"):
        loaded = read_parquet(path, on_error="skip")
    assert [r.index for r in loaded] == [0, 7]
    (skipped,) = loaded.skipped
    assert skipped.location == "row 1 of bad.parquet"
    assert "not a recognised image format" in skipped.reason
    with pytest.raises(ValueError, match="on_error"):
        read_parquet(path, on_error="ignore")  # type: ignore[arg-type]


# -- JSONL --------------------------------------------------------------------------------------
def test_jsonl_round_trip_with_relative_image_paths(records: list[Record], tmp_path: Path) -> None:
    path = write_jsonl(records, tmp_path / "set" / "data.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[2]["images"] == ["data_images/000002_0.png", "data_images/000002_1.png"]
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "set", moved)  # relative paths survive a move
    loaded = read_jsonl(moved / "data.jsonl")
    for a, b in zip(loaded, records, strict=True):
        _same_record(a, b)


def test_jsonl_custom_image_dir(records: list[Record], tmp_path: Path) -> None:
    path = write_jsonl(records[:1], tmp_path / "a" / "d.jsonl", image_dir=tmp_path / "imgs")
    assert json.loads(path.read_text())["images"] == ["../imgs/000000_0.png"]
    _same_record(read_jsonl(path)[0], records[0])


def test_jsonl_bad_lines(records: list[Record], tmp_path: Path) -> None:
    path = write_jsonl(records, tmp_path / "d.jsonl")
    lines = path.read_text().splitlines()
    lines.insert(1, "{not json")
    (tmp_path / "d_images" / "000002_1.png").write_bytes(b"broken")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"line 2 of d\.jsonl: not valid JSON"):
        read_jsonl(path)
    with pytest.warns(SkippedRecordsWarning):
        loaded = read_jsonl(path, on_error="skip")
    assert [r.index for r in loaded] == [0, 1]
    assert [s.location for s in loaded.skipped] == ["line 2 of d.jsonl", "line 4 of d.jsonl"]
    assert "image 1" in loaded.skipped[1].reason


def test_source_bbox_maps_back_through_the_transform(photos: list[Image.Image]) -> None:
    from langchain_codevision.data.transforms import parse_transform

    image, box = photos[1], (10.0, 20.0, 60.0, 45.0)  # 150x100
    for name in ("rotate_90", "flip_vertical+rotate_270", "rotate_180+blur", None):
        t = parse_transform(name).bind(image.size)
        record = Record("q", "a", images=[t.apply(image)], bbox=t.map_box(box), transform=name)
        assert record.source_bbox() == list(box)
    assert Record("q", "a", images=[image]).source_bbox() is None
    cropped = Record("q", "a", images=[image], bbox=[0, 0, 5, 5], transform="crop")
    with pytest.raises(ValueError, match="cannot map the bbox back through 'crop'"):
        cropped.source_bbox()
    scaled = Record("q", "a", images=[image], bbox=[0, 0, 5, 5], transform="scale_down")
    with pytest.raises(ValueError, match="only orientation"):
        scaled.source_bbox()


# -- transforms as the release stores them -------------------------------------------------------
def _release_row(image: Image.Image, transform: object, index: int) -> dict:
    """A row as the release's RL data has it, written by hand."""
    return {
        "data_source": "mvtoolbench",
        "prompt": [{"role": "user", "content": "<image>\nWhat is written on the sign?"}],
        "images": [{"bytes": _png(image), "path": None}],
        "ability": "ocr",
        "reward_model": {"style": "rule", "ground_truth": "EXIT"},
        "extra_info": {
            "answer": "EXIT",
            "bbox": [4.0, 6.0, 30.0, 20.0],
            "dataset_name": "mvtoolbench",
            "index": index,
            "question": "What is written on the sign?",
            "split": "test",
            "transform": transform,
        },
    }


RELEASE_TRANSFORMS = [["crop", "rotate_90"], ["flip_vertical"], "rotate_270", None]


def _same_row(written: dict, original: dict) -> None:
    """Equal apart from how the PNG bytes were compressed (pixels must be equal)."""
    for key in ("data_source", "prompt", "ability", "reward_model", "extra_info"):
        assert written[key] == original[key], key
    assert type(written["extra_info"]["transform"]) is type(original["extra_info"]["transform"])
    assert len(written["images"]) == len(original["images"])
    for a, b in zip(written["images"], original["images"], strict=True):
        x, y = (Image.open(io.BytesIO(item["bytes"])) for item in (a, b))
        assert x.size == y.size and np.array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("transform", RELEASE_TRANSFORMS, ids=repr)
def test_release_row_round_trips_unchanged(photos: list[Image.Image], transform: object) -> None:
    row = _release_row(photos[1], transform, 3)
    record = Record.from_row(row)
    assert record.transform == transform  # the list stays a list, never its repr
    _same_row(record.to_row(), row)


def test_release_list_rows_round_trip_through_parquet(
    photos: list[Image.Image], tmp_path: Path
) -> None:
    rows = [
        _release_row(photos[k], t, k)
        for k, t in enumerate([["crop", "rotate_90"], ["rotate_180"], None])
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "release.parquet")
    assert pq.read_schema(tmp_path / "release.parquet").field("extra_info").type.field(
        "transform"
    ).type == pa.list_(pa.string())
    loaded = read_parquet(tmp_path / "release.parquet")
    assert [r.transform for r in loaded] == [["crop", "rotate_90"], ["rotate_180"], None]
    assert [r.expected_fixes for r in loaded] == [["crop", "rotate_270"], ["rotate_180"], []]
    again = pq.read_table(write_parquet(loaded, tmp_path / "again.parquet")).to_pylist()
    for written, original in zip(again, rows, strict=True):
        _same_row(written, original)


def test_release_string_rows_round_trip_through_parquet(
    photos: list[Image.Image], tmp_path: Path
) -> None:
    rows = [_release_row(photos[k], t, k) for k, t in enumerate(["rotate_90", None, "crop"])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "release.parquet")
    loaded = read_parquet(tmp_path / "release.parquet")
    assert [r.transform for r in loaded] == ["rotate_90", None, "crop"]
    path = write_parquet(loaded, tmp_path / "again.parquet")
    info = pq.read_schema(path).field("extra_info").type
    assert info.field("transform").type == pa.string()
    for written, original in zip(pq.read_table(path).to_pylist(), rows, strict=True):
        _same_row(written, original)


def test_release_rows_round_trip_through_jsonl(photos: list[Image.Image], tmp_path: Path) -> None:
    rows = [_release_row(photos[1], t, k) for k, t in enumerate(RELEASE_TRANSFORMS)]
    source = tmp_path / "release.jsonl"
    with source.open("w") as out:
        for row in rows:
            plain = dict(row, images=[f"img{row['extra_info']['index']}.png"])
            out.write(json.dumps(plain) + "\n")
    photos[1].save(tmp_path / "img0.png")
    for k in range(1, len(rows)):
        shutil.copy(tmp_path / "img0.png", tmp_path / f"img{k}.png")
    path = write_jsonl(read_jsonl(source), tmp_path / "out" / "again.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for written, original in zip(lines, rows, strict=True):
        for key in ("data_source", "prompt", "ability", "reward_model", "extra_info"):
            assert written[key] == original[key], key
    assert [line["extra_info"]["transform"] for line in lines] == RELEASE_TRANSFORMS


def test_chained_transforms_are_written_as_the_release_list(
    photos: list[Image.Image], tmp_path: Path
) -> None:
    from langchain_codevision.data.transforms import compose

    chained = Record("q", "a", images=[photos[0]], transform="crop+rotate_90", index=0)
    composed = Record("q", "a", images=[photos[0]], transform=compose("rotate_90", "flip_vertical"))
    single = Record("q", "a", images=[photos[0]], transform="rotate_90", index=2)
    plain = Record("q", "a", images=[photos[0]], index=3)
    assert chained.to_row()["extra_info"]["transform"] == ["crop", "rotate_90"]
    assert composed.transform == "rotate_90+flip_vertical"
    assert composed.to_row()["extra_info"]["transform"] == ["rotate_90", "flip_vertical"]
    assert single.to_row()["extra_info"]["transform"] == "rotate_90"
    assert plain.to_row()["extra_info"]["transform"] is None
    assert chained.transform_names == ["crop", "rotate_90"]
    assert chained.expected_fixes == ["crop", "rotate_270"]
    # one parquet column has one type: with any list in it, single names become 1-item lists
    path = write_parquet([chained, single, plain], tmp_path / "mixed.parquet")
    stored = [row["extra_info"]["transform"] for row in pq.read_table(path).to_pylist()]
    assert stored == [["crop", "rotate_90"], ["rotate_90"], None]
    loaded = read_parquet(path)
    assert [r.transform_names for r in loaded] == [["crop", "rotate_90"], ["rotate_90"], []]
    assert [r.expected_fixes for r in loaded] == [["crop", "rotate_270"], ["rotate_270"], []]
    jsonl = read_jsonl(write_jsonl([chained, single, plain], tmp_path / "mixed.jsonl"))
    assert [r.transform for r in jsonl] == [["crop", "rotate_90"], "rotate_90", None]


def test_list_transforms_are_never_their_repr(photos: list[Image.Image]) -> None:
    from langchain_codevision.data.transforms import get_transform

    record = Record("q", "a", images=[photos[0]], transform=("crop", get_transform("rotate_90")))
    assert record.transform == ["crop", "rotate_90"]
    array = Record("q", "a", images=[photos[0]], transform=np.array(["flip_horizontal"]))
    assert array.transform == ["flip_horizontal"] and type(array.transform[0]) is str
    # text spelling a list (what older versions wrote) is read back as the list
    for text in ("['crop', 'rotate_90']", '["crop", "rotate_90"]'):
        row = _release_row(photos[1], text, 0)
        assert Record.from_row(row).transform == ["crop", "rotate_90"]
        assert Record.from_row(row).to_row()["extra_info"]["transform"] == ["crop", "rotate_90"]
    assert Record.from_row(_release_row(photos[1], "  ", 0)).transform is None
    assert Record.from_row(_release_row(photos[1], [], 0)).transform == []


@pytest.mark.parametrize("bad", [{"name": "rotate_90"}, [1, 2], 90, ["rotate_90", None]], ids=repr)
def test_malformed_transforms_name_the_row(photos: list[Image.Image], bad: object) -> None:
    with pytest.raises(RecordError, match=r"row \(index 5\): transform must be"):
        Record.from_row(_release_row(photos[1], bad, 5))
    with pytest.raises(TypeError, match="transform"):
        Record("q", "a", images=[photos[0]], transform=bad)


def test_source_bbox_reads_the_list_form(photos: list[Image.Image]) -> None:
    from langchain_codevision.data.transforms import parse_transform

    image, box = photos[1], (10.0, 20.0, 60.0, 45.0)
    t = parse_transform("rotate_90+flip_horizontal").bind(image.size)
    moved = t.map_box(box)
    for form in (["rotate_90", "flip_horizontal"], "rotate_90+flip_horizontal"):
        record = Record("q", "a", images=[t.apply(image)], bbox=moved, transform=form)
        assert record.source_bbox() == list(box)
    cropped = Record("q", "a", images=[image], bbox=[0, 0, 5, 5], transform=["crop", "rotate_90"])
    with pytest.raises(ValueError, match="cannot map the bbox back"):
        cropped.source_bbox()
