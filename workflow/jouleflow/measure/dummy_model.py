"""Dummy-weight model directories: the real architecture's config.json plus a covering tokenizer.

vLLM's `--load-format dummy` needs no weights, only `config.json` and a tokenizer that can decode
every id the random weights may emit, i.e. exactly `vocab_size` tokens. We build a WordLevel
tokenizer with the `tokenizers` library: special tokens at the config's bos/eos ids, then the
prompt words of jouleflow.measure.synthetic (so synthetic prompts are one token per word), then filler
tokens `<tok_N>` up to `vocab_size`. Plus tokenizer_config.json with a simple chat template and
generation_config.json. The tokenizer (several MB for 128k tokens) is built on demand, not shipped.

Vision-language models (a `vision_config` in config.json; the Qwen-VL families) also need what the
engine's multimodal processor reads: the bundled `preprocessor_config.json` (and
`video_preprocessor_config.json`) copied beside config.json, the image/video special tokens at
the ids config.json names (the processor expands `<|image_pad|>` into one token per merged patch,
and the model finds the image by those ids), and a chat template that renders image and video
content parts as the model's placeholders. The tokenizer class stays `PreTrainedTokenizerFast`:
transformers' Qwen2Tokenizer rebuilds a BPE and drops the ordinary words of a WordLevel vocabulary.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jouleflow.measure.synthetic import PROMPT_WORDS
from jouleflow.runkey import model_slug

# Bundled architecture configs: resources/models/<slug>/config.json in the repository.
RESOURCES_MODELS = Path(__file__).resolve().parents[3] / "resources" / "models"

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant {% endif %}"
)
ROLE_WORDS = ("system", "user", "assistant", "tool")
# The Qwen-VL families' vision tokens: config.json key of the id -> the token the processor and
# chat template use.
QWEN_VL_TOKENS = {
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
    "vision_token_id": "<|vision_pad|>",
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
}
QWEN_VL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")
# Files of a bundled model dir the multimodal processor reads, copied verbatim when present.
PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
# A part is an image when it is typed so or carries an image (vLLM's and transformers' forms).
VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part or 'video_url' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}assistant {% endif %}"
)


class DummyModelError(ValueError):
    """The HF config cannot make a dummy model; the message names the file."""


def bundled_config(model_id: str) -> Path | None:
    path = RESOURCES_MODELS / model_slug(model_id) / "config.json"
    return path if path.is_file() else None


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return list(value)
    raise DummyModelError(f"token id must be an int or a list of ints, got {value!r}")


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) and "vocab_size" in inner else config


def vision_tokens(config: dict[str, Any], src: Path) -> dict[int, str]:
    """id -> token of a vision-language config's image/video tokens; {} for a text model."""
    if not isinstance(config.get("vision_config"), dict):
        return {}
    if config.get("model_type") not in QWEN_VL_TYPES:
        raise DummyModelError(
            f"{src}: model_type {config.get('model_type')!r} is a vision-language model jouleflow has no "
            f"dummy tokenizer for (known: {', '.join(QWEN_VL_TYPES)})"
        )
    tc = _text_config(config)
    out: dict[int, str] = {}
    for key, token in QWEN_VL_TOKENS.items():
        value = config.get(key, tc.get(key))
        if isinstance(value, int):
            out[value] = token
    if not {"<|image_pad|>", "<|vision_start|>", "<|vision_end|>"} <= set(out.values()):
        raise DummyModelError(
            f"{src}: a vision-language config needs image_token_id and vision_start/end_token_id"
        )
    return out


def build_vocab(
    vocab_size: int,
    bos_ids: list[int],
    eos_ids: list[int],
    pad_ids: list[int],
    extra: dict[int, str] | None = None,
) -> dict[str, int]:
    """token -> id for ids 0..vocab_size-1, specials at their configured ids, <unk> included."""
    specials: dict[int, str] = dict(extra or {})
    for i in bos_ids:
        specials.setdefault(i, "<bos>" if i == bos_ids[0] else f"<bos_{i}>")
    for i in eos_ids:
        specials.setdefault(i, "<eos>" if i == eos_ids[0] else f"<eos_{i}>")
    for i in pad_ids:
        specials.setdefault(i, "<pad>")
    bad = [i for i in specials if not 0 <= i < vocab_size]
    if bad:
        raise DummyModelError(f"special token id(s) {bad} outside vocab_size={vocab_size}")
    words = ["<unk>", *ROLE_WORDS, *PROMPT_WORDS]
    vocab: dict[str, int] = {}
    word_iter = iter(words)
    for i in range(vocab_size):
        if i in specials:
            vocab[specials[i]] = i
            continue
        token = next(word_iter, None)
        vocab[token if token is not None else f"<tok_{i}>"] = i
    if "<unk>" not in vocab:
        raise DummyModelError(f"vocab_size={vocab_size} too small for a tokenizer")
    return vocab


