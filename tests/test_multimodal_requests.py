"""Multimodal request sets: prepare (synthetic media, hf image/video columns) -> Parquet -> the load
client's chat bodies at the test server -> requests.parquet's media sizes."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jouleflow import traces
from jouleflow.cli import main as cli_main
from jouleflow.measure import hfrequests, media
from jouleflow.measure.hfsource import HFSource, HFSourceError
from jouleflow.measure.load_rows import request_rows
from jouleflow.measure.requestset import RequestSetError, read_request_set, request_set_metadata, sha256_file
from PIL import Image
from sse_test_server import ServerState
from test_hf_requests import REPO, V1, snapshot
from test_load import run

HIST = REPO / "resources" / "mlenergy-v3" / "models" / "Qwen__Qwen3-VL-8B-Instruct__image-chat.json"


def _prepare(out, *extra):
    return cli_main(["prepare", "requests", "-o", str(out), "--force", *extra])


def _decode(url: str) -> list[Image.Image]:
    head, _, data = url.partition(",")
    if head == "data:video/jpeg;base64":
        return [Image.open(io.BytesIO(base64.b64decode(f))) for f in data.split(",")]
    return [Image.open(io.BytesIO(base64.b64decode(data)))]


def _parts(spec, kind):
    return [p[f"{kind}_url"]["url"] for p in spec.messages[-1]["content"] if p["type"] == f"{kind}_url"]


def test_synthetic_images_and_videos_through_the_load_client(tmp_path):
    out = tmp_path / "mm.parquet"
    args = ["--num-requests", "6", "--output-lengths", str(HIST), "--gpu", "B200", "--num-gpus", "1",
            "--max-num-seqs", "8", "--images", "2", "--image-size", "96x64", "--videos", "1",
            "--video-size", "48x32", "--video-frames", "5", "--seed", "3"]  # fmt: skip
    assert _prepare(out, *args) == 0
    again = tmp_path / "again.parquet"
    assert _prepare(again, *args) == 0
    assert sha256_file(out) == sha256_file(again)  # seeded, byte for byte
    assert json.loads(request_set_metadata(out)["media"])["images"] == 2
    specs = read_request_set(out)
    first_images = set()
    for spec in specs:
        images, videos = _parts(spec, "image"), _parts(spec, "video")
        assert len(images) == 2 and len(videos) == 1
        assert spec.messages[-1]["content"][-1]["type"] == "text"  # media first, then the text
        assert [im.size for url in images for im in _decode(url)] == [(96, 64), (96, 64)]
        frames = _decode(videos[0])
        assert len(frames) == 5 and {f.size for f in frames} == {(48, 32)} and frames[0].format == "JPEG"
        first_images.add(images[0])
        assert [m["type"] for m in spec.media] == ["image", "image", "video"]
        assert spec.media[0] == {
            "type": "image", "mime": "image/jpeg", "bytes": len(base64.b64decode(images[0].split(",")[1])),
            "width": 96, "height": 64, "frames": None,
        }  # fmt: skip
        assert spec.media[2]["frames"] == 5 and spec.ignore_eos and 1 <= spec.max_tokens <= 16384
    assert len(first_images) == len(specs)  # a different image per request: no media-cache hits

    state = ServerState()
    loaded, _ = run(state, [s.to_load_request("chat") for s in specs])
    assert all(r.ok for r in loaded.results)
    assert (state.image_parts, state.video_parts) == (12, 6)
    path = tmp_path / "requests.parquet"
    traces.write_table(traces.table_from_rows(request_rows(loaded.results), traces.REQUESTS), path)
    table = traces.read_table(path)
    assert table.column("num_images").to_pylist() == [2] * 6
    assert table.column("num_videos").to_pylist() == [1] * 6
    assert table.column("video_frames").to_pylist() == [5] * 6
    assert table.column("media_pixels").to_pylist() == [2 * 96 * 64 + 5 * 48 * 32] * 6
    assert table.column("media_bytes").to_pylist() == [sum(m["bytes"] for m in s.media) for s in specs]


def test_text_runs_and_version_3_traces_read_with_null_media(tmp_path):
    out = tmp_path / "text.parquet"
    assert _prepare(out, "--num-requests", "3", "--output-len", "4") == 0
    specs = read_request_set(out)
    assert all(s.media is None and isinstance(s.messages[0]["content"], str) for s in specs)
    state = ServerState()
    loaded, _ = run(state, [s.to_load_request("chat") for s in specs])
    assert state.image_parts == 0
    table = traces.table_from_rows(request_rows(loaded.results), traces.REQUESTS)
    # A version-3 file: the same rows without the media columns, as the old writer left them.
    old = table.drop_columns(["media_json"] if "media_json" in table.column_names else [])
    old = old.drop_columns([f.name for f in traces.MEDIA_TOTALS])
    old = old.replace_schema_metadata({b"jouleflow_schema_version": b"3"})
    pq.write_table(old, tmp_path / "requests.parquet")
    back = traces.read_table(tmp_path / "requests.parquet")
    assert back.column("num_images").null_count == 3 and back.num_rows == 3
    rs = pq.read_table(out)
    pq.write_table(
        rs.drop_columns(["media_json"]).replace_schema_metadata({b"jouleflow_schema_version": b"3"}),
        tmp_path / "old-set.parquet",
    )
    assert [s.media for s in read_request_set(tmp_path / "old-set.parquet")] == [None] * 3


def test_media_need_the_chat_endpoint_and_a_size(tmp_path, capsys):
    assert _prepare(tmp_path / "x.parquet", "--output-len", "4", "--images", "1", "--endpoint", "completions")
    assert "--images/--videos need the chat endpoint, not completions" in capsys.readouterr().err
    assert _prepare(tmp_path / "x.parquet", "--output-len", "4", "--images", "1", "--image-size", "1024")
    assert "--image-size: '1024' is not WIDTHxHEIGHT" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
    out = tmp_path / "mm.parquet"
    _prepare(out, "--num-requests", "2", "--output-len", "4", "--images", "1", "--image-size", "8x8")
    with pytest.raises(RequestSetError, match="request 0: has images/video; the completions endpoint"):
        read_request_set(out)[0].to_load_request("completions")


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def vqa_hub(tmp_path, monkeypatch):
    """A VQA-like dataset in Hub layout: images as `datasets` writes them ({bytes, path}), as repo
    paths, and a frame-list video column."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    root = snapshot(cache, "org/vqa", V1, "v1")
    (root / "data").mkdir()
    (root / "images").mkdir()
    rows = []
    for i in range(4):
        (root / "images" / f"{i}.png").write_bytes(_png(40 + i, 30))
        rows.append({
            "question": f"what is in picture {i}",
            "image": {"bytes": _png(20 + i, 10), "path": f"{i}.png"},
            "image_path": f"images/{i}.png",
            "frames": [{"bytes": _png(16, 12), "path": None}] * 3,
        })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "train-00000-of-00001.parquet")
    return cache


