"""Dummy vision-language model dirs, checked with transformers on the CPU: the image tokens at their
real ids, a chat template that renders image parts, the image processor's token count for a
synthetic image, and the checks that refuse a dir before any GPU time is spent."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from jouleflow.cli import main as cli_main
from jouleflow.measure import media
from jouleflow.measure.dummy_model import DummyModelError, ensure_dummy_model, make_dummy_model
from jouleflow.measure.engines import vllm
from jouleflow.measure.engines.vllm import ModelValidationError
from jouleflow.measure.jobconfig import config_from_dict

transformers = pytest.importorskip("transformers")
from PIL import Image  # noqa: E402  (after the skip: transformers brings the image stack)

MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"
# model id -> (image token id, vocab, tokens of a 1024x768 image: the processor resizes to multiples
# of patch x merge (28 for Qwen2.5-VL, 32 for Qwen3-VL), one token per merged 2x2 patch)
VL = {
    "Qwen/Qwen2.5-VL-7B-Instruct": (151655, 152064, round(768 / 28) * round(1024 / 28)),
    "Qwen/Qwen3-VL-8B-Instruct": (151655, 151936, (768 // 32) * (1024 // 32)),
}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vl")
    out = {}
    for model in VL:
        assert cli_main(["prepare", "model", model, "-o", str(root / model.split("/")[1])]) == 0
        out[model] = root / model.split("/")[1]
    return out


def _synthetic_image() -> Image.Image:
    url, meta = media.synthetic_image(1024, 768, "0-0-image0", "png")
    assert (meta["width"], meta["height"]) == (1024, 768)
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.mark.parametrize("model", list(VL))
def test_tokenizer_template_and_image_processor_on_cpu(dirs, model):
    image_id, vocab, expected = VL[model]
    d = dirs[model]
    for name in ("config.json", "preprocessor_config.json"):
        assert (d / name).read_bytes() == (MODELS / model.replace("/", "--") / name).read_bytes()
    assert (
        json.loads((d / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    )
    tok = transformers.AutoTokenizer.from_pretrained(str(d))
    assert len(tok) == vocab
    assert [
        tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>")
    ] == [
        151652,
        image_id,
        151653,
    ]
    assert tok.convert_tokens_to_ids("<|video_pad|>") == 151656
    assert tok.convert_tokens_to_ids("describe") != tok.convert_tokens_to_ids("<unk>")  # words kept
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "describe the paper"},
    ]
    text = tok.apply_chat_template(
        [{"role": "user", "content": parts}], add_generation_prompt=True, tokenize=False
    )
    assert text == "user <|vision_start|><|image_pad|><|vision_end|>describe the paper assistant "
    video = tok.apply_chat_template([{"role": "user", "content": [{"type": "video"}]}], tokenize=False)
    assert "<|vision_start|><|video_pad|><|vision_end|>" in video
    assert tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False) == "user hello "

    processor = transformers.AutoImageProcessor.from_pretrained(str(d))
    grid = processor(images=[_synthetic_image()], return_tensors="pt")["image_grid_thw"][0]
    n = int(grid.prod()) // processor.merge_size**2
    assert n == expected
    # The processor's expansion of the placeholder: n image tokens at the model's image id.
    ids = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n))["input_ids"]
    assert ids.count(image_id) == n and ids.count(tok.convert_tokens_to_ids("<unk>")) == 0


@pytest.mark.parametrize("model", list(VL))
def test_auto_processor_loads_the_dir(dirs, model):
    pytest.importorskip("torchvision")  # transformers' video processors need it (vLLM's env has it)
    proc = transformers.AutoProcessor.from_pretrained(str(dirs[model]))
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    out = proc(text=[text], images=[_synthetic_image()], return_tensors="pt")
    assert out["input_ids"][0].tolist().count(VL[model][0]) == VL[model][2]


def test_bad_vision_language_dirs_are_refused_before_the_launch(dirs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(MODELS / "Qwen--Qwen2.5-VL-7B-Instruct" / "config.json", src / "config.json")
    with pytest.raises(DummyModelError, match=r"preprocessor_config.json: a vision-language model needs"):
        make_dummy_model(src, tmp_path / "out")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    with pytest.raises(DummyModelError, match="model_type 'llava' is a vision-language model"):
        make_dummy_model(src, tmp_path / "out2")

    d = dirs["Qwen/Qwen2.5-VL-7B-Instruct"]
    spec = {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "batch_size": 2,
        "model_path": str(d),
        "load_format": "dummy",
        "synthetic": {"fixed_output_len": 8},
    }
    assert vllm.validate(config_from_dict(spec))["model_type"] == "qwen2_5_vl"
    bare = tmp_path / "bare"
    shutil.copytree(d, bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(ModelValidationError, match=r"bare: no preprocessor_config.json"):
        vllm.validate(config_from_dict({**spec, "model_path": str(bare)}))


def test_a_chat_task_needs_a_chat_template(tmp_path):
    d = make_dummy_model(MODELS / "Qwen--Qwen3-8B", tmp_path / "m")
    tok_cfg = json.loads((d / "tokenizer_config.json").read_text())
    del tok_cfg["chat_template"]
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    spec = {"model": "Qwen/Qwen3-8B", "batch_size": 2, "model_path": str(d), "load_format": "dummy",
            "synthetic": {"fixed_output_len": 8}}  # fmt: skip
    with pytest.raises(
        ModelValidationError, match=r"m/tokenizer_config.json: no chat_template .* endpoint is chat"
    ):
        vllm.validate(config_from_dict(spec))
    assert vllm.validate(config_from_dict({**spec, "endpoint": "completions"}))
    assert vllm.validate(config_from_dict({**spec, "server_args": ["--chat-template", "t.jinja"]}))


def test_the_session_cache_rebuilds_when_the_processor_config_changes(tmp_path, monkeypatch):
    from jouleflow.measure import dummy_model

    models = tmp_path / "models"
    shutil.copytree(MODELS / "Qwen--Qwen2.5-VL-7B-Instruct", models / "Qwen--Qwen2.5-VL-7B-Instruct")
    monkeypatch.setattr(dummy_model, "RESOURCES_MODELS", models)
    d = ensure_dummy_model("Qwen/Qwen2.5-VL-7B-Instruct", tmp_path / "cache")
    assert (d / "chat_template.jinja").is_file()
    pre = models / "Qwen--Qwen2.5-VL-7B-Instruct" / "preprocessor_config.json"
    pre.write_text(json.dumps({**json.loads(pre.read_text()), "max_pixels": 1003520}))
    d = ensure_dummy_model("Qwen/Qwen2.5-VL-7B-Instruct", tmp_path / "cache")
    assert json.loads((d / "preprocessor_config.json").read_text())["max_pixels"] == 1003520
