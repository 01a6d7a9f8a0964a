"""Synthesise training trajectories that really executed (planning lives in :mod:`.tasks`).

The recipe follows the paper: for each sample, first choose the task type and the tools it
needs, then transform the canonical image so those tools are really needed, then let the
teacher (see :mod:`.teacher`) build the trajectory turn by turn **through the real graph and
kernel**. A trajectory is kept only when the images its code produced match what the task
demands (orientation restored pixel for pixel, crops that cover the answer box, enhanced
contrast) and its answer is right; so everything exported really executed.

Task types (ratios configurable): ``single_tool``, ``multi_tool`` (chained in one call or
across turns), ``coarse_to_fine`` (nested crops), ``error_handling`` (a wrong tool, a code
error or a bad argument, read from the error text and repaired) and ``no_tool``.

Runs are deterministic by seed (each task's randomness derives from ``(seed, index)``),
resumable (finished indices in the output folder are skipped), parallel across a kernel pool
and show a progress bar.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kernel import KernelPool
from ..protocol import ProtocolProfile
from . import teacher as T
from .tasks import (
    DEFAULT_MIX,
    TASK_TYPES,
    TRANSFORM_QUESTION,
    SourceSample,
    SynthTask,
    plan_task,
    verify,
)
from .trajectory import STORE_FILE, Trajectory, trajectory_from_state, trajectory_row
from .transforms import get_transform

REJECTED_FILE = "rejected.jsonl"


@dataclass
class SynthReport:
    """Counts and throughput of a synthesis run."""

    out_dir: Path
    kept: int = 0
    rejected: int = 0
    skipped: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Trajectories attempted per second in this run."""
        done = self.kept + self.rejected
        return done / self.seconds if self.seconds else 0.0


def _finished(out_dir: Path) -> set[int]:
    done: set[int] = set()
    for name in (STORE_FILE, REJECTED_FILE):
        path = out_dir / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    done.add(int(json.loads(line)["metadata"]["index"]))
    return done


def run_task(
    task: SynthTask,
    pool: KernelPool,
    teacher: Callable[[SynthTask], Any] | None = None,
    profile: str | ProtocolProfile = "default",
) -> tuple[Trajectory | None, str | None, dict[str, Any]]:
    """Run one task through the graph; returns (trajectory or None, rejection reason, state).

    ``profile`` is the protocol the trajectory is written in (``"release"``: the release's
    prompt, schema and reply texts, for data the release's recipes train on unchanged).
    """
    from ..loop.graph import create_codevision_graph

    model = teacher(task) if teacher else T.TeacherModel(plan=task.plan)
    graph = create_codevision_graph(
        model, profile=profile, pool=pool, dialect="text", image_format="jpeg"
    )
    state = graph.invoke({"image": task.image, "question": task.question})
    reason = verify(task, state)
    if reason is not None:
        return None, reason, state
    name = f"synth-{task.index:06d}"
    return trajectory_from_state(state, name=name, metadata=task.metadata), None, state


