"""Request sets from a pinned Hugging Face dataset (`kind: hf`), offline: each test builds a small
dataset in the Hub cache's layout (datasets--org--name/{refs,snapshots/<commit>}) and reads it with
HF_HUB_OFFLINE=1, as a measurement host does after one prefetch."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jouleflow import requestsource
from jouleflow.measure import hfrequests
from jouleflow.measure.diffusion_prompts import load_prompt_set
from jouleflow.measure.hfsource import HFSource, HFSourceError
from jouleflow.measure.requestset import read_request_set, request_set_metadata, write_request_set
from jouleflow.measure.synthetic import load_histogram
from pipeline_helpers import copy_workflow, plan

REPO = Path(__file__).resolve().parents[1]
HIST = REPO / "resources" / "mlenergy-v3" / "models" / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
V1, V2 = "1" * 40, "2" * 40
WHERE = "tasks.t.request_set"


def snapshot(cache: Path, repo: str, commit: str, tag: str | None = None) -> Path:
    """A revision's folder in the Hub cache layout (what huggingface_hub's download leaves)."""
    top = cache / f"datasets--{repo.replace('/', '--')}"
    root = top / "snapshots" / commit
    root.mkdir(parents=True, exist_ok=True)
    if tag:
        (top / "refs").mkdir(exist_ok=True)
        (top / "refs" / tag).write_text(commit)
    return root


def chats(n: int, tag: str = "") -> list[dict]:
    return [
        {
            "conversation_a": [
                {"role": "user", "content": f"{tag}question {i}"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": f"{tag}follow-up {i}"},
                {"role": "assistant", "content": "another"},
            ],
            "text": f"{tag}a prompt {i}",
        }
        for i in range(n)
    ]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    for commit, tag in ((V1, "v1"), (V2, "v2")):
        root = snapshot(cache, "org/chats", commit, tag)
        (root / "data").mkdir()
        pq.write_table(pa.Table.from_pylist(chats(6, tag)), root / "data" / "train-00000-of-00001.parquet")
    root = snapshot(cache, "org/gpqa", V1, "v1")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: diamond\n  data_files: diamond.csv\n"
        "- config_name: main\n  data_files: main.csv\n---\n# GPQA-like\n"
    )
    cols = ["Question", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Correct Answer"]
    for name, n in (("diamond", 3), ("main", 7)):
        with open(root / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for i in range(n):
                w.writerow({"Question": f"Q{i}\nspans lines", **{c: f" {c} {i} " for c in cols[1:]}})
    root = snapshot(cache, "org/fim", V1, "v1")
    rows = [
        {"prefix": f"def f{i}(x):\n", "middle": "    y = x\n", "suffix": "    return y\n"} for i in range(4)
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return cache


def load(cache, endpoint="chat", n=8, **rs):
    source = HFSource.from_mapping({"kind": "hf", **rs}, WHERE, endpoint)
    return hfrequests.from_hub(source, endpoint=endpoint, num_requests=n, where=WHERE, cache_dir=cache)


def test_multi_turn_chats_from_the_offline_cache_with_provenance(hub, tmp_path):
    fields = {"messages": "conversation_a", "turns": "expand", "system": "/no_think"}
    specs, prov = load(hub, repo="org/chats", revision="v1", fields=fields, max_tokens=64)
    assert len(specs) == 8 and all(s.max_tokens == 64 and not s.ignore_eos for s in specs)
    assert {len(s.messages) for s in specs} == {2, 4}  # each user turn is a request, after the system prompt
    assert all(s.messages[0] == {"role": "system", "content": "/no_think"} for s in specs)
    assert all(s.messages[-1]["role"] == "user" and s.messages[-1]["content"].startswith("v1") for s in specs)
    data = hub / "datasets--org--chats" / "snapshots" / V1 / "data" / "train-00000-of-00001.parquet"
    assert prov["commit"] == V1 and prov["revision"] == "v1"
    assert prov["files"] == {
        "data/train-00000-of-00001.parquet": hashlib.sha256(data.read_bytes()).hexdigest()
    }
    # Through the real writer, back through the load generator's reader.
    path = write_request_set(specs, tmp_path / "rs.parquet", hfrequests.metadata(prov))
    back = read_request_set(path)
    assert [s.messages for s in back] == [s.messages for s in specs]
    assert back[0].to_load_request("chat").messages == specs[0].messages
    meta = request_set_metadata(path)
    assert meta["hf_commit"] == V1 and json.loads(meta["hf"])["files"] == prov["files"]
    again, _ = load(hub, repo="org/chats", revision="v1", fields=fields, max_tokens=64)
    assert again == specs  # seeded


def test_the_revision_is_pinned_and_a_missing_one_names_the_key(hub):
    fields = {"prompt": "text"}
    v1, _ = load(hub, repo="org/chats", revision="v1", fields=fields, max_tokens=8)
    v2, prov = load(hub, repo="org/chats", revision=V2, fields=fields, max_tokens=8)
    assert prov["commit"] == V2
    assert all(s.messages[0]["content"].startswith("v1") for s in v1)
    assert all(s.messages[0]["content"].startswith("v2") for s in v2)
    with pytest.raises(
        HFSourceError, match=rf"{WHERE}\.revision: 'v3' of dataset org/chats is not in .*HF_HUB_OFFLINE"
    ):
        load(hub, repo="org/chats", revision="v3", fields=fields, max_tokens=8)
    with pytest.raises(HFSourceError, match=rf"{WHERE}\.revision: 'main' is a branch"):
        load(hub, repo="org/chats", revision="main", fields=fields, max_tokens=8)


def test_a_missing_column_names_the_key_and_the_column(hub):
    with pytest.raises(
        HFSourceError, match=rf"{WHERE}\.fields\.messages: column 'conversation_b' is not in org/chats@{V1}"
    ):
        load(hub, repo="org/chats", revision="v1", fields={"messages": "conversation_b"}, max_tokens=8)
    with pytest.raises(HFSourceError, match=rf"{WHERE}\.fields\.choices\[1\]: column 'Wrong 2' is not in"):
        load(hub, repo="org/gpqa", revision="v1", config="diamond", max_tokens=8,
             fields={"template": "{Question}{choices}", "choices": ["Correct Answer", "Wrong 2"]})  # fmt: skip
    with pytest.raises(HFSourceError, match=rf"{WHERE}\.config: 'extended' is not a config of org/gpqa"):
        load(
            hub,
            repo="org/gpqa",
            revision="v1",
            config="extended",
            fields={"prompt": "Question"},
            max_tokens=8,
        )
    with pytest.raises(HFSourceError, match=rf"{WHERE}\.split: no data files for split 'test'"):
        load(hub, repo="org/fim", revision="v1", split="test", fields={"prompt": "prefix"}, max_tokens=8)


def test_a_template_with_shuffled_choices_from_a_card_config(hub):
    choices = ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Correct Answer"]
    fields = {"template": "Q: {Question}\n\nChoices:{choices}", "choices": choices}
    specs, prov = load(
        hub, repo="org/gpqa", revision="v1", config="diamond", fields=fields, n=5, max_tokens=32
    )
    assert list(prov["files"]) == ["diamond.csv"] and prov["num_unique"] == 3 and prov["repeated"]
    text = specs[0].messages[0]["content"]
    assert text.startswith("Q: Q") and "spans lines\n\nChoices:\n(A) " in text and "\n(D) " in text
    assert sorted(line[4:] for line in text.splitlines()[-4:]) == sorted(f"{c} {text[4]}" for c in choices)
    assert [s.messages for s in specs[3:]] == [s.messages for s in specs[:2]]  # reused in order


def test_fill_in_the_middle_on_completions_with_histogram_lengths(hub):
    hist = load_histogram(HIST, "H100", 1, 64)
    source = HFSource.from_mapping(
        {"kind": "hf", "repo": "org/fim", "revision": "v1", "fields": {"prefix": "prefix", "suffix": "suffix"},
         "max_tokens": 200, "output_lengths": str(HIST)}, WHERE, "completions")  # fmt: skip
    specs, prov = hfrequests.from_hub(
        source, endpoint="completions", num_requests=16, where=WHERE, histogram=hist, cache_dir=hub
    )
    assert (
        specs[0].prompt.startswith("<|fim_prefix|>def f")
        and "<|fim_suffix|>    return y\n<|fim_middle|>" in specs[0].prompt
    )
    assert all(s.messages is None and s.ignore_eos and 1 <= s.max_tokens <= 200 for s in specs)
    assert prov["histogram"] == hist.source and prov["files"].keys() == {"train.jsonl"}


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"fields": {"images": ["img"], "prompt": "text"}}, "fields.images", "a column name"),
        ({"fields": {"video": "", "prompt": "text"}}, "fields.video", "a column name"),
        ({"fields": {"prompt": "text", "messages": "m"}}, "fields", "exactly one of"),
        ({"fields": {"prefix": "p"}}, "fields.suffix", "go together"),
        ({"fields": {"template": "{Q}", "choices": ["a"]}}, "fields.template", "no {choices}"),
        ({"revision": None}, "revision", "required"),
        ({"max_tokens": None}, "max_tokens", "required"),
        ({"repo": "noslash"}, "repo", "owner/name"),
    ],
)
def test_mapping_problems_name_the_key(change, key, words):
    rs = {
        "kind": "hf",
        "repo": "org/x",
        "revision": "v1",
        "fields": {"prompt": "text"},
        "max_tokens": 8,
        **change,
    }
    problems = requestsource.hf_problems(rs, "chat")
    assert any(k == key and words in what for k, what in problems), problems
    with pytest.raises(HFSourceError, match=rf"{WHERE}\."):
        HFSource.from_mapping(rs, WHERE)


def _cli(*args, env=None):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env, cwd=REPO
    )


def test_prepare_requests_from_the_hub_cache_and_diffusion_prompts(hub, tmp_path):
    out = tmp_path / "chat.parquet"
    r = _cli("prepare", "requests", "-o", str(out), "--hf", "org/chats", "--revision", "v2",
             "--field", "messages=conversation_a", "--max-tokens", "16", "--num-requests", "10",
             "--cache-dir", str(hub), env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"org/chats@{V2}" in r.stdout
    specs = read_request_set(out)
    assert len(specs) == 10 and all(len(s.messages) == 3 for s in specs)  # up to the last user turn
    meta = request_set_metadata(out)
    assert meta["hf_repo"] == "org/chats" and meta["hf_revision"] == "v2" and meta["hf_commit"] == V2
    # Diffusion prompts from the same source and pinning (a completions set has a prompt column).
    prompts = tmp_path / "prompts.parquet"
    r = _cli("prepare", "requests", "-o", str(prompts), "--hf", "org/chats", "--revision", "v1",
             "--field", "prompt=text", "--endpoint", "completions", "--max-tokens", "1", "--num-requests", "6",
             "--cache-dir", str(hub), env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(load_prompt_set(prompts).prompts) == [f"v1a prompt {i}" for i in range(6)]
    r = _cli("prepare", "requests", "-o", str(tmp_path / "x.parquet"), "--hf", "org/chats", "--revision", "v9",
             "--field", "prompt=text", "--max-tokens", "8", "--cache-dir", str(hub), env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert r.returncode == 2 and "--hf.revision: 'v9' of dataset org/chats is not in" in r.stderr


def test_plan_time_errors_through_a_dry_run(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    sweep = {"name": "g", "models": ["meta-llama/Llama-3.1-8B-Instruct"], "tasks": ["gpqa"], "gpus": ["H100"],
             "batch_sizes": [64], "source": "measure"}  # fmt: skip
    with pytest.raises(Exception) as info:
        plan(workdir, {"sweeps": [sweep]})
    assert "tasks.gpqa.request_set.revision: required" in str(info.value)
    bad = {"endpoint": "completions", "request_set": {"revision": "v1", "fields": {"images": "image"}}}
    with pytest.raises(Exception) as info:
        plan(workdir, {"sweeps": [sweep], "tasks": {"gpqa": bad}})
    assert "tasks.gpqa.request_set.fields.images: images and video need endpoint chat" in str(info.value)
    assert not (workdir / "results" / "runs").exists()


def test_a_job_spec_with_an_hf_request_set_is_prepared_before_the_engine(hub, tmp_path, monkeypatch):
    from jouleflow import traces
    from jouleflow.measure.jobconfig import config_from_dict
    from jouleflow.measure.session_setup import prepare_requests

    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    hf = {"repo": "org/chats", "revision": "v1", "fields": {"prompt": "text"}, "fixed_output_len": 5}
    cfg = config_from_dict(
        {"model": "m", "batch_size": 2, "task": "t", "num_requests": 4, "hf_request_set": hf}
    )
    assert cfg.to_dict()["hf_request_set"] == hf
    assert (
        "hf_request_set"
        not in config_from_dict(
            {"model": "m", "batch_size": 2, "synthetic": {"fixed_output_len": 5}}
        ).to_dict()
    )
    writer = traces.RunDirWriter(tmp_path / "run")
    specs, info = prepare_requests(cfg, writer)
    assert len(specs) == 4 and all(s.max_tokens == 5 and s.ignore_eos for s in specs)
    assert info["hf"]["commit"] == V1 and info["path"] == "request_set.parquet"
    assert read_request_set(writer.path("request_set.parquet")) == specs
    cfg.hf_request_set = {**hf, "revision": "v7"}
    with pytest.raises(HFSourceError, match=r"tasks\.t\.request_set\.revision: 'v7'"):
        prepare_requests(cfg, writer)
