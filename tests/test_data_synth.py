"""Trajectory synthesis through the real graph and kernel."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from langchain_codevision.cli import main
from langchain_codevision.data.export import export_sharegpt
from langchain_codevision.data.records import read_parquet, write_parquet
from langchain_codevision.data.synth import (
    TASK_TYPES,
    default_sample_for,
    plan_task,
    records_for,
    run_task,
    synthesize,
)
from langchain_codevision.data.trajectory import load_trajectories
from langchain_codevision.kernel import KernelPool

SAMPLES = default_sample_for(seed=5)


def _rows(folder):
    text = (folder / "trajectories.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def pool():
    with KernelPool(size=2) as shared:
        yield shared


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory, pool):
    out = tmp_path_factory.mktemp("synth")
    report = synthesize(SAMPLES, out, 20, seed=5, pool=pool, progress=False)
    return out, report


def test_every_task_type_is_kept(synthesized) -> None:
    out, report = synthesized
    assert report.kept == 20 and report.rejected == 0
    assert set(report.by_type) == set(TASK_TYPES)
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    for row in rows:
        placeholders = sum(turn["text"].count("<image>") for turn in row["turns"])
        assert placeholders == sum(len(turn["images"]) for turn in row["turns"])
        assert row["turns"][-1]["text"].endswith(f"<answer>{row['metadata']['answer']}</answer>")


def test_error_handling_trajectories_read_the_real_error(synthesized) -> None:
    out, _ = synthesized
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    errors = [r for r in rows if r["metadata"]["task_type"] == "error_handling"]
    assert errors
    for row in errors:
        tool_turns = [t["text"] for t in row["turns"] if t["role"] == "tool"]
        if tool_turns[0].startswith("Error:"):
            repair = row["turns"][3]["text"]
            first_error = tool_turns[0].splitlines()[0][len("Error: ") :]
            assert first_error.split("\n")[0][:40] in repair


def test_synthesis_is_deterministic_and_resumable(tmp_path, pool, synthesized) -> None:
    out, _ = synthesized
    first = synthesize(SAMPLES, tmp_path, 8, seed=5, pool=pool, progress=False)
    again = synthesize(SAMPLES, tmp_path, 12, seed=5, pool=pool, progress=False)
    assert (first.kept, again.skipped, again.kept) == (8, 8, 4)
    original = {row["name"]: row for row in _rows(out)}
    resumed = {row["name"]: row for row in _rows(tmp_path)}
    for name, row in resumed.items():
        assert [t["text"] for t in row["turns"]] == [t["text"] for t in original[name]["turns"]]
        for turn_a, turn_b in zip(row["turns"], original[name]["turns"], strict=True):
            for rel_a, rel_b in zip(turn_a["images"], turn_b["images"], strict=True):
                resumed_png, original_png = (
                    (tmp_path / rel_a).read_bytes(),
                    (out / rel_b).read_bytes(),
                )
                assert resumed_png == original_png, _image_difference(
                    rel_a, turn_a["role"], resumed_png, original_png
                )


def _image_difference(name: str, role: str, resumed: bytes, original: bytes) -> str:
    """Where two PNGs of one trajectory image differ: in their pixels, or in bytes only."""
    a = np.asarray(Image.open(io.BytesIO(resumed)))
    b = np.asarray(Image.open(io.BytesIO(original)))
    if a.shape != b.shape:
        return f"{name} ({role} turn): resumed {a.shape} vs original {b.shape}"
    where = np.argwhere(a != b)
    if not len(where):
        return f"{name} ({role} turn): equal pixels, different PNG bytes (the encoder varies)"
    delta = np.abs(a.astype(int) - b.astype(int)).max()
    return (
        f"{name} ({role} turn): {len(where)} samples differ, by up to {delta}, within "
        f"{where.min(0).tolist()}..{where.max(0).tolist()} of {list(a.shape)}"
    )


def test_a_wrong_teacher_is_rejected(pool) -> None:
    task = plan_task(SAMPLES(1), 1, seed=5, mix={"single_tool": 1.0})
    assert task.transform is not None
    # the teacher "forgets" to fix the image: its code returns the input unchanged
    first = task.plan.replies[0]
    task.plan.replies[0] = first.replace("result = ", "result = image if True else ", 1)
    trajectory, reason, _ = run_task(task, pool)
    assert trajectory is None
    assert reason == "image 1 does not match the expected result"


def test_wrong_answer_is_rejected(pool) -> None:
    task = plan_task(SAMPLES(2), 2, seed=5, mix={"no_tool": 1.0})
    task.plan.replies[-1] = "<think>guess</think><answer>definitely wrong</answer>"
    trajectory, reason, _ = run_task(task, pool)
    assert trajectory is None and reason.startswith("answer 'definitely wrong'")


def test_unknown_task_types_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown task types"):
        synthesize(SAMPLES, tmp_path, 1, mix={"telepathy": 1.0}, progress=False)


def test_a_failing_sample_never_loses_the_others(tmp_path, pool) -> None:
    def flaky(index):
        if index == 1:
            raise OSError("unreadable image file broken.png")
        return SAMPLES(index)

    report = synthesize(flaky, tmp_path, 3, seed=5, pool=pool, progress=False)
    assert (report.kept, report.rejected) == (2, 1)
    rejected = json.loads((tmp_path / "rejected.jsonl").read_text())
    assert rejected["metadata"]["index"] == 1 and "broken.png" in rejected["reason"]


def test_export_and_records_from_a_synth_folder(synthesized, tmp_path) -> None:
    out, _ = synthesized
    trajectories = load_trajectories(out)
    assert len(trajectories) == 20
    report = export_sharegpt(trajectories, tmp_path / "lf")
    rows = load_dataset("json", data_files=str(report.path), split="train")
    assert rows.num_rows == 20
    records = records_for(out, SAMPLES, seed=5)
    path = write_parquet(records, tmp_path / "rl.parquet")
    loaded = read_parquet(path)
    assert len(loaded) == 20
    transformed = [r for r in loaded if r.transform]
    assert transformed and all(r.images[0].size[0] > 0 for r in loaded)


def test_cli_synth_and_export(tmp_path) -> None:
    out = tmp_path / "synth"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--count",
                "4",
                "--seed",
                "2",
                "--records",
                str(tmp_path / "rl.parquet"),
            ]
        )
        == 0
    )
    assert main(["export", str(out), "--format", "trl", "--out", str(tmp_path / "trl")]) == 0
    rows = load_dataset(
        "json", data_files=str(tmp_path / "trl" / "codevision.jsonl"), split="train"
    )
    assert rows.num_rows == 4 and (tmp_path / "rl.parquet").is_file()


def test_any_chat_model_can_teach_when_briefed(pool) -> None:
    from langchain_codevision.data.teacher import briefed_teacher
    from tests.scripted_model import ScriptedChatModel, text_call

    task = plan_task(SAMPLES(3), 3, seed=5, mix={"single_tool": 1.0})
    fix = task.plan.replies[0].split('"code": ')[1].split(', "description"')[0]
    model = ScriptedChatModel(
        replies=[text_call(json.loads(fix)), f"<answer>{task.answer}</answer>"], dialect="text"
    )
    trajectory, reason, _ = run_task(task, pool, teacher=briefed_teacher(model))
    assert reason is None and trajectory is not None
    system = model.received[0][0].content
    assert f"- transform applied to the image: {task.transform}" in system
    assert f"- correct answer: {task.answer}" in system
    assert system.startswith("You are a careful visual reasoner")  # the graph's prompt is kept


def test_a_trajectory_in_the_release_protocol(pool) -> None:
    from langchain_codevision.protocol import RELEASE_SUCCESS, release_system_prompt

    task = plan_task(SAMPLES(1), 1, seed=5, mix={"single_tool": 1.0})
    trajectory, reason, _ = run_task(task, pool, profile="release")
    assert reason is None and trajectory is not None
    assert trajectory.system.startswith(release_system_prompt() + "\n\n# Tools")
    tool_turns = [turn for turn in trajectory.turns if turn.role == "tool"]
    assert tool_turns and all(turn.text.endswith(RELEASE_SUCCESS) for turn in tool_turns)
    assert trajectory.turns[0].text.startswith("<image>\n")
