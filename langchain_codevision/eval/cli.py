"""``codevision eval DATA --model SPEC --out DIR``: the command-line hook.

Add it to the main parser with :func:`add_eval_parser`; the sub-command runs
:func:`run_eval`.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

__all__ = ["add_eval_parser", "run_eval"]


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to ``subparsers``; return its parser."""
    from langchain_codevision.eval.formats import FORMATS

    parser = subparsers.add_parser(
        "eval", help="evaluate a model with and without the code tool on a local dataset"
    )
    parser.add_argument("data", help="dataset file or folder (parquet, JSONL, JSON, PDF)")
    parser.add_argument("--model", default=None, help="offline | openai:MODEL | local:PATH")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible server URL")
    parser.add_argument("--out", required=True, help="output folder (resumable)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="skip detection")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--concurrency", type=int, default=2, help="episodes at once")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes, each with its own model and kernels (host work on more cores)",
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=("default", "release"),
        help="protocol profile of both arms ('release': the CodeVision release's models)",
    )
    parser.add_argument("--arms", default="tool,no_tool", help="tool,no_tool (comma list)")
    parser.add_argument(
        "--transforms", action="store_true", help="expand into the paper's six columns"
    )
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per item")
    parser.add_argument("--retries", type=int, default=2, help="extra attempts per item")
    parser.add_argument("--rps", type=float, default=None, help="requests per second")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_eval)
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``eval`` sub-command; 0 when every item finished.

    Raises:
        CLIError: The dataset cannot be read (exit 3), the model server was unreachable for
            every item (4), or some items failed (1).
    """
    items = _load_items(args)  # a wrong path is reported before the heavy imports

    from langchain_codevision.eval.datasets import transformed_variants
    from langchain_codevision.eval.runner import RESULTS_FILE, evaluate
    from langchain_codevision.model_spec import load_chat_model

    if args.transforms:
        items = transformed_variants(items)
    model = load_chat_model(args.model, base_url=args.base_url, load=True)
    given = model  # worker processes each build their own, from the same spec
    if args.processes > 1:
        given = functools.partial(load_chat_model, args.model, base_url=args.base_url, load=True)
    run = evaluate(
        items,
        given,
        args.out,
        arms=[a.strip() for a in args.arms.split(",") if a.strip()],
        profile=args.profile,
        concurrency=args.concurrency,
        processes=args.processes,
        limit=args.limit,
        time_limit_s=args.time_limit,
        retries=args.retries,
        requests_per_second=args.rps,
        progress=not args.no_progress,
    )
    for arm, entry in run.summary["arms"].items():
        print(
            f"{arm}: {entry['correct']}/{entry['n']} = {100 * entry['accuracy']:.1f}% "
            f"({entry['failed']} failed)"
        )
    print(f"ran {run.ran}, resumed {run.skipped}; report: {run.files['report']}")
    print(f"viewer: {run.files['viewer']}")
    _raise_for_failures(run.rows, model, Path(args.out) / RESULTS_FILE)
    return 0


def _load_items(args: argparse.Namespace) -> list[Any]:
    """The dataset's items; a missing or unreadable dataset is an input error (exit 3)."""
    from langchain_codevision.cli_errors import CLIError, ExitCode, one_line

    if not Path(args.data).exists():
        raise CLIError(
            ExitCode.INPUT,
            f"dataset {args.data} does not exist; pass a dataset file or folder "
            "(parquet, JSONL, JSON, or an items.jsonl listing PDF pages)",
        )
    from langchain_codevision.eval.datasets import load_dataset

    try:
        items = load_dataset(args.data, args.format)
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(
            ExitCode.INPUT,
            f"cannot read the dataset {args.data} ({one_line(exc)}); check the file, or name "
            "its layout with --format",
        ) from exc
    if not items:
        raise CLIError(ExitCode.INPUT, f"dataset {args.data} holds no items; check the file")
    return items


def _raise_for_failures(rows: list[dict[str, Any]], model: Any, results: Any) -> None:
    """Exit 4 when every attempt failed on the model server, 1 when some items failed."""
    from langchain_codevision.cli_errors import CLIError, ExitCode, one_line

    failed = [row for row in rows if row.get("status") == "failed"]
    if not failed:
        return
    errors = [str(row.get("error") or "") for row in failed]
    where = f"; details in {results}" if results else ""
    if len(failed) == len(rows) and all("Connection error" in e for e in errors):
        url = getattr(model, "openai_api_base", None) or "the model server"
        raise CLIError(
            ExitCode.MODEL,
            f"every item failed: the model server at {url} is unreachable; start the server "
            f"or pass the right --base-url{where}",
        )
    common = max(set(errors), key=errors.count)
    raise CLIError(
        ExitCode.FAILED,
        f"{len(failed)} of {len(rows)} items failed (most often: {one_line(common)[:200]})"
        f"; rerun the same command to retry only those{where}",
    )
