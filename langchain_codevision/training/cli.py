"""``codevision train sft|grpo --config FILE [flags]``.

Wire it into a parser with :func:`add_train_parser`; the chosen command runs through
``args.func(args)`` (:func:`run_train`), as the other ``codevision`` commands do.

Example:
    codevision train sft --config examples/training/sft_qwen2_5_vl_7b.yaml
    codevision train grpo --config examples/training/grpo_tiny.yaml --set lora.r=4
    codevision train sft --config FILE --print-config     # resolved settings, no training
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

__all__ = ["add_train_parser", "main", "run_train"]


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` (with ``sft`` and ``grpo``) to an argparse ``subparsers`` object."""
    train = subparsers.add_parser("train", help="fine-tune a model: SFT or GRPO (extra 'train')")
    kinds = train.add_subparsers(dest="kind", required=True)
    for kind, text in (
        ("sft", "supervised fine-tuning on exported trajectories (TRL SFTTrainer)"),
        ("grpo", "GRPO with rollouts whose code runs in the sandboxed kernel"),
    ):
        parser = kinds.add_parser(kind, help=text, description=text)
        parser.add_argument("--config", required=True, help="YAML settings file")
        parser.add_argument("--model", help="base checkpoint (overrides the config)")
        parser.add_argument("--data", help="training data (overrides the config)")
        parser.add_argument("--output-dir", help="run folder (overrides the config)")
        parser.add_argument("--max-steps", type=int, help="stop after this many steps")
        parser.add_argument(
            "--resume",
            nargs="?",
            const=True,
            default=None,
            help="resume from a checkpoint folder (no value: the newest in the run folder)",
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any setting (dotted for lora.*, extra.*, reward_weights.*)",
        )
        parser.add_argument(
            "--print-config", action="store_true", help="print the resolved settings and exit"
        )
        parser.set_defaults(func=run_train, kind=kind)
    return train


def _overrides(args: argparse.Namespace) -> list[str]:
    items = []
    for flag, key in (
        ("model", "model"),
        ("data", "data"),
        ("output_dir", "output_dir"),
        ("max_steps", "max_steps"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            items.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    if args.resume is not None:
        resume = args.resume if isinstance(args.resume, str) else "true"
        items.append(f"resume_from_checkpoint={json.dumps(resume) if resume != 'true' else resume}")
    return [*items, *args.set]


def _settings_error(args: argparse.Namespace, exc: Exception) -> int:
    """One line for a config that cannot be read (3) or holds a bad setting (2)."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        print(
            f"codevision: error: cannot read the config {args.config} ({reason}); "
            "check the path (examples/training/ holds working configs)",
            file=sys.stderr,
        )
        return 3
    text = " ".join(str(exc).split())
    print(
        f"codevision: error: train {args.kind}: {text}; fix the setting in "
        f"{args.config} or the --set value",
        file=sys.stderr,
    )
    return 2


def run_train(args: argparse.Namespace) -> int:
    """Run ``codevision train``; returns the exit status.

    0: trained (or settings printed); 2: bad settings; 3: the config file cannot be read
    or is not valid YAML.
    The message is one line on stderr, ``codevision: error: <cause>; <what to do>``.
    """
    from .config import apply_overrides, load_config

    try:
        settings = apply_overrides(load_config(args.config, args.kind), _overrides(args))
    except Exception as exc:
        if type(exc).__module__.startswith("yaml"):  # malformed YAML: an input problem
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            print(
                f"codevision: error: the config {args.config} is not valid YAML ({problem}{at}); "
                "fix the file",
                file=sys.stderr,
            )
            return 3
        if not isinstance(exc, (OSError, ValueError)):
            raise
        return _settings_error(args, exc)
    if args.print_config:
        print(json.dumps(dataclasses.asdict(settings), indent=2, default=str))
        return 0
    if args.kind == "sft":
        from .sft import train_sft

        result = train_sft(settings)
    else:
        from .grpo import train_grpo

        result = train_grpo(settings)
    summary = {
        "output_dir": str(result.output_dir),
        "adapter_dir": str(result.adapter_dir),
        "metrics": result.metrics,
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m langchain_codevision.training.cli sft|grpo ...`` (for ``accelerate launch``)."""
    parser = argparse.ArgumentParser(prog="codevision")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
