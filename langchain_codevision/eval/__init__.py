"""Evaluation: datasets, scoring, a tool vs no-tool runner, reports and a trajectory viewer.

* :mod:`.datasets`: MVToolBench, OCRBench, ChartQA-like and generic sets from local files;
  the paper's transformed variants and the orientation diagnostic.
* :mod:`.scoring`: one verdict per item, naming the rule that decided.
* :mod:`.runner`: both arms in one run, concurrent, resumable (``results.jsonl``).
* :mod:`.report` / :mod:`.plots` / :mod:`.viewer`: ``summary.json``, ``report.md``, PNG
  plots and a self-contained ``viewer.html``.

Names are imported lazily, so ``import langchain_codevision.eval`` stays cheap.

Example:
    >>> from langchain_codevision.eval import evaluate, load_dataset, transformed_variants
    >>> items = transformed_variants(load_dataset("OCRBench.json"))  # doctest: +SKIP
    >>> run = evaluate(items, model, "out/", concurrency=4)  # doctest: +SKIP
"""

from __future__ import annotations

from langchain_codevision._lazy import lazy_names

__all__ = [
    "PAPER_COLUMNS",
    "EvalItem",
    "EvalRun",
    "Score",
    "aevaluate",
    "evaluate",
    "load_dataset",
    "orientation_diagnostic",
    "read_results",
    "score_item",
    "summarise",
    "transformed_variants",
    "write_outputs",
    "write_viewer",
]

_WHERE = {
    "PAPER_COLUMNS": "datasets",
    "EvalItem": "datasets",
    "load_dataset": "datasets",
    "orientation_diagnostic": "datasets",
    "transformed_variants": "datasets",
    "Score": "scoring",
    "score_item": "scoring",
    "EvalRun": "runner",
    "aevaluate": "runner",
    "evaluate": "runner",
    "read_results": "runner",
    "summarise": "report",
    "write_outputs": "report",
    "write_viewer": "viewer",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
