"""Synthetic request sets: histogram sampling, reproducibility, Parquet round trip and bad input."""

from __future__ import annotations

import bisect
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jouleflow.measure import synthetic
from jouleflow.measure.requestset import (
    RequestSetError,
    RequestSpec,
    read_request_set,
    sha256_file,
    write_request_set,
)

HIST_FILE = (
    Path(__file__).resolve().parents[1]
    / "resources"
    / "mlenergy-v3"
    / "models"
    / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
)


def _raw_config(gpu: str, n: int, b: int) -> dict:
    data = json.loads(HIST_FILE.read_text())
    [conf] = [
        c for c in data["configurations"] if (c["gpu_model"], c["num_gpus"], c["max_num_seqs"]) == (gpu, n, b)
    ]
    return conf["output_length_distribution"]


def test_histogram_sampling_matches_the_published_distribution():
    raw = _raw_config("H100", 1, 64)
    hist = synthetic.load_histogram(HIST_FILE, "H100", 1, 64)
    assert hist.edges == raw["bins"] and hist.counts == raw["counts"]
    rng = random.Random(12345)
    n = 20000
    samples = [hist.sample(rng) for _ in range(n)]
    edges, counts = raw["bins"], raw["counts"]
    observed = [0] * len(counts)
    for x in samples:
        assert edges[0] <= x <= edges[-1]
        observed[min(bisect.bisect_right(edges, x) - 1, len(counts) - 1)] += 1
    total = sum(counts)
    chi2, df = 0.0, -1
    for o, c in zip(observed, counts, strict=True):
        e = n * c / total
        if c == 0:
            assert o == 0  # never a length from an empty bin
        elif e >= 5:
            chi2 += (o - e) ** 2 / e
            df += 1
    # chi-square critical value at p = 0.001 for <= 49 degrees of freedom is < 86
    assert df >= 10 and chi2 < 86, (chi2, df)
    # within-bin uniformity: the sample mean matches the histogram's midpoint mean
    mid_mean = sum((a + b) / 2 * c for a, b, c in zip(edges, edges[1:], counts, strict=False)) / total
    assert abs(sum(samples) / n - mid_mean) / mid_mean < 0.03


def test_missing_configuration_lists_what_exists_without_fallback():
    with pytest.raises(
        synthetic.HistogramError, match=r"no configuration matches gpu_model=A100.*\('H100', 1, 64\)"
    ):
        synthetic.load_histogram(HIST_FILE, "A100", 1, 64, fallback=False)


def _published(gpu, num_gpus, max_num_seqs):
    data = json.loads(Path(HIST_FILE).read_text())
    if gpu is None:
        return data["output_length_distribution"]
    (hit,) = [
        c
        for c in data["configurations"]
        if (c["gpu_model"], c["num_gpus"], c["max_num_seqs"]) == (gpu, num_gpus, max_num_seqs)
    ]
    return hit["output_length_distribution"]


@pytest.mark.parametrize(
    "wanted, used, says",
    [
        # An unpublished GPU: the same batch size on H100 (the preferred stand-in), not B200's.
        (("H200", 1, 64), ("H100", 1, 64), "used H100's (same num_gpus and max_num_seqs)"),
        # B200 published 1024 but H100 did not: the same configuration on B200.
        (("H200", 1, 1024), ("B200", 1, 1024), "used B200's"),
        # An unpublished batch size: the nearest published one, the smaller on a tie, the own GPU first.
        (("H100", 1, 48), ("H100", 1, 32), "nearest published max_num_seqs=32"),
        (("B200", 1, 100), ("H100", 1, 96), "used H100's at the nearest published max_num_seqs=96"),
        # No configuration with that GPU count: the pooled model x task distribution.
        (("H100", 4, 64), (None, None, None), "pooled"),
    ],
)
def test_fallback_rule_picks_a_published_configuration(wanted, used, says):
    hist = synthetic.load_histogram(HIST_FILE, *wanted)
    dist = _published(*used)
    assert (hist.edges, hist.counts) == (list(dist["bins"]), list(dist["counts"]))
    assert says in hist.fallback and "no published configuration for gpu_model=" in hist.fallback


def test_exact_configuration_is_no_fallback():
    hist = synthetic.load_histogram(HIST_FILE, "H100", 1, 64)
    assert hist.fallback is None and hist.counts == list(_published("H100", 1, 64)["counts"])


def test_bare_histogram_and_bad_files(tmp_path):
    f = tmp_path / "h.json"
    f.write_text(json.dumps({"bins": [1, 11, 21], "counts": [0, 5]}))
    h = synthetic.load_histogram(f, None, None, None)
    rng = random.Random(0)
    assert all(11 <= h.sample(rng) <= 21 for _ in range(200))
    f.write_text(json.dumps({"bins": [1, 2], "counts": [1, 2]}))
    with pytest.raises(synthetic.HistogramError, match="h.json"):
        synthetic.load_histogram(f, None, None, None)
    f.write_text("{not json")
    with pytest.raises(synthetic.HistogramError, match="cannot read"):
        synthetic.load_histogram(f, None, None, None)


