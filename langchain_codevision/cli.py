"""``codevision``: ask a vision-language model about an image; it answers by running code.

Commands: ``demo`` (offline, bundled images), ``ask`` (one image, one question, any model),
``eval``, ``synth``, ``export``, ``train``, ``bench``. Mistakes are reported as one line on
stderr with a documented exit status (:mod:`langchain_codevision.cli_errors`); ``--debug``
shows the traceback. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .cli_errors import EXIT_CODES_HELP, CLIError, ExitCode, explain

__all__ = ["build_parser", "main"]

PROG = "codevision"

_MAIN_EXAMPLES = """\
examples:
  codevision demo                                  offline: real and rendered images
  codevision ask page.png "What is the title?"     offline policy
  codevision ask page.png "What is the total?" --model openai:gpt-4o
  codevision ask scan.jpg "Read line 2" --model openai:codevision-7b \\
      --base-url http://127.0.0.1:8000/v1 --profile release
  codevision eval data/ocrbench.jsonl --model offline --out runs/eval
  codevision bench --quick                         kernel step vs other executors
  codevision <command> --help                      options of one command
"""

_ASK_EXAMPLES = """\
examples:
  codevision ask page.png "Which way is this page rotated?"
  codevision ask page.png "What is the total?" --model openai:gpt-4o --steps
  codevision ask https://example.com/receipt.jpg "Total?" --json
  codevision ask scan.png "Read the heading" --model local:./Qwen2.5-VL-7B \\
      --adapter ./runs/sft/adapter --profile release --out runs/ask
"""

_DEMO_EXAMPLES = """\
examples:
  codevision demo                         images under ./codevision-demo/<timestamp>
  codevision demo --out demo-run          images under ./demo-run
  codevision demo --only label-code       one question
"""

_SYNTH_EXAMPLES = """\
examples:
  codevision synth --out data/synth --count 200
  codevision synth --out data/synth --count 50 --mix '{"single_tool": 1}' --records rl.parquet
"""

_EXPORT_EXAMPLES = """\
examples:
  codevision export data/synth --format sharegpt --out data/sft
  codevision export data/synth --format openai --out data/openai --name codevision
"""

_EVAL_EXAMPLES = """\
examples:
  codevision eval data/ocrbench.jsonl --model offline --out runs/eval --limit 20
  codevision eval data/mvtoolbench.parquet --model openai:codevision-7b \\
      --base-url http://127.0.0.1:8000/v1 --profile release --out runs/mvtb --transforms
"""

_TRAIN_EXAMPLES = """\
examples:
  codevision train sft --config examples/training/sft_tiny.yaml --print-config
  codevision train grpo --config examples/training/grpo_tiny.yaml --set lora.r=4
"""

_BENCH_EXAMPLES = """\
examples:
  codevision bench --quick --out bench-results
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' and exit codes' line breaks, shows defaults where given."""


class CodevisionParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>; run '<prog> --help'`` and exit with status 2."""
        self.exit(
            int(ExitCode.USAGE),
            f"{self.prog}: error: {message}; run '{self.prog} --help' for the options\n",
        )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


# ---------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_ITEMS, default_out_dir, iter_demo
    from .episode_output import describe_steps
    from .model_spec import load_chat_model

    items = [item for item in DEMO_ITEMS if not args.only or item.name in args.only]
    out = Path(args.out) if args.out else default_out_dir()
    model = load_chat_model("offline")
    print(
        f"codevision demo: {len(items)} question{'s' if len(items) != 1 else ''} about real "
        "and rendered images, "
        f"answered by the offline model ({type(model).__name__}); its code runs in the "
        "sandboxed kernel.",
    )
    print(f"Images go to {out.resolve()}", flush=True)

    def started(number: int, item: Any) -> None:
        print(f"\n[{number}/{len(items)}] {item.name}: {item.source}, {item.transform} applied")
        print(f"  question: {item.question}", flush=True)

    right = 0
    for result in iter_demo(out_dir=out, model=model, items=items, on_start=started):
        item = result.item
        steps = result.state.get("steps") or []
        print("\n".join(describe_steps(steps)) if steps else "  (no code was run)")
        verdict = "correct" if result.correct else f"wrong, expected {item.answers[0]!r}"
        print(f"  answer: {result.answer!r} ({verdict})")
        print(f"  time: {result.timings.caption()}")
        written = [image.path.name for image in result.images if image.path is not None]
        same = [
            f"{image.label} = {image.same_as.name}"
            for image in result.images
            if image.path is None and image.same_as is not None
        ]
        note = f"; unchanged, not written again: {', '.join(same)}" if same else ""
        where = result.folder.resolve() if result.folder else out.resolve()
        print(f"  images: {where}/ ({', '.join(written)}{note})", flush=True)
        right += result.correct
    print(f"\nanswered {right}/{len(items)} correctly")
    print(f"images written to {out.resolve()}")
    return int(ExitCode.OK)


