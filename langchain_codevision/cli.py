"""Command line: ``codevision demo`` (offline) and ``codevision run`` (any model)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(rotation=args.rotation, out_dir=args.out)
    print(f"Rotated a rendered page by {report['rotation']} degrees (counter-clockwise).")
    for step in report["steps"]:
        status = "ok" if step["ok"] else f"error: {step['error']}"
        print(f"  step {step['step']}: {step['description'] or 'code'} -> {status}")
        for line in step["stdout"].strip().splitlines():
            print(f"      | {line}")
    print(f"Answer: {report['answer']}  (stop reason: {report['stop_reason']})")
    print(f"Restored pixel for pixel: {report['restored']}  [{report['seconds']:.2f} s]")
    expected = f"rotate_{report['rotation'] % 360}"
    return 0 if report["restored"] and report["answer"] == expected else 1


def _run(args: argparse.Namespace) -> int:
    from .graph import create_codevision_graph
    from .model_spec import load_chat_model

    model = load_chat_model(args.model, base_url=args.base_url)
    graph = create_codevision_graph(model, max_turns=args.max_turns, dialect=args.dialect)
    state = graph.invoke({"image": args.image, "question": args.question})
    if args.json:
        steps = [{k: v for k, v in s.items() if k != "stdout"} for s in state["steps"]]
        print(
            json.dumps(
                {"answer": state["answer"], "stop_reason": state["stop_reason"], "steps": steps},
                indent=2,
            )
        )
    else:
        print(state["answer"])
    return 0 if state["answer"] is not None else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``codevision`` command."""
    parser = argparse.ArgumentParser(prog="codevision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="offline demo: restore a rotated page in the sandbox")
    demo.add_argument("--rotation", type=int, default=90, choices=(0, 90, 180, 270))
    demo.add_argument("--out", help="folder to save the episode's images in")
    demo.set_defaults(func=_demo)
    run = sub.add_parser("run", help="answer a question about an image")
    run.add_argument("image", help="path, URL or data URL")
    run.add_argument("question")
    run.add_argument("--model", default=None, help="offline | openai:MODEL | local:PATH")
    run.add_argument("--base-url", default=None, help="OpenAI-compatible server (e.g. vLLM)")
    run.add_argument("--dialect", default="auto", choices=("auto", "text", "tools"))
    run.add_argument("--max-turns", type=int, default=12)
    run.add_argument("--json", action="store_true", help="print the trajectory as JSON")
    run.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``codevision`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
