"""`jouleflow prepare requests|model`: request-set Parquet files and dummy-weight model dirs."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    prepare = subparsers.add_parser("prepare", help="prepare inputs: request sets, dummy model dirs")
    kinds = prepare.add_subparsers(dest="prepare_kind", required=True, metavar="KIND")

    r = kinds.add_parser(
        "requests", help="write a request set (Parquet): synthetic, or from a pinned Hugging Face dataset"
    )
    r.add_argument("-o", "--out", required=True, help="request-set Parquet file to write")
    r.add_argument("--num-requests", type=int, help="N (default: the task's num_requests, else 1024)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--output-lengths", help="ML.ENERGY v3 models/*.json with output-length histograms")
    src.add_argument("--output-len", type=int, help="fixed output length")
    r.add_argument("--gpu", help="histogram configuration: gpu_model (e.g. H100)")
    r.add_argument("--num-gpus", type=int, help="histogram configuration: num_gpus")
    r.add_argument("--max-num-seqs", type=int, help="histogram configuration: max_num_seqs")
    r.add_argument(
        "--prompt-len", default="fixed:200", help="fixed:N | uniform:A,B | normal:MEAN,STD (words)"
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--endpoint", choices=["chat", "completions"], help="default: the task's, else chat")
    r.add_argument("--tokenizer", help="tokenizer.json to count input tokens exactly")
    r.add_argument("--force", action="store_true", help="overwrite an existing file")
    mm = r.add_argument_group("synthetic media per request (chat; docs/measure.md)")
    mm.add_argument("--images", type=int, default=0, help="images per request")
    mm.add_argument("--image-size", default="1024x768", help="WIDTHxHEIGHT of the images")
    mm.add_argument(
        "--image-format", choices=["jpeg", "png"], default="jpeg", help="jpeg (default, as photos) or png"
    )
    mm.add_argument("--videos", type=int, default=0, help="videos per request (JPEG frame sequences)")
    mm.add_argument("--video-size", default="640x360", help="WIDTHxHEIGHT of the video frames")
    mm.add_argument("--video-frames", type=int, default=16, help="frames per video")
    hf = r.add_argument_group("Hugging Face dataset (kind hf; docs/config.md)")
    hf.add_argument("--task", help="the hf request set of this task of the campaign config")
    hf.add_argument("--configfile", action="append", help="campaign config(s) for --task, merged in order")
    hf.add_argument("--hf", metavar="REPO", help="dataset repo id (owner/name)")
    hf.add_argument("--revision", help="the pinned commit sha or tag (required with --hf)")
    hf.add_argument("--split", default="train")
    hf.add_argument("--hf-config", help="the dataset's config (subset)")
    hf.add_argument("--data-files", nargs="+", help="glob patterns of the split's files in the repo")
    hf.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE",
        help="field mapping: prompt=COL, messages=COL, turns=expand, template=TEXT, prefix=COL, suffix=COL, system=TEXT",
    )  # fmt: skip
    hf.add_argument("--max-tokens", type=int, help="output cap (EOS honoured without a length law)")
    hf.add_argument("--cache-dir", help="Hugging Face hub cache (default: HF_HUB_CACHE)")
    r.set_defaults(func=run_prepare_requests)

    m = kinds.add_parser("model", help="build a dummy-weight model dir (config.json + covering tokenizer)")
    m.add_argument("source", help="an HF config.json, a dir holding one, or a bundled model id")
    m.add_argument("-o", "--out", required=True, help="model directory to create")
    m.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    m.set_defaults(func=run_prepare_model)


def _media_spec(args: argparse.Namespace) -> Any:
    """The synthetic media of --images/--videos, or None."""
    from jouleflow.cli import CLIError
    from jouleflow.measure import media, synthetic

    if args.images < 0 or args.videos < 0 or args.video_frames < 1:
        raise CLIError("--images and --videos must be >= 0, --video-frames >= 1")
    if not (args.images or args.videos):
        return None
    if args.endpoint != "chat":
        raise CLIError(f"--images/--videos need the chat endpoint, not {args.endpoint}")
    try:
        return synthetic.MediaSpec(
            images=args.images,
            image_size=media.parse_size(args.image_size, "--image-size"),
            image_format=args.image_format,
            videos=args.videos,
            video_size=media.parse_size(args.video_size, "--video-size"),
            video_frames=args.video_frames,
        )
    except media.MediaError as exc:
        raise CLIError(str(exc)) from exc


def run_prepare_requests(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.measure import synthetic
    from jouleflow.measure.requestset import sha256_file, write_request_set

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: exists (use --force to overwrite)")
    if args.hf or args.task:
        return prepare_hf(args, out)
    if not (args.output_lengths or args.output_len):
        raise CLIError("synthetic requests need --output-lengths or --output-len (or --hf / --task)")
    args.num_requests = args.num_requests or 1024
    args.endpoint = args.endpoint or "chat"
    hist = None
    if args.output_lengths:
        hist = synthetic.load_histogram(args.output_lengths, args.gpu, args.num_gpus, args.max_num_seqs)
    media_spec = _media_spec(args)
    specs = synthetic.generate(
        args.num_requests,
        histogram=hist,
        fixed_output_len=args.output_len,
        prompt_len=args.prompt_len,
        seed=args.seed,
        endpoint=args.endpoint,
        tokenizer_json=args.tokenizer,
        media=media_spec,
    )
    meta = {
        "generator": "jouleflow.synthetic",
        "histogram": hist.source if hist else "",
        "fixed_output_len": str(args.output_len or ""),
        "prompt_len": args.prompt_len,
        "seed": str(args.seed),
        "endpoint": args.endpoint,
    }
    if media_spec is not None:
        meta["media"] = json.dumps(dataclasses.asdict(media_spec), sort_keys=True)
    write_request_set(specs, out, meta)
    mean_out = sum(s.max_tokens or 0 for s in specs) / len(specs)
    print(f"{out}: {len(specs)} requests, mean max_tokens {mean_out:.1f}, sha256 {sha256_file(out)}")
    return 0


def prepare_hf(args: argparse.Namespace, out: Any) -> int:
    """An hf request set from flags or from a task of the campaign config; its provenance (repo,
    revision, resolved commit, files' sha256) goes into the Parquet metadata."""
    from jouleflow.cli import CLIError
    from jouleflow.measure import hfrequests, synthetic
    from jouleflow.measure.hfsource import HFSource
    from jouleflow.measure.requestset import sha256_file, write_request_set

    if args.task:
        if args.hf:
            raise CLIError("give --task or --hf, not both")
        rs, endpoint, num_requests, where = _task_source(args)
    else:
        fields = {}
        for item in args.field:
            key, sep, value = item.partition("=")
            if not sep:
                raise CLIError(f"--field {item!r}: use KEY=VALUE (e.g. prompt=text)")
            fields[key] = value
        rs = {
            "kind": "hf", "repo": args.hf, "revision": args.revision, "split": args.split,
            "config": args.hf_config, "data_files": args.data_files, "fields": fields, "seed": args.seed,
        }  # fmt: skip
        endpoint, num_requests, where = args.endpoint or "chat", args.num_requests or 1024, "--hf"
    for key, flag in (("max_tokens", "max_tokens"), ("fixed_output_len", "output_len")):
        if getattr(args, flag) is not None:
            rs[key] = getattr(args, flag)
    if args.output_lengths:
        rs["output_lengths"] = args.output_lengths
    source = HFSource.from_mapping(rs, where, endpoint)
    hist = None
    if source.output_lengths:
        hist = synthetic.load_histogram(source.output_lengths, args.gpu, args.num_gpus, args.max_num_seqs)
    specs, prov = hfrequests.from_hub(
        source,
        endpoint=endpoint,
        num_requests=num_requests,
        where=where,
        histogram=hist,
        tokenizer_json=args.tokenizer,
        cache_dir=args.cache_dir,
    )
    write_request_set(specs, out, {**hfrequests.metadata(prov), "endpoint": endpoint})
    print(
        f"{out}: {len(specs)} requests ({prov['num_unique']} distinct) from {source.repo}@{prov['commit']} "
        f"split {source.split}, sha256 {sha256_file(out)}"
    )
    return 0


def _task_source(args: argparse.Namespace) -> tuple[dict[str, Any], str, int, str]:
    """(the task's request set, endpoint, N, the key naming it) from the campaign config."""
    from jouleflow.cli import CLIError
    from jouleflow.plan.config import load_config

    config = load_config(args.configfile or ["config/config.yaml"])
    task = config["tasks"].get(args.task)
    if task is None:
        raise CLIError(f"--task {args.task}: no such task under `tasks:` ({', '.join(config['tasks'])})")
    where = f"tasks.{args.task}.request_set"
    rs = dict(task.get("request_set") or {})
    if rs.get("kind") != "hf":
        raise CLIError(f"{where}.kind: {rs.get('kind')!r}; --task prepares hf request sets")
    rs.pop("prompt_len", None)  # a schema default of synthetic sets
    if "{" in (rs.get("output_lengths") or ""):
        # A per-point template (model, GPU, batch): the measurement fills it; here --output-lengths does.
        print(f"{where}.output_lengths: a per-point template, left out (give --output-lengths FILE)")
        rs.pop("output_lengths")
    return (
        rs,
        args.endpoint or task.get("endpoint") or "chat",
        args.num_requests or task["num_requests"],
        where,
    )


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
