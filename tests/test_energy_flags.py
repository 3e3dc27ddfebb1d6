"""Each validity flag is raised by a trace made to raise it, and absent from the clean reference run."""

from __future__ import annotations

import pytest
from handmade_runs import (
    SCHEDULE,
    chunks_for,
    constant_power,
    reference_run,
    requests_for,
    run_json,
    server_for,
)
from jouleflow.analysis.energy import analyze_run
from jouleflow.analysis.validity import BLOCKING, Thresholds


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return analyze_run(reference_run(tmp_path_factory.mktemp("clean") / "run"))


def with_flag(summary, flag):
    assert flag in summary["flags"], summary["flag_details"]
    assert flag in summary["flag_details"]
    assert summary["valid"] is (not any(f in BLOCKING for f in summary["flags"]))
    return summary


def test_clean_run_has_no_flag(clean):
    assert clean["flags"] == [] and clean["valid"] is True


def test_short_window(tmp_path, clean):
    s = analyze_run(reference_run(tmp_path / "run"), Thresholds(min_window_s=40.0))  # window is 32.5 s
    with_flag(s, "short-window")
    assert s["valid"] is False and s["energy_per_token_j"] == clean["energy_per_token_j"]


def test_low_batch(tmp_path):
    server = server_for(SCHEDULE)
    for row in server:  # the server reports a full batch only at 1011.0 and 1043.5, one request otherwise
        row["running"] = 2.0 if row["t"] in (1011.0, 1043.5) else 1.0
    s = with_flag(analyze_run(reference_run(tmp_path / "run", server=server)), "low-batch")
    # (2 x 0.5 s + 1 x 32 s) / 32.5 s
    assert s["mean_running"] == pytest.approx(33 / 32.5)
    assert s["batch_fraction"] == pytest.approx(33 / 32.5 / 2)
    assert s["valid"] is False


def test_failed_requests(tmp_path):
    tokens = chunks_for(SCHEDULE)
    requests = requests_for(SCHEDULE, tokens)
    requests[5].update(ok=False, error="HTTP 500")
    s = with_flag(analyze_run(reference_run(tmp_path / "run", requests=requests)), "failed-requests")
    assert "HTTP 500" in s["flag_details"]["failed-requests"]
    assert s["num_failed"] == 1 and s["num_ok"] == 5
    # mean output tokens over the successful requests only: (21 + 30 + 12 + 4 + 4) / 5
    assert s["mean_output_tokens"] == pytest.approx(71 / 5)
    tolerant = analyze_run(tmp_path / "run", Thresholds(max_failed_fraction=0.2))
    assert "failed-requests" not in tolerant["flags"]


def test_power_above_limit(tmp_path):
    s = with_flag(
        analyze_run(reference_run(tmp_path / "run", power=constant_power(800.0))), "power-out-of-bounds"
    )
    assert "800.0 W > 1.1 x limit 700 W" in s["flag_details"]["power-out-of-bounds"]
    assert s["mean_power_w"] == pytest.approx(1600.0)  # the number is kept


def test_power_within_margin_is_fine(tmp_path):
    s = analyze_run(reference_run(tmp_path / "run", power=constant_power(760.0)))  # 760 <= 770
    assert "power-out-of-bounds" not in s["flags"]


def test_zero_power(tmp_path):
    with_flag(analyze_run(reference_run(tmp_path / "run", power=constant_power(0.0))), "power-out-of-bounds")


def test_power_limit_unknown(tmp_path):
    meta = run_json()
    for gpu in meta["provenance"]["gpus"]:
        gpu.pop("power_limit_w"), gpu.pop("default_power_limit_w")
    s = with_flag(analyze_run(reference_run(tmp_path / "run", meta=meta)), "power-limit-unknown")
    assert s["valid"] is True  # informational


def test_counter_reset_in_window(tmp_path):
    power = constant_power()
    for row in power:  # the counter restarts near 0 at 1020.3 on both GPUs
        if row["t"] >= 1020.3:
            row["energy_j"] -= 10000.0
    s = with_flag(analyze_run(reference_run(tmp_path / "run", power=power)), "energy-counter-reset")
    # the 1019.3 -> 1020.3 segment (500 J per GPU) is dropped: a lower bound, flagged
    assert s["steady_energy_j"] == pytest.approx(32500 - 2 * 500)
    assert s["valid"] is False


