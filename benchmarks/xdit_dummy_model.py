"""Build a random-weight PixArt-Sigma pipeline directory for offline hardware benchmarking.

    python benchmarks/xdit_dummy_model.py --out /scratch/pixart-sigma-dummy [--tiny]

The architecture is PixArt-Sigma-XL-2-1024-MS as published (transformer 28 layers x 16 heads x 72,
T5-v1.1-XXL text encoder, SDXL VAE, DPM-Solver++): the same kernels, shapes and memory as the real
model, so time and energy per batch match it, while no weights are downloaded. The text encoder
always runs the pipeline's fixed 300-token length, so a small SentencePiece vocabulary trained here
on jouleflow's bundled prompts changes no cost. `--tiny` makes a small version for checking the
pipeline on a CPU. The directory gets `jouleflow_dummy.json`; `jouleflow measure diffusion` then
requires `--load-format dummy`, so the run is labelled as dummy weights everywhere.

Needs torch, diffusers, transformers and sentencepiece (the xdit environment). Seconds on a GPU,
minutes on a CPU for the full size (the T5-XXL encoder alone has 4.8 billion parameters).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from importlib import resources
from pathlib import Path

ARCHITECTURE = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
FULL = {
    "transformer": dict(
        num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
        cross_attention_dim=1152, sample_size=128, patch_size=2, caption_channels=4096,
        interpolation_scale=2, use_additional_conditions=False, norm_type="ada_norm_single",
    ),
    "t5": dict(
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, layer_norm_epsilon=1e-6,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ),
    "vae_channels": [128, 256, 512, 512],
}  # fmt: skip
TINY = {
    "transformer": dict(FULL["transformer"], num_layers=2, num_attention_heads=2, cross_attention_dim=144, caption_channels=64),
    "t5": dict(FULL["t5"], d_model=64, d_ff=128, num_layers=2, num_heads=2, d_kv=32),
    "vae_channels": [32, 32, 64, 64],
}  # fmt: skip


def train_tokenizer(out_dir: Path):
    """A T5 SentencePiece tokenizer (pad 0, eos 1, unk 2 as T5) trained on the bundled prompts."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    prompts = resources.files("jouleflow").joinpath("data/diffusion_prompts.txt").read_text().splitlines()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(prompts), model_writer=model, vocab_size=400, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    vocab = out_dir / "spiece.model"
    vocab.write_bytes(model.getvalue())
    return T5Tokenizer(vocab_file=str(vocab), extra_ids=100, legacy=True)  # keyword: transformers 5 needs it


def build(out: Path, tiny: bool, dtype_name: str, device: str, seed: int) -> dict:
    import torch
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        PixArtSigmaPipeline,
        PixArtTransformer2DModel,
    )
    from transformers import T5Config, T5EncoderModel

    sizes = TINY if tiny else FULL
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ".tokenizer-build"
    scratch.mkdir(exist_ok=True)
    t0 = time.time()
    with torch.device(device):
        transformer = PixArtTransformer2DModel(**sizes["transformer"]).to(dtype)
        text_encoder = T5EncoderModel(T5Config(**sizes["t5"])).to(dtype)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=sizes["vae_channels"], sample_size=1024, scaling_factor=0.13025,
        ).to(dtype)  # fmt: skip
    pipe = PixArtSigmaPipeline(
        tokenizer=train_tokenizer(scratch), text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )  # fmt: skip
    pipe.save_pretrained(out, safe_serialization=True)
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()
    params = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in (("transformer", transformer), ("text_encoder", text_encoder), ("vae", vae))
    }
    marker = {
        "random_weights": True,
        "architecture": ARCHITECTURE + (" (tiny)" if tiny else ""),
        "dtype": dtype_name,
        "seed": seed,
        "parameters": params,
        "built_s": round(time.time() - t0, 1),
    }
    (out / "jouleflow_dummy.json").write_text(json.dumps(marker, indent=2) + "\n")
    return marker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to create")
    parser.add_argument("--tiny", action="store_true", help="a small version for CPU checks")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--device", default="cuda", help="where to initialise the weights (cuda or cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(build(args.out, args.tiny, args.dtype, args.device, args.seed)))


if __name__ == "__main__":
    main()
