"""Prompt sets: formats, batches, cycling, and errors naming the file."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jouleflow.measure.diffusion_prompts import BUNDLED, PromptSetError, load_prompt_set


def test_text_file_one_prompt_per_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a cat\n\n  a dog  \na fish\n")
    ps = load_prompt_set(path)
    assert ps.prompts == ["a cat", "a dog", "a fish"]
    assert ps.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ps.source == str(path)


def test_jsonl_json_and_parquet(tmp_path):
    (tmp_path / "p.jsonl").write_text('"one"\n{"prompt": "two", "id": 7}\n\n')
    (tmp_path / "p.json").write_text(json.dumps(["one", {"prompt": "two"}]))
    pq.write_table(pa.table({"prompt": ["one", "two"], "x": [1, 2]}), tmp_path / "p.parquet")
    for name in ("p.jsonl", "p.json", "p.parquet"):
        assert load_prompt_set(tmp_path / name).prompts == ["one", "two"], name


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.jsonl", '"ok"\n{"text": "x"}\n', r"p\.jsonl:2: expected a non-empty string"),
        ("p.jsonl", '"ok"\n{oops\n', r"p\.jsonl:2: not JSON"),
        ("p.json", '{"prompt": "x"}', r"p\.json: expected a JSON list"),
        ("p.json", '["a", 3]', r"p\.json\[1\]: expected"),
        ("p.txt", "\n\n", r"p\.txt: no prompts"),
        ("p.csv", "a,b", r"p\.csv: unknown prompt file type '.csv'"),
    ],
)
def test_bad_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(PromptSetError, match=message):
        load_prompt_set(tmp_path / name)


def test_missing_file_and_parquet_without_prompt_column(tmp_path):
    with pytest.raises(PromptSetError, match=r"nope\.txt: prompt file not found"):
        load_prompt_set(tmp_path / "nope.txt")
    pq.write_table(pa.table({"caption": ["a"]}), tmp_path / "c.parquet")
    with pytest.raises(PromptSetError, match=r"c\.parquet: no 'prompt' column \(columns: caption\)"):
        load_prompt_set(tmp_path / "c.parquet")


def test_batches_in_file_order(tmp_path):
    (tmp_path / "p.txt").write_text("\n".join(f"p{i}" for i in range(7)))
    ps = load_prompt_set(tmp_path / "p.txt")
    assert ps.batches(3, 2, cycle=False) == [["p0", "p1", "p2"], ["p3", "p4", "p5"]]
    assert ps.record(3, 2) == {
        "path": ps.source,
        "sha256": ps.sha256,
        "num_available": 7,
        "num_used": 6,
        "cycled": False,
    }


def test_too_few_prompts_is_an_error_unless_cycling(tmp_path):
    (tmp_path / "p.txt").write_text("a\nb\nc\n")
    ps = load_prompt_set(tmp_path / "p.txt")
    with pytest.raises(
        PromptSetError, match=r"p\.txt: has 3 prompts, the run needs 4 \(batch_size 2 x num_batches 2\)"
    ):
        ps.batches(2, 2, cycle=False)
    assert ps.batches(2, 2, cycle=True) == [["a", "b"], ["c", "a"]]
    assert ps.record(2, 2)["cycled"] is True


def test_bundled_set():
    ps = load_prompt_set(None)
    assert ps.source == BUNDLED
    assert len(ps.prompts) == 100 and len(set(ps.prompts)) == 100
