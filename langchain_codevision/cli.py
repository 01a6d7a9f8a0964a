"""Command line: ``codevision demo`` (offline) and ``codevision run`` (any model)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .protocol import answers_match

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
    return 0 if report["restored"] and answers_match(report["answer"], expected) else 1


def _run(args: argparse.Namespace) -> int:
    from .loop.graph import FROM_PROFILE, create_codevision_graph
    from .model_spec import load_chat_model

    model = load_chat_model(args.model, base_url=args.base_url)
    graph = create_codevision_graph(
        model,
        profile=args.profile,
        max_turns=args.max_turns if args.max_turns is not None else FROM_PROFILE,
        dialect=args.dialect,
    )
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


def _synth(args: argparse.Namespace) -> int:
    from .data.synth import default_sample_for, records_for, synthesize

    mix = json.loads(args.mix) if args.mix else None
    sample_for = default_sample_for(args.seed)
    report = synthesize(
        sample_for,
        args.out,
        args.count,
        seed=args.seed,
        mix=mix,
        workers=args.workers,
        profile=args.profile,
    )
    print(
        f"kept {report.kept}, rejected {report.rejected}, skipped (already done) "
        f"{report.skipped} in {report.seconds:.1f} s ({report.per_second:.2f} trajectories/s)"
    )
    print("by task type:", json.dumps(report.by_type, sort_keys=True))
    if args.records:
        from .data.records import write_parquet

        path = write_parquet(
            records_for(args.out, sample_for, seed=args.seed, mix=mix), args.records
        )
        print(f"RL records: {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .data.export import export_openai, export_sharegpt, export_trl
    from .data.trajectory import load_trajectories

    trajectories = load_trajectories(args.source)
    if args.format == "sharegpt":
        report = export_sharegpt(trajectories, args.out, dataset_name=args.name, on_error="skip")
    elif args.format == "trl":
        report = export_trl(trajectories, args.out, dataset_name=args.name, on_error="skip")
    else:
        report = export_openai(trajectories, f"{args.out}/{args.name}.jsonl", on_error="skip")
    print(f"wrote {report.written} rows to {report.path}")
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    return 0 if report.written else 1


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
    run.add_argument(
        "--profile",
        default="default",
        choices=("default", "release"),
        help="protocol profile: 'release' speaks the CodeVision release byte for byte",
    )
    run.add_argument("--max-turns", type=int, default=None, help="default: the profile's (12)")
    run.add_argument("--json", action="store_true", help="print the trajectory as JSON")
    run.set_defaults(func=_run)
    synth = sub.add_parser("synth", help="synthesise training trajectories (offline)")
    synth.add_argument("--out", required=True, help="output folder (resumable)")
    synth.add_argument("--count", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=2)
    synth.add_argument("--mix", help='task-type ratios as JSON, e.g. {"single_tool": 1}')
    synth.add_argument("--records", help="also write the tasks as a verl RL parquet here")
    synth.add_argument(
        "--profile",
        default="default",
        choices=("default", "release"),
        help="protocol the trajectories are written in ('release': for the release's models)",
    )
    synth.set_defaults(func=_synth)
    export = sub.add_parser("export", help="export synthesised trajectories for training")
    export.add_argument("source", help="a folder written by 'codevision synth'")
    export.add_argument("--format", choices=("sharegpt", "trl", "openai"), default="sharegpt")
    export.add_argument("--out", required=True)
    export.add_argument("--name", default="codevision")
    export.set_defaults(func=_export)
    from langchain_codevision.eval.cli import add_eval_parser
    from langchain_codevision.training.cli import add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``codevision`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
