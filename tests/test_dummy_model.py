"""Dummy-weight model dirs: a tokenizer covering exactly vocab_size, special ids where the config says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.measure.dummy_model import DummyModelError, ensure_dummy_model, make_dummy_model
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "resources" / "models"


@pytest.mark.parametrize("slug", sorted(p.name for p in MODELS.iterdir() if p.is_dir()))
def test_bundled_configs_make_covering_tokenizers(slug, tmp_path):
    config = json.loads((MODELS / slug / "config.json").read_text())
    config = config.get("text_config", config)  # a vision-language model's text decoder holds the vocab
    d = make_dummy_model(MODELS / slug, tmp_path / slug)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    vocab = config["vocab_size"]
    assert tok.get_vocab_size(with_added_tokens=True) == vocab
    # every id decodes to a distinct token: nothing the random weights emit is undecodable
    ids = list(range(vocab))
    tokens = [tok.id_to_token(i) for i in ids]
    assert None not in tokens and len(set(tokens)) == vocab
    eos = config["eos_token_id"] if isinstance(config["eos_token_id"], list) else [config["eos_token_id"]]
    assert tok.id_to_token(eos[0]) == "<eos>" and tok.id_to_token(config["bos_token_id"]) == "<bos>"
    assert (d / "config.json").read_bytes() == (MODELS / slug / "config.json").read_bytes()
    tc = json.loads((d / "tokenizer_config.json").read_text())
    assert tc["eos_token"] == "<eos>" and "chat_template" in tc
    gen = json.loads((d / "generation_config.json").read_text())
    assert gen["eos_token_id"] == (eos if len(eos) > 1 else eos[0])


def test_llama_architecture_values():
    c = json.loads((MODELS / "meta-llama--Llama-3.1-8B-Instruct" / "config.json").read_text())
    assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]) == (
        4096,
        32,
        32,
        8,
    )
    assert (c["intermediate_size"], c["vocab_size"], c["rope_theta"], c["max_position_embeddings"]) == (
        14336,
        128256,
        500000.0,
        131072,
    )
    assert c["rope_scaling"]["rope_type"] == "llama3" and c["torch_dtype"] == "bfloat16"


def test_transformers_loads_the_tokenizer_and_chat_template(tmp_path):
    transformers = pytest.importorskip("transformers")
    d = make_dummy_model(MODELS / "meta-llama--Llama-3.1-8B-Instruct", tmp_path / "m")
    tok = transformers.AutoTokenizer.from_pretrained(str(d))
    assert len(tok) == 128256
    text = tok.apply_chat_template(
        [{"role": "user", "content": "the energy"}], tokenize=False, add_generation_prompt=True
    )
    assert text.split() == ["user", "the", "energy", "assistant"]
    assert tok.decode([128255, 128000], skip_special_tokens=True) == "<tok_128255>"


def test_bad_configs(tmp_path):
    with pytest.raises(DummyModelError, match="config.json: HF config not found"):
        make_dummy_model(tmp_path, tmp_path / "out")
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"hidden_size": 4}))
    with pytest.raises(DummyModelError, match="vocab_size missing"):
        make_dummy_model(f, tmp_path / "out")
    f.write_text(json.dumps({"vocab_size": 100, "eos_token_id": 100}))
    with pytest.raises(DummyModelError, match=r"special token id\(s\) \[100\] outside vocab_size=100"):
        make_dummy_model(f, tmp_path / "out")
    f.write_text(json.dumps({"vocab_size": 300, "eos_token_id": 2}))
    make_dummy_model(f, tmp_path / "out")
    with pytest.raises(DummyModelError, match="not empty"):
        make_dummy_model(f, tmp_path / "out")


def test_ensure_builds_once_and_rejects_unknown(tmp_path):
    d = ensure_dummy_model("Qwen/Qwen3-8B", tmp_path)
    mtime = (d / "tokenizer.json").stat().st_mtime_ns
    assert ensure_dummy_model("Qwen/Qwen3-8B", tmp_path) == d
    assert (d / "tokenizer.json").stat().st_mtime_ns == mtime
    with pytest.raises(DummyModelError, match="model org/unknown: no bundled config"):
        ensure_dummy_model("org/unknown", tmp_path)


def test_prepare_model_cli(tmp_path):
    env_pp = str(REPO / "workflow")
    out = tmp_path / "llama"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jouleflow",
            "prepare",
            "model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_pp, "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    assert Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size() == 128256
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jouleflow",
            "prepare",
            "model",
            str(tmp_path / "nothing"),
            "-o",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_pp, "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2 and "nothing" in r.stderr and "not found" in r.stderr
