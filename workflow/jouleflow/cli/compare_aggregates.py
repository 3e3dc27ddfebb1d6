"""`jouleflow compare task-aggregates | modality | memory-batch | spread`: per-task aggregates over models.

Registered by jouleflow.cli.compare, whose shared options (--summary, --json, -o, --markdown,
--figure, --include-invalid, --allow-empty) and output handling these analyses use.
"""

from __future__ import annotations

import argparse
from typing import Any

ENERGY_CHOICES = ("energy_per_response", "energy_per_token")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from jouleflow.cli.compare import _tasks_option

    p = sub.add_parser(
        "task-aggregates", parents=[common], help="per-task means of each model's minimum energy, task ratios"
    )
    p.add_argument("--gpu", help="only this GPU type (default: each model's best over all)")
    p.add_argument(
        "--ratios", metavar="A:B,...", help="task pairs to compare (default: every pair sharing a model)"
    )
    p.add_argument(
        "--select",
        default="energy_per_response",
        choices=ENERGY_CHOICES,
        help="metric whose minimum picks each model's configuration (default energy_per_response)",
    )
    _tasks_option(p)
    p.set_defaults(func=_task_aggregates)

    p = sub.add_parser("modality", parents=[common], help="multimodal model vs its text sibling")
    p.add_argument(
        "--pair",
        action="append",
        metavar="MLLM=TEXT_MODEL",
        help="a pairing (repeat, or comma-separate); the same id on both sides is allowed",
    )
    p.add_argument("--pairs-file", metavar="PAIRS.yaml", help="YAML mapping MLLM: TEXT_MODEL")
    p.add_argument(
        "--modality-tasks", default="image-chat,video-chat", metavar="T1,T2", help="multimodal tasks"
    )
    p.add_argument(
        "--text-task", default="lm-arena-chat", help="the text sibling's task (default lm-arena-chat)"
    )
    p.add_argument("--gpu", help="only this GPU type")
    p.add_argument(
        "--batch-sizes",
        choices=["all", "common"],
        default="all",
        help="minimise each side over all its runs (default), or only over the batch sizes both were run at",
    )
    p.set_defaults(func=_modality)

    p = sub.add_parser(
        "memory-batch", parents=[common], help="largest batch and minimum energy per GPU count"
    )
    p.add_argument("--energy", default="energy_per_response", choices=ENERGY_CHOICES)
    p.add_argument("--gpu", help="only this GPU type")
    _tasks_option(p)
    p.set_defaults(func=_memory_batch)

    p = sub.add_parser("spread", parents=[common], help="spread of per-model minimum energy within a task")
    p.add_argument("--energy", default="energy_per_response", choices=ENERGY_CHOICES)
    p.add_argument("--gpu", help="only this GPU type (default: each model's best over all)")
    p.add_argument(
        "--contrasts",
        metavar="VIDEO:IMAGE,...",
        help="task pairs to contrast (default video-chat:image-chat,text-to-video:text-to-image, where present)",
    )
    _tasks_option(p)
    p.set_defaults(func=_spread)


def _run(args: argparse.Namespace, analyse: Any, columns: tuple[str, ...], title: str) -> int:
    from jouleflow.cli import compare

    if args.figure:
        import jouleflow.plots.compare_aggregates_figures  # noqa: F401  (registers these figures)
    return compare._run(args, analyse, columns, title)


def _task_aggregates(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, task_aggregates
    from jouleflow.cli.compare import _parse

    pairs = _parse(lambda: task_aggregates.parse_task_pairs(args.ratios))

    def analyse(df):
        return task_aggregates.compare_task_aggregates(
            df, tasks=common.parse_list(args.tasks), gpu=args.gpu, pairs=pairs, select=args.select
        )

    return _run(args, analyse, task_aggregates.TABLE_COLUMNS, "Per-task aggregates")


def _modality(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, modality
    from jouleflow.cli import CLIError
    from jouleflow.cli.compare import _parse

    pairs = _parse(lambda: modality.parse_pairs(args.pair))
    if args.pairs_file:
        from_file = _parse(lambda: modality.load_pairs_file(args.pairs_file))
        clash = sorted(m for m in from_file if m in pairs and pairs[m] != from_file[m])
        if clash:
            raise CLIError(f"--pair and --pairs-file pair {', '.join(clash)} differently")
        pairs = {**from_file, **pairs}
    if not pairs:
        raise CLIError("compare modality needs --pair MLLM=TEXT_MODEL (repeatable) or --pairs-file")
    tasks = common.parse_list(args.modality_tasks) or []

    def analyse(df):
        return modality.compare_modality(
            df,
            pairs,
            modality_tasks=tasks,
            text_task=args.text_task,
            gpu=args.gpu,
            batch_sizes=args.batch_sizes,
        )

    return _run(args, analyse, modality.TABLE_COLUMNS, "Multimodal vs text sibling")


def _memory_batch(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, memory_batch

    def analyse(df):
        return memory_batch.compare_memory_batch(
            df, energy=args.energy, tasks=common.parse_list(args.tasks), gpu=args.gpu
        )

    return _run(args, analyse, memory_batch.TABLE_COLUMNS, "Memory capacity unlocks batch")


def _spread(args: argparse.Namespace) -> int:
    from jouleflow.analysis.compare import common, spread
    from jouleflow.cli.compare import _parse

    contrasts = _parse(lambda: spread.parse_task_pairs(args.contrasts)) if args.contrasts else None

    def analyse(df):
        return spread.compare_spread(
            df, energy=args.energy, tasks=common.parse_list(args.tasks), gpu=args.gpu, contrasts=contrasts
        )

    return _run(args, analyse, spread.TABLE_COLUMNS, "Spread across models")