def _load(cache, fields, n=4):
    rs = {"kind": "hf", "repo": "org/vqa", "revision": "v1", "fields": fields, "fixed_output_len": 7}
    source = HFSource.from_mapping(rs, "tasks.t.request_set", "chat")
    return hfrequests.from_hub(
        source, endpoint="chat", num_requests=n, where="tasks.t.request_set", cache_dir=cache
    )


def test_hf_image_structs_paths_and_frame_lists_become_data_urls(vqa_hub):
    specs, prov = _load(
        vqa_hub, {"prompt": "question", "images": "image", "video": "frames", "system": "be brief"}
    )
    assert prov["num_unique"] == 4
    for spec in specs:
        assert spec.messages[0] == {"role": "system", "content": "be brief"}
        (image,), (video,) = _parts(spec, "image"), _parts(spec, "video")
        i = int(spec.messages[-1]["content"][-1]["text"].rsplit(" ", 1)[1])
        assert _decode(image)[0].size == (20 + i, 10) and image.startswith("data:image/png;base64,")
        assert [f.size for f in _decode(video)] == [(16, 12)] * 3
        assert spec.media[1] == {**spec.media[1], "type": "video", "frames": 3, "width": 16, "height": 12}
    specs, _ = _load(vqa_hub, {"prompt": "question", "images": "image_path"})
    assert sorted(s.media[0]["width"] for s in specs) == [40, 41, 42, 43]