def build_tokenizer(vocab: dict[str, int], special_tokens: list[str]):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return tok


def make_dummy_model(config_src: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Create `out_dir` with config.json (copied verbatim), tokenizer.json, tokenizer_config.json,
    generation_config.json. `config_src` is a config.json or a directory holding one."""
    src = Path(config_src)
    if src.is_dir():
        src = src / "config.json"
    if not src.is_file():
        raise DummyModelError(f"{src}: HF config not found")
    try:
        config = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise DummyModelError(f"{src}: not valid JSON ({exc})") from exc
    tc = _text_config(config)
    vocab_size = tc.get("vocab_size")
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise DummyModelError(f"{src}: vocab_size missing or not a positive integer")
    try:
        bos = _ids(tc.get("bos_token_id", config.get("bos_token_id")))
        eos = _ids(tc.get("eos_token_id", config.get("eos_token_id")))
        pad = _ids(tc.get("pad_token_id", config.get("pad_token_id")))
        vision = vision_tokens(config, src)
        vocab = build_vocab(vocab_size, bos, eos, pad, vision)
    except DummyModelError as exc:
        raise DummyModelError(str(exc) if str(exc).startswith(str(src)) else f"{src}: {exc}") from exc
    specials = [t for t in vocab if t.startswith(("<bos", "<eos", "<pad"))] + ["<unk>", *vision.values()]
    tok = build_tokenizer(vocab, specials)
    if tok.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise DummyModelError(
            f"{src}: built tokenizer has {tok.get_vocab_size(with_added_tokens=True)} tokens, vocab_size={vocab_size}"
        )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DummyModelError(f"{out}: directory exists and is not empty (use overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / "config.json")
    tok.save(str(out / "tokenizer.json"))
    inv = {i: t for t, i in vocab.items()}
    max_len = tc.get("max_position_embeddings") or 4096
    tok_cfg: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
        "unk_token": "<unk>",
        "chat_template": VL_CHAT_TEMPLATE if vision else CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    if bos:
        tok_cfg["bos_token"] = inv[bos[0]]
    if eos:
        tok_cfg["eos_token"] = inv[eos[0]]
    if pad:
        tok_cfg["pad_token"] = inv[pad[0]]
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    gen: dict[str, Any] = {"_from_model_config": True}
    if bos:
        gen["bos_token_id"] = bos[0]
    if eos:
        gen["eos_token_id"] = eos if len(eos) > 1 else eos[0]
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    if vision:
        _processor_files(src, out)
    (out / "JOULEFLOW_DUMMY.md").write_text(
        f"Dummy-weight model directory made by jouleflow from {src.name} of "
        f"{config.get('_name_or_path') or src.parent.name}. Architecture only: serve with "
        "--load-format dummy. The tokenizer is a synthetic WordLevel vocabulary covering vocab_size.\n"
    )
    return out


def _processor_files(src: Path, out: Path) -> None:
    """The multimodal processor's files beside the config, and the chat template the processor reads."""
    if not (src.parent / PROCESSOR_FILES[0]).is_file():
        raise DummyModelError(
            f"{src.parent / PROCESSOR_FILES[0]}: a vision-language model needs its preprocessor_config.json "
            "beside config.json (the engine's image processor reads it)"
        )
    for name in PROCESSOR_FILES:
        if (src.parent / name).is_file():
            shutil.copyfile(src.parent / name, out / name)
    (out / "chat_template.jinja").write_text(VL_CHAT_TEMPLATE)


def ensure_dummy_model(model_id: str, cache_dir: str | Path) -> Path:
    """The dummy dir for a bundled model id under `cache_dir` (built once, reused afterwards)."""
    cfg = bundled_config(model_id)
    if cfg is None:
        have = (
            sorted(p.name for p in RESOURCES_MODELS.iterdir() if p.is_dir())
            if RESOURCES_MODELS.is_dir()
            else []
        )
        raise DummyModelError(
            f"model {model_id}: no bundled config under resources/models/{model_slug(model_id)} (bundled: {have}); "
            "give --model-path to a dir made by `jouleflow prepare model`"
        )
    out = Path(cache_dir) / model_slug(model_id)
    if (out / "tokenizer.json").is_file() and all(
        (out / name).is_file() and (out / name).read_bytes() == (cfg.parent / name).read_bytes()
        for name in ("config.json", *PROCESSOR_FILES)
        if (cfg.parent / name).is_file()
    ):
        return out
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    make_dummy_model(cfg, tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