def synthesize(
    sample_for: Callable[[int], SourceSample],
    out_dir: str | Path,
    count: int,
    *,
    seed: int = 0,
    mix: Mapping[str, float] | None = None,
    workers: int = 2,
    pool: KernelPool | None = None,
    teacher: Callable[[SynthTask], Any] | None = None,
    progress: bool = True,
    profile: str | ProtocolProfile = "default",
) -> SynthReport:
    """Synthesise ``count`` tasks into ``out_dir`` (``trajectories.jsonl`` + ``images/``).

    Args:
        sample_for: Index -> source sample (must be deterministic for resumability).
        out_dir: Output folder; indices already finished there are skipped.
        count: Number of task indices (0..count-1).
        seed: Seed of every random choice.
        mix: Task-type ratios (default :data:`DEFAULT_MIX`).
        workers: Episodes run at once (one kernel each).
        pool: Kernel pool (default: one of ``workers`` kernels, closed at the end).
        teacher: Task -> chat model, to use another teacher (e.g. a strong API model
            prompted with ``task.metadata``); default: :class:`~.teacher.TeacherModel`.
        progress: Show a progress bar.
        profile: The protocol profile the trajectories are written in.
    """
    mix = dict(mix or DEFAULT_MIX)
    unknown = set(mix) - set(TASK_TYPES)
    if unknown:
        raise ValueError(f"unknown task types {sorted(unknown)}; valid: {list(TASK_TYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = SynthReport(out)
    done = _finished(out)
    todo = [i for i in range(count) if i not in done]
    report.skipped = count - len(todo)
    own_pool = pool is None
    pool = pool or KernelPool(size=workers)
    lock = threading.Lock()
    bar = _progress(len(todo), progress)
    started = time.perf_counter()

    def work(index: int) -> None:
        try:
            task = plan_task(sample_for(index), index, seed, mix)
            trajectory, reason, _ = run_task(task, pool, teacher, profile)
        except Exception as exc:  # one bad sample never loses the others
            trajectory, reason = None, f"{type(exc).__name__}: {exc}"
            task = None
        with lock:
            if trajectory is not None:
                row = trajectory_row(trajectory, out)
                with (out / STORE_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                report.kept += 1
                kind = trajectory.metadata["task_type"]
                report.by_type[kind] = report.by_type.get(kind, 0) + 1
            else:
                meta = task.metadata if task else {"index": index}
                with (out / REJECTED_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"metadata": meta, "reason": reason}) + "\n")
                report.rejected += 1
            bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=max(workers, 1)) as executor:
            list(executor.map(work, todo))
    finally:
        bar.close()
        if own_pool:
            pool.close()
    report.seconds = time.perf_counter() - started
    return report


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="synthesising", unit="traj")


def default_sample_for(
    seed: int = 0, tasks: list[str] | None = None
) -> Callable[[int], SourceSample]:
    """Index -> canonical sample from the built-in renderers (documents, signs, receipts, ...).

    ``which_transform`` is left out: synthesis applies (and may ask about) transforms itself.
    """
    from .sources import TASKS, make_sample

    names = list(tasks or [name for name in TASKS if name != "which_transform"])
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown source task {name!r}; valid: {', '.join(TASKS)}")

    def sample_for(index: int) -> SourceSample:
        sample = make_sample(names[index % len(names)], f"{seed}:{index}")
        bbox = tuple(sample.bbox) if sample.bbox is not None else None
        return SourceSample(sample.image, sample.question, sample.answer, bbox, sample.source)

    return sample_for


def records_for(
    out_dir: str | Path,
    sample_for: Callable[[int], SourceSample],
    *,
    seed: int = 0,
    mix: Mapping[str, float] | None = None,
    split: str = "train",
) -> list[Any]:
    """The RL records (transformed image, question, answer) of the tasks kept in ``out_dir``.

    Tasks are re-planned from their index (planning is deterministic), so nothing but the
    trajectories needs to be stored.
    """
    from .records import Record

    kept = []
    path = Path(out_dir) / STORE_FILE
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            kept.append(int(json.loads(line)["metadata"]["index"]))
    records = []
    for index in sorted(kept):
        task = plan_task(sample_for(index), index, seed, dict(mix or DEFAULT_MIX))
        bbox = None
        if task.sample.bbox is not None and task.question != TRANSFORM_QUESTION:
            mapped = task.sample.bbox
            if task.transform:
                mapped = get_transform(task.transform).bind(task.sample.image.size).map_box(mapped)
            bbox = [float(v) for v in mapped]
        records.append(
            Record(
                question=task.question,
                answer=task.answer,
                images=[task.image],
                bbox=bbox,
                transform=task.transform,
                dataset_name="codevision-synth",
                index=index,
                split=split,
                ability=task.task_type,
            )
        )
    return records