def test_counter_reset_outside_window_is_informational(tmp_path):
    power = constant_power()
    for row in power:
        if row["t"] >= 1005.3:
            row["energy_j"] -= 5000.0
    s = with_flag(
        analyze_run(reference_run(tmp_path / "run", power=power)), "energy-counter-reset-outside-window"
    )
    assert s["steady_energy_j"] == pytest.approx(32500.0) and s["valid"] is True


def test_power_trace_gap(tmp_path):
    # samples stop at 1039.3, before the window ends at 1043.5: no energy, never extrapolated
    s = with_flag(analyze_run(reference_run(tmp_path / "run", power=constant_power(n=40))), "power-trace-gap")
    assert s["steady_energy_j"] is None and s["energy_per_token_j"] is None
    assert s["valid"] is False


def test_foreign_processes(tmp_path):
    meta = run_json(foreign_processes=[{"pid": 4242, "gpu": 0, "used_memory": 1 << 30}])
    s = with_flag(analyze_run(reference_run(tmp_path / "run", meta=meta)), "foreign-processes")
    assert "4242" in s["flag_details"]["foreign-processes"] and s["valid"] is False


def test_foreign_processes_per_phase_dict(tmp_path):
    meta = run_json(foreign_processes={"before": [], "after": [{"pid": 7, "gpu": 1, "used_memory": 1}]})
    with_flag(analyze_run(reference_run(tmp_path / "run", meta=meta)), "foreign-processes")


def test_no_foreign_processes_recorded_as_empty(tmp_path):
    s = analyze_run(reference_run(tmp_path / "run", meta=run_json(foreign_processes=[])))
    assert "foreign-processes" not in s["flags"]


def test_status_not_ok(tmp_path):
    with_flag(analyze_run(reference_run(tmp_path / "run", meta=run_json(status="failed"))), "status-not-ok")


def test_window_disagreement(tmp_path):
    server = server_for(SCHEDULE)
    for row in server:  # the server says the batch was full only from 1030
        if row["t"] < 1030.0:
            row["running"] = min(row["running"], 1.0)
    s = with_flag(analyze_run(reference_run(tmp_path / "run", server=server)), "window-disagreement")
    # server [1030, 1043.5] vs client [1011, 1041]: 11 s / 32.5 s
    assert s["window_overlap"] == pytest.approx(11 / 32.5)


def test_window_disagreement_threshold(tmp_path):
    run = reference_run(tmp_path / "run")  # overlap 30 / 32.5 = 0.923
    with_flag(analyze_run(run, Thresholds(min_window_overlap=0.95)), "window-disagreement")
    assert "window-disagreement" not in analyze_run(run, Thresholds(min_window_overlap=0.9))["flags"]


def test_no_steady_state_when_n_is_at_most_b_plus_1(tmp_path):
    s = with_flag(analyze_run(reference_run(tmp_path / "run", meta=run_json(batch=5))), "no-steady-state")
    assert s["steady_start"] is None and s["energy_per_token_j"] is None
    assert s["median_ttft_s"] == pytest.approx(35.0)  # latency does not need a window


def test_no_tokens_in_window(tmp_path):
    tokens = [{**row, "n_tokens": 0} for row in chunks_for(SCHEDULE)]
    requests = requests_for(SCHEDULE, chunks_for(SCHEDULE))
    s = with_flag(analyze_run(reference_run(tmp_path / "run", tokens=tokens, requests=requests)), "no-tokens")
    assert s["steady_tokens"] == 0 and s["energy_per_token_j"] is None


def test_energy_power_mismatch_is_informational(tmp_path):
    power = [{**row, "power_w": 250.0} for row in constant_power()]  # counter says 500 W
    s = with_flag(analyze_run(reference_run(tmp_path / "run", power=power)), "energy-power-mismatch")
    assert s["energy_power_mismatch"] == pytest.approx(1.0)
    assert s["valid"] is True


def test_server_window_missing_is_informational(tmp_path):
    s = with_flag(analyze_run(reference_run(tmp_path / "run", server=None)), "server-window-missing")
    assert s["valid"] is True


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="min_window_s"):
        Thresholds(min_window_s=-1)
    with pytest.raises(ValueError, match="full_batch_tolerance"):
        Thresholds(full_batch_tolerance=1.0)


def test_gpu_without_power_samples_gives_no_energy(tmp_path):
    power = [row for row in constant_power() if row["gpu"] == 0]  # run.json lists GPUs 0 and 1
    s = with_flag(analyze_run(reference_run(tmp_path / "run", power=power)), "power-trace-gap")
    assert s["steady_energy_j"] is None and "[1]" in s["flag_details"]["power-trace-gap"]
