"""``codevision bench``: the peer benchmark from the command line.

Add it to the main parser with :func:`add_bench_parser`; the sub-command runs
:func:`run_bench_command`, which writes ``peers.json``, ``peers.md`` and ``peers.png``.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_bench_parser", "run_bench_command"]


def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to ``subparsers``; return its parser."""
    from .peers import EXECUTORS

    parser = subparsers.add_parser(
        "bench", help="compare this package's kernel step with other code executors"
    )
    parser.add_argument("--out", default="bench-results", help="output folder")
    parser.add_argument("--name", default="peers", help="file name stem of the outputs")
    parser.add_argument("--quick", action="store_true", help="1 repeat, a small page")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per cell")
    parser.add_argument("--size", type=int, default=None, help="page size in pixels")
    parser.add_argument(
        "--executors", default=",".join(EXECUTORS), help="comma list of executors to run"
    )
    parser.add_argument(
        "--concurrency", default=None, help="comma list of concurrencies (default 1,2,4,8,64)"
    )
    parser.add_argument("--docs", default=None, help="also write the docs page to this file")
    parser.set_defaults(func=run_bench_command)
    return parser


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the benchmark as ``args`` say; print the markdown report."""
    from pathlib import Path

    from .report import docs_page, markdown, write_report
    from .suite import BenchConfig, run_bench

    overrides: dict = {"executors": [e for e in args.executors.split(",") if e]}
    overrides["progress"] = lambda message: print(f"[bench] {message}", file=sys.stderr)
    if args.repeat is not None:
        overrides["repeat"] = args.repeat
    if args.size is not None:
        overrides["size"] = args.size
    if args.concurrency:
        overrides["concurrency"] = [int(c) for c in args.concurrency.split(",")]
    config = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    result = run_bench(config)
    paths = write_report(result, args.out, args.name)
    if args.docs:
        paths["docs"] = Path(args.docs)
        paths["docs"].write_text(docs_page(result))
    print(markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0 if all(r.get("correct") is not False for r in result["peers"]) else 1
