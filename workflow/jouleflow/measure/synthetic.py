"""Synthetic request sets: prompt lengths from a distribution, output lengths from a histogram.

Output lengths follow ML.ENERGY v3's per-configuration `output_length_distribution` (a 50-bin
histogram in its models/<org>__<model>__<task>.json files): a bin is drawn with probability
proportional to its count, then an integer length uniformly within the bin. Requests carry
`ignore_eos` and `max_tokens` = the sampled length, so random (dummy) weights produce exactly
that many tokens. Prompts are sequences of common English words: one token each in a dummy
WordLevel tokenizer (jouleflow.measure.dummy_model puts them in its vocabulary) and close to one token each
in BPE tokenizers; `input_tokens` is exact when a tokenizer.json is given.
Multimodal sets (`media=MediaSpec(...)`): each chat request carries its own seeded synthetic images
and/or videos of the given resolution and frame count (measure/media.py), before the text.
Everything is seeded: the same arguments give the same request set, byte for byte.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jouleflow.measure import media as media_mod
from jouleflow.measure.requestset import RequestSpec


@dataclass(frozen=True)
class MediaSpec:
    """Synthetic media per request: `images` images of image_size, `videos` videos of video_size x
    video_frames."""

    images: int = 0
    image_size: tuple[int, int] = (1024, 768)
    image_format: str = "jpeg"
    videos: int = 0
    video_size: tuple[int, int] = (640, 360)
    video_frames: int = 16

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str) -> MediaSpec:
        """From a config's `media:` (sizes as "WxH"); errors name `where`.<key>."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ValueError(f"{where}.{bad[0]}: unknown key (known: {', '.join(sorted(known))})")
        args = dict(data)
        for key in ("image_size", "video_size"):
            if isinstance(args.get(key), str):
                args[key] = media_mod.parse_size(args[key], f"{where}.{key}")
        for key in ("images", "videos", "video_frames"):
            if key in args and (
                not isinstance(args[key], int) or args[key] < (1 if key == "video_frames" else 0)
            ):
                raise ValueError(f"{where}.{key}: a non-negative integer, got {args[key]!r}")
        return cls(**args)

    def make(self, seed: int, request_id: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        """([(kind, data URL)], [info]) of one request's media."""
        urls, infos = [], []
        for k in range(self.images):
            url, meta = media_mod.synthetic_image(
                *self.image_size, f"{seed}-{request_id}-image{k}", self.image_format
            )
            urls.append(("image", url))
            infos.append(meta)
        for k in range(self.videos):
            url, meta = media_mod.synthetic_video(
                *self.video_size, self.video_frames, f"{seed}-{request_id}-video{k}"
            )
            urls.append(("video", url))
            infos.append(meta)
        return urls, infos


# Plain words; the dummy tokenizer includes them so prompts tokenize to exactly one token per word.
_PROMPT_TEXT = (
    "the of and to in is was for on that with as by at from his her an be which or are this had not but "
    "were have their they one all been has its new more also after first two who other time can into "
    "there over would when may some only about most these many she than world during war year years "
    "people state city team school made part three later between such used work where under under "
    "known number them while against well both being through before then high life history national "
    "found since university each group small long water music light house paper model energy power "
    "question answer write explain story simple short please describe"
)
PROMPT_WORDS = tuple(dict.fromkeys(_PROMPT_TEXT.split()))  # unique, order kept


class HistogramError(ValueError):
    """The histogram file or the wanted configuration is missing or malformed."""


@dataclass
class Histogram:
    edges: list[float]  # len(counts) + 1
    counts: list[float]
    source: str  # file and configuration, for provenance
    fallback: str | None = None  # why another configuration's lengths were used (None: exact match)

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1 or not self.counts:
            raise HistogramError(f"{self.source}: need len(bins) == len(counts) + 1 > 1")
        if any(c < 0 for c in self.counts) or sum(self.counts) <= 0:
            raise HistogramError(f"{self.source}: counts must be >= 0 with a positive sum")
        if any(b > a for a, b in zip(self.edges[1:], self.edges[:-1], strict=True)):
            raise HistogramError(f"{self.source}: bin edges must increase")

    def sample(self, rng: random.Random) -> int:
        """A bin by weight, then an integer uniformly in [ceil(lo), floor(hi)] (at least 1)."""
        cum = self._cumulative()
        i = bisect.bisect_right(cum, rng.random() * cum[-1])
        i = min(i, len(self.counts) - 1)
        lo, hi = self.edges[i], self.edges[i + 1]
        lo_i = max(1, int(-(-lo // 1)))
        hi_i = max(lo_i, int(hi // 1) - (1 if hi == int(hi) and i < len(self.counts) - 1 else 0))
        return rng.randint(lo_i, hi_i)

    def _cumulative(self) -> list[float]:
        if not hasattr(self, "_cum"):
            total, out = 0.0, []
            for c in self.counts:
                total += c
                out.append(total)
            self._cum = out
        return self._cum


# GPUs whose published lengths stand in for a GPU ML.ENERGY did not measure, in order of preference:
# the lengths depend on the model and sampling, barely on the GPU, and H100 is the most published.
FALLBACK_GPU_ORDER = ("H100", "B200", "A100")


def load_histogram(
    path: str | Path,
    gpu_model: str | None,
    num_gpus: int | None,
    max_num_seqs: int | None,
    *,
    fallback: bool = True,
) -> Histogram:
    """The histogram of the configuration (gpu_model, num_gpus, max_num_seqs) in an ML.ENERGY file.

    Accepts the v3 models/*.json layout ({"configurations": [{gpu_model, num_gpus, max_num_seqs,
    output_length_distribution: {bins, counts}}], "output_length_distribution": pooled}) or a bare
    {"bins", "counts"} object. Without an exact match and with `fallback` (docs/config.md):
      1. the same num_gpus and max_num_seqs on another GPU (FALLBACK_GPU_ORDER, then by name);
      2. else the nearest max_num_seqs with the same num_gpus (the smaller on a tie), same GPU order;
      3. else the file's pooled distribution of the model x task.
    The choice is in `Histogram.source` and `Histogram.fallback` (recorded in run.json).
    No match and no fallback is an error listing the configurations the file has.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HistogramError(f"{path}: cannot read output-length histogram ({exc})") from exc
    if isinstance(data, dict) and "bins" in data and "counts" in data:
        return Histogram(list(data["bins"]), list(data["counts"]), str(path))
    configs = data.get("configurations") if isinstance(data, dict) else None
    if not isinstance(configs, list):
        raise HistogramError(f"{path}: no 'configurations' list and no top-level bins/counts")
    usable = [c for c in configs if isinstance(c, dict) and "output_length_distribution" in c]
    wanted = f"gpu_model={gpu_model} num_gpus={num_gpus} max_num_seqs={max_num_seqs}"
    hits = [c for c in usable if _matches(c, gpu_model, num_gpus, max_num_seqs)]
    if len(hits) > 1:
        raise HistogramError(f"{path}: {len(hits)} configurations match {wanted}; give all three")
    note = None
    if not hits and fallback:
        hits, note = _fallback(usable, data, gpu_model, num_gpus, max_num_seqs)
        if note:
            note = f"no published configuration for {wanted}; {note}"
    if not hits and note is None:
        have = sorted({(c.get("gpu_model"), c.get("num_gpus"), c.get("max_num_seqs")) for c in configs})
        raise HistogramError(
            f"{path}: no configuration matches {wanted}; "
            f"available (gpu_model, num_gpus, max_num_seqs): {have}"
        )
    chosen = hits[0] if hits else {"output_length_distribution": data.get("output_length_distribution")}
    dist = chosen["output_length_distribution"]
    try:
        edges, counts = list(dist["bins"]), list(dist["counts"])
    except (KeyError, TypeError) as exc:
        raise HistogramError(f"{path}: output_length_distribution lacks bins/counts") from exc
    if hits:
        c = hits[0]
        src = f"{path.name}[gpu_model={c.get('gpu_model')},num_gpus={c.get('num_gpus')},max_num_seqs={c.get('max_num_seqs')}]"
    else:
        src = f"{path.name}[pooled]"
    return Histogram(edges, counts, src, fallback=note)


def _matches(
    c: dict[str, Any], gpu_model: str | None, num_gpus: int | None, max_num_seqs: int | None
) -> bool:
    return (
        (gpu_model is None or str(c.get("gpu_model", "")).lower() == gpu_model.lower())
        and (num_gpus is None or c.get("num_gpus") == num_gpus)
        and (max_num_seqs is None or c.get("max_num_seqs") == max_num_seqs)
    )


def _gpu_rank(c: dict[str, Any], gpu_model: str | None) -> tuple[int, int, str]:
    """The job's own GPU first, then FALLBACK_GPU_ORDER, then by name."""
    gpu = str(c.get("gpu_model", "")).lower()
    order = [g.lower() for g in FALLBACK_GPU_ORDER]
    own = 0 if gpu_model is not None and gpu == gpu_model.lower() else 1
    return (own, order.index(gpu) if gpu in order else len(order), gpu)


def _fallback(
    usable: list[dict[str, Any]],
    data: dict[str, Any],
    gpu_model: str | None,
    num_gpus: int | None,
    max_num_seqs: int | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """(the chosen configuration as a one-element list, or [] for the pooled one; what was done)."""
    same = [c for c in usable if _matches(c, None, num_gpus, max_num_seqs)]
    if same:
        best = min(same, key=lambda c: _gpu_rank(c, gpu_model))
        return [best], f"used {best.get('gpu_model')}'s (same num_gpus and max_num_seqs)"
    gpus_ok = [c for c in usable if _matches(c, None, num_gpus, None) and c.get("max_num_seqs")]
    if gpus_ok and max_num_seqs is not None:
        dist = min(abs(int(c["max_num_seqs"]) - max_num_seqs) for c in gpus_ok)
        near = [c for c in gpus_ok if abs(int(c["max_num_seqs"]) - max_num_seqs) == dist]
        best = min(near, key=lambda c: (int(c["max_num_seqs"]), _gpu_rank(c, gpu_model)))
        return [best], (
            f"used {best.get('gpu_model')}'s at the nearest published max_num_seqs={best['max_num_seqs']}"
        )
    if isinstance(data.get("output_length_distribution"), dict):
        return [], "used the model x task's pooled distribution"
    return [], None


def parse_length_distribution(spec: str) -> tuple[str, list[float]]:
    """ "fixed:N" | "uniform:A,B" | "normal:MEAN,STD" -> (kind, params); errors name the spec."""
    kind, _, rest = spec.partition(":")
    try:
        params = [float(x) for x in rest.split(",")] if rest else []
    except ValueError as exc:
        raise ValueError(f"prompt length distribution {spec!r}: parameters must be numbers") from exc
    need = {"fixed": 1, "uniform": 2, "normal": 2}
    if kind not in need or len(params) != need[kind]:
        raise ValueError(f"prompt length distribution {spec!r}: use fixed:N, uniform:A,B or normal:MEAN,STD")
    if any(p < 0 for p in params) or (kind != "normal" and params[0] < 1):
        raise ValueError(f"prompt length distribution {spec!r}: lengths must be >= 1")
    return kind, params


def sample_length(kind: str, params: list[float], rng: random.Random) -> int:
    if kind == "fixed":
        return int(params[0])
    if kind == "uniform":
        return rng.randint(int(params[0]), int(params[1]))
    return max(1, round(rng.gauss(params[0], params[1])))


def make_prompt(n_words: int, rng: random.Random) -> str:
    return " ".join(rng.choice(PROMPT_WORDS) for _ in range(n_words))


def generate(
    num_requests: int,
    *,
    histogram: Histogram | None = None,
    fixed_output_len: int | None = None,
    prompt_len: str = "fixed:200",
    seed: int = 0,
    endpoint: str = "chat",
    tokenizer_json: str | Path | None = None,
    media: MediaSpec | None = None,
) -> list[RequestSpec]:
    """`num_requests` synthetic requests (chat messages or completion prompts), ignore_eos set."""
    if media is not None and not (media.images or media.videos):
        media = None
    if media is not None and endpoint != "chat":
        raise ValueError(f"images/videos need the chat endpoint, not {endpoint!r}")
    if num_requests <= 0:
        raise ValueError(f"num_requests must be > 0, got {num_requests}")
    if (histogram is None) == (fixed_output_len is None):
        raise ValueError("give exactly one of an output-length histogram and fixed_output_len")
    kind, params = parse_length_distribution(prompt_len)
    tok = None
    if tokenizer_json is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_json))
    out_rng = random.Random(f"{seed}-output")  # separate streams: changing one length law keeps the other
    in_rng = random.Random(f"{seed}-prompt")
    specs = []
    for i in range(num_requests):
        out_len = histogram.sample(out_rng) if histogram is not None else int(fixed_output_len or 0)
        text = make_prompt(sample_length(kind, params, in_rng), in_rng)
        n_in = len(tok.encode(text, add_special_tokens=False).ids) if tok is not None else None
        chat = endpoint == "chat"
        urls, infos = media.make(seed, i) if media is not None else ([], None)
        specs.append(
            RequestSpec(
                request_id=i,
                prompt=None if chat else text,
                messages=[{"role": "user", "content": media_mod.content(text, urls) if urls else text}]
                if chat
                else None,
                input_tokens=n_in,  # the text's tokens; the server's usage adds the media's
                max_tokens=out_len,
                ignore_eos=True,
                media=infos,
            )
        )
    return specs