# ---------------------------------------------------------------------------- ask


def _read_system_prompt(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CLIError(
            ExitCode.INPUT,
            f"cannot read the system prompt file {path} ({reason}); pass a UTF-8 text file",
        ) from exc


def _base_url(model: Any) -> str | None:
    url = getattr(model, "openai_api_base", None)
    return str(url) if url else None


def _ask(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from .images import load_image

    if args.command == "run":
        print(f"{PROG}: note: 'run' is now 'ask' (same options)", file=sys.stderr)
    image = load_image(args.image)  # a wrong path is reported before the heavy imports
    text = _read_system_prompt(args.system_prompt) if args.system_prompt else None

    from .cli_errors import is_model_error, model_error_line
    from .episode_output import (
        ModelTimer,
        describe_steps,
        episode_json,
        episode_timings,
        save_episode_images,
    )
    from .kernel import KernelPool
    from .loop.graph import FROM_PROFILE, create_codevision_graph
    from .model_spec import load_chat_model
    from .protocol import get_profile

    profile = get_profile(args.profile)
    if text is not None:
        profile = dataclasses.replace(profile, system_prompt=text, tools_system_prompt=text)
    model = load_chat_model(args.model, base_url=args.base_url, adapter=args.adapter, load=True)
    timer = ModelTimer()
    with KernelPool(size=1) as pool:
        graph = create_codevision_graph(
            model,
            profile=profile,
            max_turns=args.max_turns if args.max_turns is not None else FROM_PROFILE,
            dialect=args.dialect,
            pool=pool,
        )
        started = time.perf_counter()
        try:
            state = graph.invoke(
                {"image": image, "question": args.question}, config={"callbacks": [timer]}
            )
        except Exception as exc:
            if is_model_error(exc):
                raise CLIError(ExitCode.MODEL, model_error_line(exc, _base_url(model))) from exc
            raise
    timings = episode_timings(state, timer, time.perf_counter() - started)
    saved = save_episode_images(state.get("images") or [], args.out) if args.out else None
    answer = state.get("answer")
    if args.json:
        report = episode_json(state, question=args.question, timings=timings, images=saved)
        if args.out:
            report["images_dir"] = str(Path(args.out).resolve())
        print(json.dumps(report, indent=2))
    else:
        if args.steps:
            print(f"question: {args.question}")
            print("\n".join(describe_steps(state.get("steps") or [])) or "  (no code was run)")
            print(f"time: {timings.caption()}")
            print("answer:", end=" ")
        if answer is not None:
            print(answer)
        elif args.steps:
            print("(none)")
        if saved is not None:
            count = sum(image.path is not None for image in saved)
            print(f"images: {Path(args.out).resolve()} ({count} files)")
    if answer is None:
        raise CLIError(
            ExitCode.FAILED,
            f"the model gave no answer (stop reason: {state.get('stop_reason')}, "
            f"{state.get('turns')} turns); add --steps to see what it did, or raise --max-turns",
        )
    return int(ExitCode.OK)


# ---------------------------------------------------------------------------- synth, export


def _synth(args: argparse.Namespace) -> int:
    from .data.synth import default_sample_for, records_for, synthesize

    try:
        mix = json.loads(args.mix) if args.mix else None
    except json.JSONDecodeError as exc:
        raise CLIError(
            ExitCode.USAGE,
            f"--mix {args.mix!r} is not JSON ({exc.msg}); pass e.g. --mix '{{\"single_tool\": 1}}'",
        ) from exc
    sample_for = default_sample_for(args.seed)
    report = synthesize(
        sample_for,
        args.out,
        args.count,
        seed=args.seed,
        mix=mix,
        workers=args.workers,
        profile=args.profile,
        progress=not args.no_progress,
    )
    print(
        f"kept {report.kept}, rejected {report.rejected}, skipped (already done) "
        f"{report.skipped} in {report.seconds:.1f} s ({report.per_second:.2f} trajectories/s)"
    )
    print("by task type:", json.dumps(report.by_type, sort_keys=True))
    print(f"trajectories: {Path(args.out).resolve()}")
    if args.records:
        from .data.records import write_parquet

        path = write_parquet(
            records_for(args.out, sample_for, seed=args.seed, mix=mix), args.records
        )
        print(f"RL records: {path}")
    return int(ExitCode.OK)


def _export(args: argparse.Namespace) -> int:
    from .data.export import export_openai, export_sharegpt, export_trl
    from .data.trajectory import load_trajectories

    if not Path(args.source).is_dir():
        raise CLIError(
            ExitCode.INPUT,
            f"{args.source} is not a folder; pass a folder written by 'codevision synth --out'",
        )
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
    if not report.written:
        raise CLIError(
            ExitCode.FAILED,
            f"no rows exported from {args.source} ({len(report.skipped)} skipped); "
            "check the trajectories with 'codevision synth'",
        )
    return int(ExitCode.OK)


# ---------------------------------------------------------------------------- parser


def _add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image path, http(s) URL or data URL")
    parser.add_argument("question", help="the question about the image")
    parser.add_argument(
        "--model",
        default=None,
        help="offline | openai:MODEL | local:PATH (default: $CODEVISION_MODEL or offline)",
    )
    parser.add_argument(
        "--adapter", default=None, help="PEFT (LoRA) adapter folder for a local:PATH model"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible server for openai:MODEL, e.g. http://127.0.0.1:8000/v1 (vLLM)",
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=("default", "release"),
        help="what the model sees: 'release' speaks the CodeVision release byte for byte "
        "(for its fine-tuned models); default: %(default)s",
    )
    parser.add_argument(
        "--system-prompt",
        metavar="FILE",
        default=None,
        help="replace the profile's system prompt with this file's text",
    )
    parser.add_argument(
        "--dialect",
        default="auto",
        choices=("auto", "text", "tools"),
        help="text tags or native tool calls (default: %(default)s, chosen by model)",
    )
    parser.add_argument(
        "--max-turns", type=_positive_int, default=None, help="model turns (default: 12)"
    )
    parser.add_argument(
        "--out", metavar="DIR", default=None, help="write the input and each step's image here"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print answer, stop reason, steps (code, output, error, timings) as JSON",
    )
    parser.add_argument(
        "--steps", action="store_true", help="also print each step's code, output and timings"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``codevision`` command."""
    parser = CodevisionParser(
        prog=PROG,
        description="Ask a vision-language model about an image; it answers by writing code "
        "that runs in a sandboxed Jupyter kernel.",
        epilog=_MAIN_EXAMPLES + "\n" + EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str | None, examples: str = "") -> argparse.ArgumentParser:
        kwargs: dict[str, Any] = {"help": text} if text else {}
        return sub.add_parser(
            name,
            description=text,
            epilog=(examples + "\n" if examples else "") + EXIT_CODES_HELP,
            formatter_class=_Formatter,
            **kwargs,
        )

    from .demo import DEMO_ITEMS

    demo = add("demo", "offline demo: questions about real and rendered images", _DEMO_EXAMPLES)
    demo.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the images (default: a new ./codevision-demo/<timestamp>)",
    )
    demo.add_argument(
        "--only",
        action="append",
        choices=[item.name for item in DEMO_ITEMS],
        metavar="NAME",
        help="ask only this question (repeatable): " + ", ".join(item.name for item in DEMO_ITEMS),
    )
    demo.set_defaults(func=_demo)

    ask = add("ask", "answer a question about an image with any model", _ASK_EXAMPLES)
    _add_ask_arguments(ask)
    ask.set_defaults(func=_ask)
    run = add("run", None)  # the old name of 'ask': works, not listed
    _add_ask_arguments(run)
    run.set_defaults(func=_ask)

    synth = add("synth", "synthesise training trajectories (offline)", _SYNTH_EXAMPLES)
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (resumable)")
    synth.add_argument("--count", type=_positive_int, default=100, help="default: %(default)s")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=_positive_int, default=2, help="episodes at once")
    synth.add_argument("--mix", help='task-type ratios as JSON, e.g. {"single_tool": 1}')
    synth.add_argument(
        "--records", metavar="FILE", help="also write the tasks as a verl RL parquet"
    )
    synth.add_argument(
        "--profile",
        default="default",
        choices=("default", "release"),
        help="protocol the trajectories are written in ('release': for the release's models)",
    )
    synth.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    synth.set_defaults(func=_synth)

    export = add("export", "export synthesised trajectories for training", _EXPORT_EXAMPLES)
    export.add_argument("source", help="a folder written by 'codevision synth'")
    export.add_argument("--format", choices=("sharegpt", "trl", "openai"), default="sharegpt")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--name", default="codevision", help="dataset name (file names)")
    export.set_defaults(func=_export)

    from .benchmarks.cli import add_bench_parser
    from .eval.cli import add_eval_parser
    from .training.cli import add_train_parser

    for added, examples in (
        (add_eval_parser(sub), _EVAL_EXAMPLES),
        (add_train_parser(sub), _TRAIN_EXAMPLES),
        (add_bench_parser(sub), _BENCH_EXAMPLES),
    ):
        added.epilog = examples + "\n" + EXIT_CODES_HELP
        added.formatter_class = _Formatter
    return parser


def _fail(code: int, line: str) -> int:
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``codevision`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    arguments = [a for a in arguments if a != "--debug"]
    try:
        args = build_parser().parse_args(arguments)
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `codevision demo | head`: the reader left, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.FAILED)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        code, line = explain(exc)
        if debug:
            traceback.print_exc()
        return _fail(int(code), line)


if __name__ == "__main__":
    sys.exit(main())
