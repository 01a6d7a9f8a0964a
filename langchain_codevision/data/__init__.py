"""Data for thinking with code: invertible transforms, records, rendered source material.

* :mod:`~langchain_codevision.data.transforms`: transforms by name (``rotate_90``,
  ``flip_horizontal``, ``crop``, degradations), chains, exact inverses, serialisation.
* :mod:`~langchain_codevision.data.records`: MVToolBench-style records in the verl row
  format, to and from JSONL and parquet.
* :mod:`~langchain_codevision.data.sources`: question/answer samples over rendered
  documents, signs, receipts, tables, charts and small labels on real photographs.
* :mod:`~langchain_codevision.data.folder`: records from a folder of your own images.
* :mod:`~langchain_codevision.data.synth`: trajectories synthesised through the real graph
  and kernel by a teacher policy (:mod:`~langchain_codevision.data.teacher`), verified.
* :mod:`~langchain_codevision.data.export`: ShareGPT (LLaMA-Factory), TRL and OpenAI
  fine-tuning exports of any run's trajectory (:mod:`~langchain_codevision.data.trajectory`).

Example:
    >>> from langchain_codevision.data import generate_samples, write_parquet
    >>> samples = generate_samples(4, seed=0, transforms=["rotate_90", "identity"])
    >>> records = [s.to_record(index=i) for i, s in enumerate(samples)]
    >>> write_parquet(records, "toy.parquet")  # doctest: +SKIP
"""

from langchain_codevision.data.export import (
    ExportReport,
    export_openai,
    export_sharegpt,
    export_trl,
)
from langchain_codevision.data.folder import find_annotations, load_annotated_folder
from langchain_codevision.data.fonts import (
    DEFAULT_FONTS,
    FontNotFoundError,
    available_fonts,
    find_font,
    load_font,
)
from langchain_codevision.data.photos import PHOTOS, load_photo, photo_background, place
from langchain_codevision.data.records import (
    IMAGE_PLACEHOLDER,
    LoadedRecords,
    Record,
    RecordError,
    SkippedRecord,
    SkippedRecordsWarning,
    count_placeholders,
    read_jsonl,
    read_parquet,
    records_to_table,
    write_jsonl,
    write_parquet,
)
from langchain_codevision.data.render import (
    Rendered,
    TextLine,
    render_bar_chart,
    render_document,
    render_label,
    render_receipt,
    render_sign,
    render_table,
)
from langchain_codevision.data.sources import (
    TASKS,
    Sample,
    generate_samples,
    iter_samples,
    make_sample,
)
from langchain_codevision.data.synth import (
    DEFAULT_MIX,
    TASK_TYPES,
    SourceSample,
    SynthReport,
    default_sample_for,
    records_for,
    synthesize,
)
from langchain_codevision.data.trajectory import (
    ExportError,
    Trajectory,
    Turn,
    load_trajectories,
    trajectory_from_state,
)
from langchain_codevision.data.transforms import (
    DEGRADATIONS,
    FLIPS,
    ORIENTATIONS,
    ROTATIONS,
    TRANSFORM_NAMES,
    Compose,
    Transform,
    compose,
    fix_for,
    get_transform,
    inverse_name,
    parse_transform,
)

__all__ = [
    "DEFAULT_FONTS",
    "DEFAULT_MIX",
    "DEGRADATIONS",
    "FLIPS",
    "IMAGE_PLACEHOLDER",
    "ORIENTATIONS",
    "PHOTOS",
    "ROTATIONS",
    "TASKS",
    "TASK_TYPES",
    "TRANSFORM_NAMES",
    "Compose",
    "ExportError",
    "ExportReport",
    "FontNotFoundError",
    "LoadedRecords",
    "Record",
    "RecordError",
    "Rendered",
    "Sample",
    "SkippedRecord",
    "SkippedRecordsWarning",
    "SourceSample",
    "SynthReport",
    "TextLine",
    "Trajectory",
    "Transform",
    "Turn",
    "available_fonts",
    "compose",
    "count_placeholders",
    "default_sample_for",
    "export_openai",
    "export_sharegpt",
    "export_trl",
    "find_annotations",
    "find_font",
    "fix_for",
    "generate_samples",
    "get_transform",
    "inverse_name",
    "iter_samples",
    "load_annotated_folder",
    "load_font",
    "load_photo",
    "load_trajectories",
    "make_sample",
    "parse_transform",
    "photo_background",
    "place",
    "read_jsonl",
    "read_parquet",
    "records_for",
    "records_to_table",
    "render_bar_chart",
    "render_document",
    "render_label",
    "render_receipt",
    "render_sign",
    "render_table",
    "synthesize",
    "trajectory_from_state",
    "write_jsonl",
    "write_parquet",
]
