"""The xDiT pipeline families (xfuser 0.4.5) as plain data: what each wraps and supports, and its
generation defaults (steps, size, guidance, frames).

A shared fact: measurement resolves a job's unset generation values from it (what run.json records),
planning's run guard compares a finished run with a config that leaves them unset against it.
Stdlib only; imports no layer (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The generation keys a job spec may leave null: "the pipeline family's default".
GENERATION_KEYS = ("steps", "height", "width", "guidance_scale", "num_frames")


@dataclass(frozen=True)
class PipelineFamily:
    """One xfuser pipeline wrapper (xfuser 0.4.5) and what it supports."""

    name: str
    xfuser_class: str  # attribute of the `xfuser` package
    diffusers_class: str  # `_class_name` in the model's model_index.json
    modality: str  # "image" | "video"
    guidance_scale: float  # the diffusers pipeline's default, passed explicitly for reproducibility
    cfg_parallel: bool = True  # False: the model has no classifier-free guidance to split
    sequence_parallel: bool = True
    pipefusion: bool = True
    frames_kwarg: str | None = None  # video: the __call__ keyword for the frame count
    resolution_binning: bool = False  # __call__ takes use_resolution_binning (xfuser's input option)
    model_patterns: tuple[str, ...] = ()  # regexes over the HF id, when no model_index.json is at hand
    # Defaults when the job does not say (ML.ENERGY v3's settings where it ran the family).
    default_steps: int = 50
    default_size: tuple[int, int] = (1024, 1024)  # height, width
    default_frames: int | None = None  # video only
    call_kwargs: tuple[tuple[str, Any], ...] = ()  # fixed extra __call__ keywords (as xDiT's examples pass)

    def worker_spec(self) -> dict[str, Any]:
        """What the worker needs to know about the family (it does not import this table)."""
        return {
            "family": self.name,
            "xfuser_class": self.xfuser_class,
            "frames_kwarg": self.frames_kwarg,
            "resolution_binning": self.resolution_binning,
            "call_kwargs": dict(self.call_kwargs),
        }

    def generation_defaults(self) -> dict[str, Any]:
        """What a job that leaves GENERATION_KEYS unset generates (num_frames None for images)."""
        height, width = self.default_size
        return {
            "steps": self.default_steps,
            "height": height,
            "width": width,
            "guidance_scale": float(self.guidance_scale),
            "num_frames": self.default_frames if self.modality == "video" else None,
        }


FAMILIES: dict[str, PipelineFamily] = {
    f.name: f
    for f in (
        PipelineFamily(
            "pixart-alpha", "xFuserPixArtAlphaPipeline", "PixArtAlphaPipeline", "image", 4.5,
            resolution_binning=True, model_patterns=(r"pixart-xl-2", r"pixart-alpha/pixart-xl"),
            call_kwargs=(("clean_caption", False),), default_steps=20,
        ),
        PipelineFamily(
            "pixart-sigma", "xFuserPixArtSigmaPipeline", "PixArtSigmaPipeline", "image", 4.5,
            resolution_binning=True, model_patterns=(r"pixart-sigma",), call_kwargs=(("clean_caption", False),),
            default_steps=20,
        ),
        PipelineFamily(
            "sd3", "xFuserStableDiffusion3Pipeline", "StableDiffusion3Pipeline", "image", 7.0,
            model_patterns=(r"stable-diffusion-3",), default_steps=28,
        ),
        PipelineFamily(
            "flux", "xFuserFluxPipeline", "FluxPipeline", "image", 3.5, cfg_parallel=False,
            model_patterns=(r"flux\.1",), call_kwargs=(("max_sequence_length", 256),),
        ),
        PipelineFamily(
            "hunyuandit", "xFuserHunyuanDiTPipeline", "HunyuanDiTPipeline", "image", 5.0,
            resolution_binning=True, model_patterns=(r"hunyuandit",),
        ),
        PipelineFamily(
            "sana", "xFuserSanaPipeline", "SanaPipeline", "image", 4.5, resolution_binning=True,
            model_patterns=(r"sana",), call_kwargs=(("clean_caption", False),), default_steps=20,
        ),
        PipelineFamily(
            "sdxl", "xFuserStableDiffusionXLPipeline", "StableDiffusionXLPipeline", "image", 5.0,
            sequence_parallel=False, pipefusion=False, model_patterns=(r"stable-diffusion-xl", r"sdxl"),
            default_steps=30,
        ),
        PipelineFamily(
            "cogvideox", "xFuserCogVideoXPipeline", "CogVideoXPipeline", "video", 6.0,
            pipefusion=False, frames_kwarg="num_frames", model_patterns=(r"cogvideox",),
            default_size=(480, 720), default_frames=49,
        ),
        PipelineFamily(
            "latte", "xFuserLattePipeline", "LattePipeline", "video", 7.5,
            frames_kwarg="video_length", model_patterns=(r"latte",), default_size=(512, 512),
            default_frames=16,
        ),
    )
}  # fmt: skip


def generation_defaults(name: str) -> dict[str, Any]:
    """The generation defaults (GENERATION_KEYS) of the family named `name`; KeyError if unknown."""
    return FAMILIES[name].generation_defaults()