def test_generation_is_seeded_and_reproducible(tmp_path):
    hist = synthetic.load_histogram(HIST_FILE, "H100", 1, 128)
    a = synthetic.generate(64, histogram=hist, prompt_len="uniform:10,30", seed=7)
    b = synthetic.generate(64, histogram=hist, prompt_len="uniform:10,30", seed=7)
    c = synthetic.generate(64, histogram=hist, prompt_len="uniform:10,30", seed=8)
    assert a == b and a != c
    write_request_set(a, tmp_path / "a.parquet")
    write_request_set(b, tmp_path / "b.parquet")
    assert sha256_file(tmp_path / "a.parquet") == sha256_file(tmp_path / "b.parquet")
    for s in a:
        assert s.ignore_eos and s.max_tokens >= 1 and s.prompt is None
        words = s.messages[0]["content"].split()
        assert 10 <= len(words) <= 30 and set(words) <= set(synthetic.PROMPT_WORDS)


def test_round_trip_chat_and_completions(tmp_path):
    specs = synthetic.generate(5, fixed_output_len=12, prompt_len="fixed:4", endpoint="completions")
    specs.append(
        RequestSpec(
            5,
            None,
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "more"},
            ],
            None,
            3,
            False,
        )
    )
    path = write_request_set(specs, tmp_path / "rs.parquet", {"generator": "test"})
    back = read_request_set(path)
    assert back == specs
    assert back[0].to_load_request("chat").messages == [{"role": "user", "content": specs[0].prompt}]
    assert back[5].to_load_request("completions").prompt == "more"


def test_input_tokens_exact_with_a_tokenizer(tmp_path):
    from jouleflow.measure.dummy_model import make_dummy_model

    d = make_dummy_model(HIST_FILE.parents[2] / "models" / "Qwen--Qwen3-8B", tmp_path / "q")
    specs = synthetic.generate(
        3, fixed_output_len=2, prompt_len="fixed:17", tokenizer_json=d / "tokenizer.json"
    )
    assert [s.input_tokens for s in specs] == [17, 17, 17]  # one token per prompt word


def _write(path: Path, rows: list[dict]) -> Path:
    from jouleflow import traces

    traces.write_table(traces.table_from_rows(rows, traces.REQUEST_SET), path)
    return path


def test_malformed_request_sets_name_the_file(tmp_path):
    with pytest.raises(RequestSetError, match="missing.parquet"):
        read_request_set(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(RequestSetError, match="junk.parquet: not a readable Parquet"):
        read_request_set(tmp_path / "junk.parquet")
    pq.write_table(pa.table({"request_id": [1]}), tmp_path / "cols.parquet")
    with pytest.raises(RequestSetError, match="cols.parquet: missing column"):
        read_request_set(tmp_path / "cols.parquet")
    _write(tmp_path / "empty.parquet", [])
    with pytest.raises(RequestSetError, match="empty.parquet: request set is empty"):
        read_request_set(tmp_path / "empty.parquet")
    base = {
        "request_id": 0,
        "prompt": "p",
        "messages_json": None,
        "input_tokens": None,
        "max_tokens": 4,
        "ignore_eos": True,
    }
    cases = {
        "both.parquet": ({**base, "messages_json": "[]"}, "exactly one of prompt and messages_json"),
        "badjson.parquet": ({**base, "prompt": None, "messages_json": "[{"}, "messages_json is not JSON"),
        "shape.parquet": ({**base, "prompt": None, "messages_json": '[{"x": 1}]'}, "list of {role, content}"),
        "maxtok.parquet": ({**base, "max_tokens": 0}, "max_tokens must be > 0"),
    }
    for name, (row, msg) in cases.items():
        with pytest.raises(RequestSetError, match=f"{name}: row 0 \\(request_id 0\\): .*{msg}"):
            read_request_set(_write(tmp_path / name, [row]))
    with pytest.raises(RequestSetError, match="dup.parquet: row 1 .*duplicate request_id"):
        read_request_set(_write(tmp_path / "dup.parquet", [base, base]))


def test_prompt_length_specs():
    assert synthetic.parse_length_distribution("normal:200,50") == ("normal", [200.0, 50.0])
    for bad in ("fixed", "uniform:1", "zipf:1", "fixed:x", "fixed:0"):
        with pytest.raises(ValueError, match="prompt length distribution"):
            synthetic.parse_length_distribution(bad)
