"""Per-task aggregates, modality ratios, memory vs batch and spread, on hand-made summaries worked out by hand."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import CompareError, NoComparablePairs
from jouleflow.analysis.compare.memory_batch import compare_memory_batch
from jouleflow.analysis.compare.modality import compare_modality, load_pairs_file, parse_pairs
from jouleflow.analysis.compare.spread import compare_spread
from jouleflow.analysis.compare.task_aggregates import compare_task_aggregates, parse_task_pairs


def tasks_frame():
    chat, gpqa = {"task": "chat"}, {"task": "gpqa"}
    return frame(
        row(**chat, model="org/A", batch_size=64, energy_per_response_j=100.0, mean_output_tokens=500.0,
            energy_per_token_j=0.2),
        row(**chat, model="org/A", batch_size=128, energy_per_response_j=80.0, mean_output_tokens=400.0,
            energy_per_token_j=0.2),
        row(**chat, model="org/B", energy_per_response_j=200.0, mean_output_tokens=1000.0, energy_per_token_j=0.2),
        row(**chat, model="org/C", energy_per_response_j=50.0, mean_output_tokens=250.0, energy_per_token_j=0.2),
        row(**gpqa, model="org/A", energy_per_response_j=1000.0, mean_output_tokens=5000.0, energy_per_token_j=0.2),
        # one configuration measured twice: averaged to 3000 J, 6000 tokens
        row(**gpqa, model="org/B", energy_per_response_j=2800.0, mean_output_tokens=5800.0, energy_per_token_j=0.5),
        row(**gpqa, model="org/B", energy_per_response_j=3200.0, mean_output_tokens=6200.0, energy_per_token_j=0.5),
        row(**gpqa, model="org/B", status="failed", energy_per_response_j=1.0),  # never used
    )  # fmt: skip


def test_task_aggregates_by_hand():
    result = compare_task_aggregates(tasks_frame())
    tasks = {t["task"]: t for t in result.tasks}
    # chat: A's minimum is 80 J (400 tokens), B 200 J (1000), C 50 J (250)
    assert tasks["chat"]["models"] == 3
    assert tasks["chat"]["mean_output_tokens"] == pytest.approx(550.0)
    assert tasks["chat"]["mean_energy_per_response_j"] == pytest.approx(110.0)
    assert tasks["gpqa"]["models"] == 2
    assert tasks["gpqa"]["mean_output_tokens"] == pytest.approx(5500.0)
    assert tasks["gpqa"]["mean_energy_per_response_j"] == pytest.approx(2000.0)
    (r,) = result.ratios  # the default pair: the task with more energy first
    assert (r["task"], r["versus"], r["models"]) == ("gpqa", "chat", 2)
    assert r["model_ids"] == ["org/A", "org/B"]
    assert r["tokens_ratio"] == pytest.approx(5500 / 700)  # common models: A and B only
    assert r["energy_ratio"] == pytest.approx(2000 / 140)
    assert r["median_model_energy_ratio"] == pytest.approx((1000 / 80 + 3000 / 200) / 2)
    assert (r["min_model_energy_ratio"], r["max_model_energy_ratio"]) == (
        pytest.approx(12.5),
        pytest.approx(15.0),
    )
    assert r["all_models_tokens_ratio"] == pytest.approx(10.0)
    assert r["all_models_energy_ratio"] == pytest.approx(2000 / 110)
    rows = result.rows()
    assert [x["kind"] for x in rows] == ["task", "task", "ratio"]


def test_task_aggregates_selection_and_gpu():
    df = tasks_frame().vstack(
        frame(
            row(task="chat", model="org/A", gpu="B200", energy_per_response_j=90.0, energy_per_token_j=0.1,
                mean_output_tokens=900.0),
        )
    )  # fmt: skip
    by_response = {m["model"]: m for m in compare_task_aggregates(df, tasks=["chat"]).minima}
    assert by_response["org/A"]["energy_per_response_j"] == 80.0
    by_token = {
        m["model"]: m for m in compare_task_aggregates(df, tasks=["chat"], select="energy_per_token").minima
    }
    assert by_token["org/A"]["config"] == "1x B200 b64 tp1"
    assert by_token["org/A"]["energy_per_response_j"] == 90.0
    on_b200 = compare_task_aggregates(df, gpu="B200")
    assert [(t["task"], t["models"]) for t in on_b200.tasks] == [("chat", 1)]
    assert on_b200.ratios == []


def test_task_aggregates_bad_input():
    with pytest.raises(CompareError, match="task\\(s\\) video not in the summary"):
        compare_task_aggregates(tasks_frame(), pairs=[("video", "chat")])
    with pytest.raises(CompareError, match="GPU type\\(s\\) A100"):
        compare_task_aggregates(tasks_frame(), gpu="A100")
    with pytest.raises(CompareError, match="not TASK_A:TASK_B"):
        parse_task_pairs("gpqa")
    assert parse_task_pairs("gpqa:chat, x:y") == [("gpqa", "chat"), ("x", "y")]
    gpqa_failed = frame(row(task="chat"), row(task="gpqa", status="failed", energy_per_response_j=None))
    with pytest.raises(NoComparablePairs, match="task\\(s\\) gpqa have no usable configuration"):
        compare_task_aggregates(gpqa_failed, pairs=[("gpqa", "chat")])
    no_common = frame(row(task="chat", model="org/A"), row(task="gpqa", model="org/B"))
    with pytest.raises(NoComparablePairs, match="no model has both tasks of gpqa:chat"):
        compare_task_aggregates(no_common, pairs=[("gpqa", "chat")])


def modality_frame():
    return frame(
        row(task="image-chat", model="org/VL", energy_per_token_j=0.3, energy_per_response_j=300.0),
        row(task="image-chat", model="org/VL", batch_size=128, energy_per_token_j=0.2, energy_per_response_j=400.0),
        row(task="video-chat", model="org/VL", energy_per_token_j=0.5, energy_per_response_j=250.0),
        row(task="image-chat", model="org/VL", gpu="B200", energy_per_token_j=0.1, energy_per_response_j=90.0),
        row(task="lm-arena-chat", model="org/T", energy_per_token_j=0.1, energy_per_response_j=100.0),
        row(task="lm-arena-chat", model="org/Gemma", energy_per_token_j=0.1, energy_per_response_j=100.0),
        row(task="image-chat", model="org/Gemma", energy_per_token_j=0.12, energy_per_response_j=80.0),
    )  # fmt: skip


def test_modality_by_hand():
    result = compare_modality(modality_frame(), {"org/VL": "org/T", "org/Gemma": "org/Gemma"})
    rows = {(r["task"], r["model"]): r for r in result.rows()}
    assert set(rows) == {("image-chat", "org/VL"), ("video-chat", "org/VL"), ("image-chat", "org/Gemma")}
    vl = rows[("image-chat", "org/VL")]
    assert vl["gpu"] == "H100"  # B200 has no text run of org/T: not compared there
    assert vl["jpt_ratio"] == pytest.approx(2.0)  # min J/token 0.2 (batch 128) / 0.1
    assert vl["jpr_ratio"] == pytest.approx(3.0)  # min J/response 300 (batch 64) / 100
    assert vl["config_jpt"] == "1x H100 b128 tp1" and vl["config_jpr"] == "1x H100 b64 tp1"
    assert rows[("video-chat", "org/VL")]["jpt_ratio"] == pytest.approx(5.0)
    assert rows[("image-chat", "org/Gemma")]["jpr_ratio"] == pytest.approx(0.8)
    image = next(b for b in result.by_task() if b["task"] == "image-chat" and b["gpu"] == "all")
    assert (image["pairs"], image["min_jpr_ratio"], image["max_jpr_ratio"]) == (
        2,
        pytest.approx(0.8),
        pytest.approx(3.0),
    )


def test_modality_common_batch_sizes_compare_a_partial_sweep_at_equal_batch():
    # org/VL has image-chat at B = 64 and 128, org/T chat at 64 and 256 (the text sweep reaches further).
    df = frame(
        row(task="image-chat", model="org/VL", energy_per_token_j=0.3, energy_per_response_j=300.0),
        row(task="image-chat", model="org/VL", batch_size=128, energy_per_token_j=0.2, energy_per_response_j=400.0),
        row(task="lm-arena-chat", model="org/T", energy_per_token_j=0.1, energy_per_response_j=100.0),
        row(task="lm-arena-chat", model="org/T", batch_size=256, energy_per_token_j=0.04, energy_per_response_j=30.0),
    )  # fmt: skip
    every = compare_modality(df, {"org/VL": "org/T"}, modality_tasks=["image-chat"]).rows()[0]
    assert every["jpt_ratio"] == pytest.approx(0.2 / 0.04) and every["text_config_jpt"] == "1x H100 b256 tp1"
    common = compare_modality(df, {"org/VL": "org/T"}, modality_tasks=["image-chat"], batch_sizes="common")
    (pair,) = common.rows()
    assert pair["jpt_ratio"] == pytest.approx(0.3 / 0.1) and pair["jpr_ratio"] == pytest.approx(3.0)
    assert pair["config_jpt"] == pair["text_config_jpt"] == "1x H100 b64 tp1"
    assert common.summary()["batch_sizes"] == "common"
    assert "both models were run at" in common.markdown()
    disjoint = df.filter(df["batch_size"] != 64)
    with pytest.raises(NoComparablePairs, match="no batch size in common on H100"):
        compare_modality(disjoint, {"org/VL": "org/T"}, modality_tasks=["image-chat"], batch_sizes="common")
    with pytest.raises(CompareError, match="batch_sizes must be one of all, common"):
        compare_modality(df, {"org/VL": "org/T"}, batch_sizes="same")


def test_modality_bad_input():
    with pytest.raises(CompareError, match="not in the summary: org/Nope"):
        compare_modality(modality_frame(), {"org/VL": "org/Nope"})
    with pytest.raises(CompareError, match="at least one pairing"):
        compare_modality(modality_frame(), {})
    with pytest.raises(NoComparablePairs, match="org/T has no image-chat run"):
        compare_modality(
            modality_frame(), {"org/VL": "org/T"}, text_task="image-chat", modality_tasks=["video-chat"]
        )
    with pytest.raises(CompareError, match="task\\(s\\) chat not in the summary"):
        compare_modality(modality_frame(), {"org/VL": "org/T"}, text_task="chat")
    with pytest.raises(NoComparablePairs, match="org/T has no image-chat/video-chat run"):
        compare_modality(modality_frame(), {"org/T": "org/Gemma"})
    with pytest.raises(CompareError, match="task\\(s\\) image-chat, audio-chat not in the summary"):
        compare_modality(modality_frame().filter(modality_frame()["task"] != "image-chat"), {"org/VL": "org/T"},
                         modality_tasks=["image-chat", "audio-chat"])  # fmt: skip
    only_video = compare_modality(
        modality_frame(), {"org/VL": "org/T"}, modality_tasks=["video-chat", "audio-chat"]
    )
    assert [r["task"] for r in only_video.rows()] == ["video-chat"]
    partial = compare_modality(modality_frame(), {"org/VL": "org/T", "org/T": "org/Gemma"})
    assert partial.unmatched == [
        {"model": "org/T", "text_model": "org/Gemma", "why": "org/T has no image-chat/video-chat run"}
    ]


def test_pairings_parse(tmp_path):
    assert parse_pairs(["a/X=a/Y", "b/X=b/Y,c/Z=c/Z"]) == {"a/X": "a/Y", "b/X": "b/Y", "c/Z": "c/Z"}
    with pytest.raises(CompareError, match="not MULTIMODAL_MODEL=TEXT_MODEL"):
        parse_pairs(["a/X"])
    with pytest.raises(CompareError, match="paired twice"):
        parse_pairs(["a/X=a/Y", "a/X=a/Z"])
    path = tmp_path / "pairs.yaml"
    path.write_text("pairs:\n  a/X: a/Y\n")
    assert load_pairs_file(str(path)) == {"a/X": "a/Y"}
    path.write_text("- a\n")
    with pytest.raises(CompareError, match="expected a mapping"):
        load_pairs_file(str(path))


def memory_frame():
    g = {"task": "gpqa", "gpu": "H100"}
    return frame(
        row(**g, model="org/M", batch_size=16, energy_per_response_j=500.0),
        row(**g, model="org/M", batch_size=64, energy_per_response_j=400.0),
        row(**g, model="org/M", num_gpus=2, batch_size=64, energy_per_response_j=450.0),
        row(**g, model="org/M", num_gpus=2, batch_size=256, energy_per_response_j=150.0),
        row(**g, model="org/M", num_gpus=2, batch_size=512, status="infeasible", energy_per_response_j=None),
        row(**g, model="org/M", num_gpus=4, batch_size=256, energy_per_response_j=140.0),
        row(**g, model="org/N", batch_size=128, energy_per_response_j=100.0),
        row(**g, model="org/N", num_gpus=2, batch_size=256, energy_per_response_j=120.0),
        row(**g, model="org/K", batch_size=128, energy_per_response_j=200.0),
        row(**g, model="org/K", num_gpus=2, batch_size=64, energy_per_response_j=100.0),
    )  # fmt: skip


def test_memory_batch_by_hand():
    result = compare_memory_batch(memory_frame())
    rows = {(r["model"], r["num_gpus"]): r for r in result.rows()}
    m2 = rows[("org/M", 2)]
    assert (m2["max_batch"], m2["min_energy"], m2["min_energy_batch"]) == (256, 150.0, 256)  # 512 did not fit
    assert (m2["fewer_gpus"], m2["fewer_max_batch"], m2["fewer_min_energy"]) == (1, 64, 400.0)
    assert m2["change"] == pytest.approx(150 / 400 - 1)
    assert m2["more_gpus_lower_energy_by_batch"] is True
    m4 = rows[("org/M", 4)]  # lower than the best with fewer GPUs (150 J), but no larger batch than 256
    assert (m4["fewer_gpus"], m4["batch_unlocked"], m4["more_gpus_lower_energy_by_batch"]) == (
        2,
        False,
        False,
    )
    assert rows[("org/N", 2)]["more_gpus_lower_energy_by_batch"] is False  # larger batch, more energy
    assert rows[("org/K", 2)]["more_gpus_lower_energy_by_batch"] is False  # less energy, smaller batch
    assert rows[("org/M", 1)]["fewer_gpus"] is None
    s = result.summary()
    assert (s["cases"], s["lower_energy"], s["batch_unlocked"], s["flagged"]) == (4, 3, 2, 1)
    assert [(r["model"], r["num_gpus"]) for r in s["flagged_cases"]] == [("org/M", 2)]


def spread_frame():
    return frame(
        *tasks_frame().filter(tasks_frame()["task"] == "chat").to_dicts(),
        row(task="text-to-image", model="org/X", energy_per_response_j=100.0),
        row(task="text-to-image", model="org/Y", energy_per_response_j=300.0),
        row(task="text-to-video", model="org/Z", energy_per_response_j=10000.0),
        row(task="text-to-video", model="org/W", energy_per_response_j=60000.0),
        row(task="image-chat", model="org/VL", energy_per_response_j=300.0),
        row(task="video-chat", model="org/VL", energy_per_response_j=250.0),
    )


def test_spread_by_hand():
    result = compare_spread(spread_frame())
    chat = next(t for t in result.tasks if t["task"] == "chat")
    assert (chat["models"], chat["min_model"], chat["min_energy"], chat["max_model"], chat["max_energy"]) == (
        3, "org/C", 50.0, "org/B", 200.0)  # fmt: skip
    assert chat["median_energy"] == 80.0 and chat["max_over_min"] == pytest.approx(4.0)
    contrasts = {c["task"]: c for c in result.contrasts}
    video = contrasts["text-to-video"]
    assert video["versus"] == "text-to-image"
    assert (video["min_ratio"], video["median_ratio"], video["max_ratio"]) == (100.0, 175.0, 200.0)
    assert video["common_models"] == 0 and video["median_model_ratio"] is None
    assert contrasts["video-chat"]["median_model_ratio"] == pytest.approx(250 / 300)


def test_spread_contrasts_absent_or_unknown():
    only_chat = compare_spread(tasks_frame(), tasks=["chat"])
    assert only_chat.contrasts == []
    assert only_chat.skipped == ["video-chat vs image-chat (video-chat, image-chat absent)",
                                 "text-to-video vs text-to-image (text-to-video, text-to-image absent)"]  # fmt: skip
    with pytest.raises(
        CompareError, match="contrast gpqa:video: task\\(s\\) video have no usable configuration"
    ):
        compare_spread(tasks_frame(), contrasts=[("gpqa", "video")])
    with pytest.raises(NoComparablePairs, match="no configuration has a positive energy_per_response_j"):
        compare_spread(frame(row(status="failed")))
