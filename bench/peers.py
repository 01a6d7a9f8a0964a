"""Peer benchmark: this package's kernel step beside other code executors, one run.

Run: ``python bench/peers.py [--quick] [--repeat N]`` (the same as ``codevision bench``).
Writes ``bench/results/peers.{json,md,png}``; see ``langchain_codevision.benchmarks``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_codevision.benchmarks.cli import add_bench_parser

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers()
    add_bench_parser(sub)
    args = parser.parse_args(["bench", "--out", str(RESULTS), *sys.argv[1:]])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
