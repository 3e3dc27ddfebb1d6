"""A multimodal request set measured end to end (`jouleflow measure llm` against the test server in
vLLM's place, fake GPU): the media reach the server as content parts, requests.parquet records their
sizes, and summary.json shows the engine's CPU cores next to the media per request."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from jouleflow.analysis.energy import summarize_run
from jouleflow.cli import main as cli_main
from test_session import HAVE_POWER, measure, model_dir  # noqa: F401  (the fixture)


@pytest.mark.skipif(not HAVE_POWER, reason="needs the measure extra and the fake GPU")
def test_images_and_videos_measured_with_engine_cpu_in_the_summary(tmp_path, model_dir):  # noqa: F811
    rs = tmp_path / "mm.parquet"
    args = ["prepare", "requests", "-o", str(rs), "--num-requests", "40", "--output-len", "20",
            "--prompt-len", "fixed:5", "--images", "2", "--image-size", "64x48", "--videos", "1",
            "--video-size", "32x24", "--video-frames", "4"]  # fmt: skip
    assert cli_main(args) == 0
    out = tmp_path / "run"
    # 10 waves of 0.4 s: a steady window of seconds, so the engine CPU has several scrapes in it.
    r = measure(out, model_dir, "--request-set", str(rs), "--num-requests", "40", fake_gpu=True,
                env={"TEST_SERVER_TOKEN_DELAY_S": "0.02"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    requests = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(requests) == 40 and all(q["ok"] for q in requests)
    assert {(q["num_images"], q["num_videos"], q["video_frames"]) for q in requests} == {(2, 1, 4)}
    assert {q["media_pixels"] for q in requests} == {2 * 64 * 48 + 4 * 32 * 24}
    summary = summarize_run(out)
    assert summary.mean_images_per_request == 2 and summary.mean_video_frames_per_request == 4
    assert summary.engine_cpu_cores is not None and summary.engine_cpu_cores > 0
    doc = summary.to_dict()
    assert doc["engine_cpu_cores"] == summary.engine_cpu_cores
