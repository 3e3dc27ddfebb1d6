"""One atomic writer (traces.write_atomic) and one file-mode rule for every file jouleflow writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import polars as pl
import pytest
from jouleflow import traces
from jouleflow.analysis.compare import output
from jouleflow.analysis.recommendations import write_recommendations_csv
from jouleflow.analysis.summary import write_summary
from jouleflow.plan.gridtable import write_tsv


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_writer_gives_the_mode_a_plain_open_would(tmp_path, umask_022):
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", None]})
    traces.write_text("hello\n", tmp_path / "t.txt")
    traces.write_json({"b": 1, "a": 2}, tmp_path / "j.json")
    traces.write_table(frame.to_arrow(), tmp_path / "t.parquet")
    traces.write_csv([{"a": 1}], ("a", "b"), tmp_path / "c.csv")
    write_tsv([{"a": 1, "b": None}], ("a", "b"), tmp_path / "grid" / "jobs.tsv")
    write_recommendations_csv(frame, tmp_path / "recs.csv")
    write_summary(frame, tmp_path / "s.parquet", tmp_path / "s.csv")
    output.write_text(tmp_path / "m.md", "# m\n")
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert sorted(p.name for p in files) == sorted(
        ["t.txt", "j.json", "t.parquet", "c.csv", "jobs.tsv", "recs.csv", "s.parquet", "s.csv", "m.md"]
    )
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}
    assert (tmp_path / "j.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert (tmp_path / "grid" / "jobs.tsv").read_text() == "a\tb\n1\t\n"
    assert (tmp_path / "c.csv").read_text() == "a,b\n1,\n"


def test_a_failed_write_leaves_neither_a_file_nor_a_temp_file(tmp_path):
    def fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        traces.write_atomic(tmp_path / "out.csv", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = traces.write_atomic(tmp_path / "out.txt", lambda tmp: Path(tmp).write_text("old"))
    with pytest.raises(RuntimeError):
        traces.write_atomic(path, lambda tmp: (_ for _ in ()).throw(RuntimeError("killed")))
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_dict_of_columns_fills_missing_fields_after_the_last_given_one():
    import pyarrow as pa
    from jouleflow import traces

    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())])
    table = traces.table_from_rows({"a": [1, 2, 3]}, schema)  # b and c come after the only given column
    assert table.num_rows == 3 and table.column("c").to_pylist() == [None, None, None]
    assert table.column("b").null_count == 3 and table.column("a").to_pylist() == [1, 2, 3]