def test_an_undecodable_or_missing_media_file_names_the_key_and_file(vqa_hub):
    root = vqa_hub / "datasets--org--vqa" / "snapshots" / V1
    (root / "images" / "2.png").write_bytes(b"not an image")
    with pytest.raises(
        HFSourceError,
        match=r"tasks.t.request_set.fields.images \(row 2, column 'image_path'\): not a decodable image",
    ):
        _load(vqa_hub, {"prompt": "question", "images": "image_path"})
    (root / "images" / "2.png").unlink()
    with pytest.raises(HFSourceError, match=r"fields.images \(row 2.*media file images/2.png not found"):
        _load(vqa_hub, {"prompt": "question", "images": "image_path"})
    with pytest.raises(media.MediaError, match="clip.bin: not a video container"):
        media.video_from_value(b"garbage bytes", "clip.bin")


def test_config_media_and_engine_knobs_reach_the_job_spec_and_the_request_set(tmp_path):
    from jouleflow.measure.jobconfig import config_from_dict
    from jouleflow.measure.session_setup import prepare_requests
    from test_grid import BASE, grid_of

    mm = {"limit_mm_per_prompt": {"image": 2, "video": 0}, "max_pixels": 1003520,
          "mm_processor_kwargs": {"min_pixels": 3136}, "mm_processor_cache_gb": 0}  # fmt: skip
    models = {**BASE["models"], "org/small": {**BASE["models"]["org/small"], "multimodal": mm}}
    media_cfg = {"images": 2, "image_size": "32x24", "image_format": "png"}
    tasks = {"image-chat": {"request_set": {"kind": "synthetic", "fixed_output_len": 9, "media": media_cfg}}}
    sweep = {**BASE["sweeps"][0], "tasks": ["image-chat"], "batch_sizes": [8]}
    grid = grid_of(tmp_path, models=models, tasks=tasks, sweeps=[sweep])
    spec = grid.spec(grid.points[0])
    assert spec["server_args"] == [
        "--max-num-batched-tokens", "8192", "--enforce-eager",
        "--limit-mm-per-prompt", '{"image": 2, "video": 0}',
        "--mm-processor-kwargs", '{"max_pixels": 1003520, "min_pixels": 3136}',
        "--mm-processor-cache-gb", "0",
    ]  # fmt: skip
    media_cfg = {**media_cfg, "videos": 0, "video_size": "640x360", "video_frames": 16}  # schema defaults
    assert spec["synthetic"]["media"] == media_cfg
    text = grid_of(tmp_path).spec(grid_of(tmp_path).points[0])
    assert "media" not in text["synthetic"] and "--limit-mm-per-prompt" not in text["server_args"]

    cfg = config_from_dict({**spec, "num_requests": 3})
    writer = traces.RunDirWriter(tmp_path / "runs" / "r")
    specs, info = prepare_requests(cfg, writer)
    assert info["synthetic"]["media"] == media_cfg
    assert [[(m["width"], m["height"], m["mime"]) for m in s.media] for s in specs] == [
        [(32, 24, "image/png")] * 2
    ] * 3
    assert len(_parts(specs[0], "image")) == 2


@pytest.mark.parametrize(
    "task, message",
    [
        ({"endpoint": "completions", "request_set": {"kind": "synthetic", "fixed_output_len": 9, "media": {"images": 1}}},
         r"tasks.t.request_set.media: images and video need endpoint chat, not 'completions'"),
        ({"request_set": {"kind": "parquet", "path": "x.parquet", "media": {"images": 1}}},
         r"tasks.t.request_set.media: synthetic media go with kind synthetic, not 'parquet'"),
    ],
)  # fmt: skip
def test_media_config_problems_name_the_key_at_plan_time(tmp_path, task, message):
    from jouleflow.plan.grid import GridError
    from test_grid import BASE, grid_of

    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(GridError, match=message):
        grid_of(tmp_path, tasks={"t": task}, sweeps=[{**BASE["sweeps"][0], "tasks": ["t"]}])
