"""The worker's events file -> batches.parquet rows, phase windows and the run's status."""

from __future__ import annotations

import json

import pytest
from jouleflow import traces
from jouleflow.measure.engines.xdit_protocol import (
    WorkerProtocolError,
    WorkerReport,
    batch_rows,
    decide_status,
    phase_windows,
    read_events,
)

OOM_LOG = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB.\n"


def write(path, *records, tail: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def batch(phase, i, t0, t1, b=4, ok=True, error=None):
    return {"event": "batch", "t": t1, "phase": phase, "batch_index": i, "batch_size": b,
            "t_start": t0, "t_end": t1, "ok": ok, "error": error, "peak_memory_gib": 10.0}  # fmt: skip


FULL_RUN = [
    {"event": "start", "t": 100.0, "world_size": 2},
    {"event": "loaded", "t": 130.0, "load_s": 30.0},
    {
        "event": "batch_start",
        "t": 131.0,
        "phase": "warmup",
        "batch_index": 0,
        "batch_size": 4,
        "t_start": 131.0,
    },
    batch("warmup", 0, 131.0, 135.0),
    {
        "event": "batch_start",
        "t": 135.5,
        "phase": "timed",
        "batch_index": 0,
        "batch_size": 4,
        "t_start": 135.5,
    },
    batch("timed", 0, 135.5, 138.5),
    {
        "event": "batch_start",
        "t": 139.0,
        "phase": "timed",
        "batch_index": 1,
        "batch_size": 4,
        "t_start": 139.0,
    },
    batch("timed", 1, 139.0, 142.25),
    {"event": "done", "t": 142.5},
]


def test_a_complete_run(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN))
    assert report.done and report.loaded["load_s"] == 30.0
    assert [b["batch_index"] for b in report.warmup] == [0]
    assert report.timed_ok == 2 and report.in_progress is None and not report.oom
    assert batch_rows(report) == [
        {"batch_index": 0, "t_start": 135.5, "t_end": 138.5, "batch_size": 4, "ok": True, "error": None,
         "peak_memory_gib": 10.0},
        {"batch_index": 1, "t_start": 139.0, "t_end": 142.25, "batch_size": 4, "ok": True, "error": None,
         "peak_memory_gib": 10.0},
    ]  # fmt: skip
    assert phase_windows(report) == {
        "load": [100.0, 130.0],
        "warmup": [131.0, 135.0],
        "batches": [135.5, 142.25],
    }
    assert decide_status(report, 0, "", num_batches=2).status == "ok"


def test_rows_fit_the_batches_schema(tmp_path):
    rows = batch_rows(read_events(write(tmp_path / "ev.jsonl", *FULL_RUN)))
    table = traces.table_from_rows(rows, traces.BATCHES)
    assert table.column_names[:6] == traces.BATCHES.names
    assert table.column("t_end").to_pylist() == [138.5, 142.25]


def test_missing_file_is_an_empty_report(tmp_path):
    report = read_events(tmp_path / "nothing.jsonl")
    assert report == WorkerReport()
    outcome = decide_status(report, 1, "Traceback...\nImportError: No module named 'xfuser'\n", 2)
    assert outcome.status == "failed"
    assert (
        outcome.reason
        == "xdit worker exited with code 1 while loading the pipeline (0 of 2 timed batches done)"
    )


def test_a_last_line_cut_short_by_a_kill_is_ignored(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:6], tail='{"event": "batch_st'))
    assert report.timed_ok == 1


def test_a_malformed_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "ev.jsonl"
    path.write_text(json.dumps(FULL_RUN[0]) + "\nnot json\n" + json.dumps(FULL_RUN[1]) + "\n")
    with pytest.raises(WorkerProtocolError, match=r"ev\.jsonl:2: not a JSON object"):
        read_events(path)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"event": "launched", "t": 1}, r":1: unknown event 'launched'"),
        ([1, 2], r":1: expected an object with an 'event' key"),
        ({"event": "batch", "t": 1, "phase": "cooldown"}, r":1: batch phase must be one of"),
        ({"event": "batch", "t": 1, "phase": "timed", "batch_index": 0, "batch_size": 2}, r":1: .*'t_start'"),
    ],
)
def test_bad_records_are_named(tmp_path, record, message):
    with pytest.raises(WorkerProtocolError, match=message):
        read_events(write(tmp_path / "ev.jsonl", record))


def test_worker_crash_mid_batch_keeps_the_done_batches_and_marks_the_cut_one(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:7]))  # batch 1 started, never ended
    outcome = decide_status(report, -9, "Killed\n", num_batches=2)
    assert outcome.status == "failed"
    assert (
        outcome.reason == "xdit worker exited with code -9 during timed batch 1 (1 of 2 timed batches done)"
    )
    rows = batch_rows(report, interrupted_reason=outcome.reason)
    assert [(r["batch_index"], r["ok"], r["t_start"], r["t_end"]) for r in rows] == [
        (0, True, 135.5, 138.5),
        (1, False, 139.0, None),
    ]
    assert rows[1]["error"] == outcome.reason


def test_oom_event_in_a_timed_batch_is_infeasible(tmp_path):
    error = {"event": "error", "t": 140.0, "phase": "timed", "batch_index": 1, "oom": True,
             "error": "Traceback...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB"}  # fmt: skip
    failed = batch("timed", 1, 139.0, 140.0, ok=False, error="CUDA out of memory")
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:7], failed, error))
    outcome = decide_status(report, 1, "", num_batches=2)
    assert outcome.status == "infeasible"
    assert outcome.reason == (
        "out of GPU memory during timed batch 1: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB"
    )
    assert [r["ok"] for r in batch_rows(report)] == [True, False]


def test_oom_seen_only_in_the_log_is_infeasible(tmp_path):
    # Another rank ran out of memory while loading; rank 0 wrote nothing about it.
    report = read_events(write(tmp_path / "ev.jsonl", FULL_RUN[0]))
    outcome = decide_status(report, 1, "loading...\n[rank1]: " + OOM_LOG + "torchrun: worker failed\n", 2)
    assert outcome.status == "infeasible"
    assert outcome.reason.startswith(
        "out of GPU memory while loading the pipeline: [rank1]: torch.OutOfMemoryError"
    )


def test_memory_words_in_the_log_of_a_finished_run_do_not_matter(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN))
    assert decide_status(report, 0, "warning: retrying after out of memory\n", 2).status == "ok"


def test_clean_exit_without_all_batches_is_failed(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:6]))
    outcome = decide_status(report, 0, "", num_batches=2)
    assert (outcome.status, outcome.reason) == (
        "failed",
        "xdit worker exited without finishing (1 of 2 timed batches done)",
    )


def test_fewer_batches_than_configured_is_failed_even_with_done(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN))
    assert decide_status(report, 0, "", num_batches=3).status == "failed"


def test_timeout_is_failed_and_says_how_far_it_got(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:6]))
    outcome = decide_status(report, -15, "", num_batches=2, timed_out_after_s=600)
    assert outcome == type(outcome)("failed", "xdit worker timed out after 600 s (1 of 2 timed batches done)")


def test_crash_between_batches_says_after_which(tmp_path):
    report = read_events(write(tmp_path / "ev.jsonl", *FULL_RUN[:6]))
    outcome = decide_status(report, 3, "imitation: crashing\n", num_batches=2)
    assert outcome.reason == "xdit worker exited with code 3 after timed batch 0 (1 of 2 timed batches done)"
    report = read_events(write(tmp_path / "ev2.jsonl", *FULL_RUN[:2]))
    assert "after loading the pipeline" in decide_status(report, 3, "", num_batches=2).reason
