"""`jouleflow prepare requests|model`: request-set Parquet files and dummy-weight model dirs."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    prepare = subparsers.add_parser("prepare", help="prepare inputs: request sets, dummy model dirs")
    kinds = prepare.add_subparsers(dest="prepare_kind", required=True, metavar="KIND")

    r = kinds.add_parser("requests", help="write a synthetic request set (Parquet)")
    r.add_argument("-o", "--out", required=True, help="request-set Parquet file to write")
    r.add_argument("--num-requests", type=int, default=1024)
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--output-lengths", help="ML.ENERGY v3 models/*.json with output-length histograms")
    src.add_argument("--output-len", type=int, help="fixed output length")
    r.add_argument("--gpu", help="histogram configuration: gpu_model (e.g. H100)")
    r.add_argument("--num-gpus", type=int, help="histogram configuration: num_gpus")
    r.add_argument("--max-num-seqs", type=int, help="histogram configuration: max_num_seqs")
    r.add_argument(
        "--prompt-len", default="fixed:200", help="fixed:N | uniform:A,B | normal:MEAN,STD (words)"
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    r.add_argument("--tokenizer", help="tokenizer.json to count input tokens exactly")
    r.add_argument("--force", action="store_true", help="overwrite an existing file")
    r.set_defaults(func=run_prepare_requests)

    m = kinds.add_parser("model", help="build a dummy-weight model dir (config.json + covering tokenizer)")
    m.add_argument("source", help="an HF config.json, a dir holding one, or a bundled model id")
    m.add_argument("-o", "--out", required=True, help="model directory to create")
    m.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    m.set_defaults(func=run_prepare_model)


def run_prepare_requests(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.measure import synthetic
    from jouleflow.measure.requestset import sha256_file, write_request_set

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: exists (use --force to overwrite)")
    hist = None
    if args.output_lengths:
        hist = synthetic.load_histogram(args.output_lengths, args.gpu, args.num_gpus, args.max_num_seqs)
    specs = synthetic.generate(
        args.num_requests,
        histogram=hist,
        fixed_output_len=args.output_len,
        prompt_len=args.prompt_len,
        seed=args.seed,
        endpoint=args.endpoint,
        tokenizer_json=args.tokenizer,
    )
    meta = {
        "generator": "jouleflow.synthetic",
        "histogram": hist.source if hist else "",
        "fixed_output_len": str(args.output_len or ""),
        "prompt_len": args.prompt_len,
        "seed": str(args.seed),
        "endpoint": args.endpoint,
    }
    write_request_set(specs, out, meta)
    mean_out = sum(s.max_tokens or 0 for s in specs) / len(specs)
    print(f"{out}: {len(specs)} requests, mean max_tokens {mean_out:.1f}, sha256 {sha256_file(out)}")
    return 0


def run_prepare_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jouleflow.measure.dummy_model import bundled_config, make_dummy_model

    src = Path(args.source)
    if not src.exists():
        bundled = bundled_config(args.source)
        if bundled is not None:
            src = bundled
    out = make_dummy_model(src, args.out, overwrite=args.force)
    print(
        f"{out}: dummy model dir (config.json, tokenizer.json, tokenizer_config.json, generation_config.json)"
    )
    return 0
