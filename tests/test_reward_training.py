"""Reward-model training and evaluation: metrics, data checks, clip splits, the recipe end to end, resume."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import math
import re
import shutil
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from scipy.stats import rankdata
from transformers import AutoModel, EvalPrediction

import rlnf  # noqa: F401  (registers the Auto classes)
from rlnf.cli import main as cli_main
from rlnf.data.scorer_data import ScorerDatasetError, split_by_clip, validate_scorer_dataset
from rlnf.reward_model import RewardConfig, RewardModel, RewardModelProcessor
from rlnf.testing import BAMBARA_SAMPLE, sine_clip, tiny_reward_model
from rlnf.trainers.reward_model_evaluation import mismatch_pairs, predict_scores
from rlnf.trainers.reward_model_metrics import auroc, compute_metrics, compute_reward_metrics
from rlnf.trainers.reward_model_trainer import ClipGroupedSampler, RewardDataCollator, RewardModelTrainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "train_reward_model.py"
DEMO_YAML = RECIPE.with_name("reward_model_demo.yaml")
TINY = [
    "--embed_dim", "16", "--lstm_hidden", "16", "--audio_conv_channels", "16", "--audio_conv_layers", "2",
    "--head_hidden", "32", "--num_attention_heads", "2", "--tokenizer_vocab_size", "60",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--learning_rate", "3e-3",
    "--report_to", "none", "--logging_steps", "2", "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
    "--eval_split_size", "3", "--seed", "7", "--torch_threads", "1", "--alignment_dim", "16",
]  # fmt: skip


def load_recipe():
    """The recipe script as a module (registered first: its dataclasses resolve annotations through it)."""
    if "train_reward_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location("train_reward_model", RECIPE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["train_reward_model"] = module
        spec.loader.exec_module(module)
    return sys.modules["train_reward_model"]


def write_scorer_jsonl(folder: Path, clips: int = 20) -> Path:
    """Tiny scorer data: per clip its reference (100), a truncated reference (50) and another clip's text (5)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in range(clips):
        sf.write(folder / f"clip{c}.wav", sine_clip(0.7 + 0.03 * c, 150 + 25 * c, seed=c), 16000)
        ref = BAMBARA_SAMPLE[c % len(BAMBARA_SAMPLE)]
        other = BAMBARA_SAMPLE[(c + 5) % len(BAMBARA_SAMPLE)]
        for text, score in ((ref, 100.0), (ref[: len(ref) // 2], 50.0), (other, 5.0)):
            rows.append({"audio": f"clip{c}.wav", "text": text, "score": score, "reference": ref, "clip_id": c})
    path = folder / "scores.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def scorer_rows(n_clips: int = 6, per_clip: int = 3, with_clip_id: bool = True) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {"audio": [], "text": [], "score": []}
    if with_clip_id:
        rows["clip_id"] = []
    for c in range(n_clips):
        for k in range(per_clip):
            rows["audio"].append({"path": f"/data/clip{c}.wav", "bytes": None})
            rows["text"].append(f"text {c} {k}")
            rows["score"].append(float(rng.uniform(0, 100)))
            if with_clip_id:
                rows["clip_id"].append(c)
    return datasets.Dataset.from_dict(rows)


# ------------------------------------------------------------------------------------------------- metrics


def test_metrics_match_independent_formulas():
    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 1, 200)
    preds = np.clip(labels + rng.normal(0, 0.15, 200), 0, 1)
    metrics = compute_reward_metrics(preds, labels)
    assert metrics["mse"] == pytest.approx(np.mean((preds - labels) ** 2))
    assert metrics["r2"] == pytest.approx(1 - np.sum((labels - preds) ** 2) / np.sum((labels - labels.mean()) ** 2))
    assert metrics["pearson"] == pytest.approx(np.corrcoef(preds, labels)[0, 1])
    assert metrics["spearman"] == pytest.approx(np.corrcoef(rankdata(preds), rankdata(labels))[0, 1])
    within = sum(1 for p, t in zip(preds, labels, strict=True) if abs(p - t) <= 0.1) / len(labels)
    assert metrics["accuracy@0.1"] == pytest.approx(within)
    assert metrics["n"] == 200 and "mismatch_auroc" not in metrics


def test_auroc_matches_the_pairwise_definition_with_ties():
    pos = np.array([0.9, 0.8, 0.8, 0.3, 0.5])
    neg = np.array([0.1, 0.8, 0.4, 0.6])
    pairwise = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])
    assert auroc(pos, neg) == pytest.approx(pairwise)  # 0.7 on this example, with two ties
    assert auroc([1, 2, 3], [0, 0.5]) == 1.0 and auroc([0], [1]) == 0.0
    metrics = compute_reward_metrics([0.2, 0.4], [0.0, 1.0], matched_predictions=pos, mismatch_predictions=neg)
    assert metrics["mismatch_auroc"] == pytest.approx(pairwise)
    # Without matched_predictions the true pairs are the predictions themselves.
    assert compute_reward_metrics([0.9, 0.7], [1, 1], mismatch_predictions=[0.8])["mismatch_auroc"] == 0.5


def test_metrics_edge_cases_and_trainer_adapter():
    constant = compute_reward_metrics([0.5, 0.5, 0.5], [0.1, 0.5, 0.9])
    assert math.isnan(constant["pearson"]) and math.isnan(constant["spearman"])
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        compute_reward_metrics([0.1, 0.2, 0.3], [0.1, 0.2])
    preds, labels = np.array([0.1, 0.5, 0.9], dtype=np.float32), np.array([0.0, 0.6, 1.0], dtype=np.float32)
    adapted = compute_metrics(EvalPrediction(predictions=preds, label_ids=labels))
    assert adapted == compute_reward_metrics(preds, labels)
    assert compute_metrics(EvalPrediction(predictions=(preds,), label_ids=labels)) == adapted


# ------------------------------------------------------------------------------------------- data checks


def test_validate_accepts_good_data_and_names_missing_columns():
    validate_scorer_dataset(scorer_rows())
    with pytest.raises(ScorerDatasetError, match=r"score column 'rating' is missing.*\['audio', 'text', 'score'"):
        validate_scorer_dataset(scorer_rows(), score_column="rating")
    with pytest.raises(ScorerDatasetError, match="audio column 'wav'"):
        validate_scorer_dataset(scorer_rows(), audio_column="wav")
    with pytest.raises(ScorerDatasetError, match="empty"):
        validate_scorer_dataset(scorer_rows().select([]))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("score", float("nan"), r"row 4: score is NaN"),
        ("score", 130.0, r"row 4: score 130.0 is outside the declared range \[0, 100\]"),
        ("score", None, r"row 4: score is missing"),
        ("audio", None, r"row 4: audio is missing"),
        ("text", None, r"row 4: text is not a string"),
    ],
)
def test_validate_names_the_bad_row(column, value, message):
    rows = scorer_rows().to_list()
    rows[4][column] = value
    with pytest.raises(ScorerDatasetError, match=message):
        validate_scorer_dataset(datasets.Dataset.from_list(rows))


def test_validate_catches_a_0_1_dataset_declared_0_100_and_vice_versa():
    rows = scorer_rows().to_list()
    for row in rows:
        row["score"] /= 100.0
    as_fractions = datasets.Dataset.from_list(rows)
    validate_scorer_dataset(as_fractions, score_range=(0, 1))
    with pytest.raises(ScorerDatasetError, match=r"outside the declared range \[0, 1\]"):
        validate_scorer_dataset(scorer_rows(), score_range=(0, 1))
    bad = datasets.Dataset.from_list([{**r, "score": 50.0} if i in (2, 9) else r for i, r in enumerate(rows)])
    with pytest.raises(ScorerDatasetError, match=r"(?s)2 of 18 rows.*row 2:.*row 9:"):
        validate_scorer_dataset(bad, score_range=(0, 1))


def test_split_by_clip_has_no_leakage():
    with_ids = scorer_rows(n_clips=20, per_clip=3)
    for dataset, key in ((with_ids, "clip_id"), (scorer_rows(20, 3, with_clip_id=False), "audio")):
        parts = split_by_clip(dataset, test_size=0.25, seed=3)
        train_keys = {json.dumps(v, sort_keys=True) for v in parts["train"][key]}
        held_keys = {json.dumps(v, sort_keys=True) for v in parts["validation"][key]}
        assert not train_keys & held_keys
        assert len(held_keys) == 5 and len(parts["train"]) + len(parts["validation"]) == 60
    again = split_by_clip(with_ids, test_size=0.25, seed=3)
    assert again["validation"]["clip_id"] == split_by_clip(with_ids, test_size=0.25, seed=3)["validation"]["clip_id"]
    assert set(split_by_clip(with_ids, test_size=4, seed=0)["validation"]["clip_id"]).__len__() == 4
    # Clips identified by content when there is neither a clip_id nor a path.
    clip_a, clip_b = sine_clip(0.5, 200), sine_clip(0.5, 300)
    by_bytes = datasets.Dataset.from_dict({
        "audio": [{"bytes": _wav_bytes(c), "path": None} for c in (clip_a, clip_b, clip_a, clip_b)],
        "text": ["a", "b", "c", "d"], "score": [1.0, 2.0, 3.0, 4.0],
    })  # fmt: skip
    parts = split_by_clip(by_bytes, test_size=1, seed=0)
    assert sorted(parts["validation"]["text"]) in (["a", "c"], ["b", "d"])
    with pytest.raises(ScorerDatasetError, match="at least 2 distinct clips"):
        split_by_clip(scorer_rows(n_clips=1), test_size=0.5)


def _wav_bytes(samples: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV")
    return buffer.getvalue()


def test_collator_and_batched_scoring(tmp_path):
    model, processor = tiny_reward_model(tmp_path / "tiny")
    clips = [sine_clip(0.6, 200, seed=0), sine_clip(1.1, 300, seed=1), sine_clip(0.9, 400, seed=2)]
    rows = [
        {"audio": {"array": c, "sampling_rate": 16000}, "text": t, "score": s}
        for c, t, s in zip(clips, BAMBARA_SAMPLE, (100.0, 25.0, 0.0), strict=False)
    ]
    batch = RewardDataCollator(processor, 100)(rows)
    assert set(batch) == {"audio", "audio_attention_mask", "text", "text_attention_mask", "labels"}
    assert batch["labels"].tolist() == [1.0, 0.25, 0.0] and batch["labels"].dtype == torch.float32
    assert RewardDataCollator(processor, 1)([{**rows[0], "score": 0.75}])["labels"].tolist() == [0.75]
    direct = processor(audios=[r["audio"] for r in rows], texts=[r["text"] for r in rows])
    cached = RewardDataCollator(processor, 100, cache_audio_mb=1)
    for _ in range(2):  # filled, then served from the cache: the same tensors as the processor's own call
        again = cached(rows[::-1])
        for key in direct:
            torch.testing.assert_close(again[key], direct[key].flip(0), rtol=0, atol=0)
    assert len(cached._cache) == 3
    with pytest.raises(ValueError, match="score_scale must be 100"):
        RewardDataCollator(processor, 10)
    with pytest.raises(ValueError, match="batch item 0 has score 75"):
        RewardDataCollator(processor, 1)([{**rows[0], "score": 75.0}])
    with torch.inference_mode():
        expected = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.numpy()
    audios = [r["audio"] for r in rows]
    texts = [r["text"] for r in rows]
    np.testing.assert_allclose(predict_scores(model, processor, audios, texts, batch_size=2), expected, atol=1e-5)
    both = predict_scores(model, processor, audios, [[t, texts[0]] for t in texts], batch_size=2)
    np.testing.assert_allclose(both[:, 0], expected, atol=1e-5)


def test_clip_grouped_sampler_keeps_clips_together_and_is_seeded():
    keys = [c for c in range(7) for _ in range(3)] + [7]  # 22 rows: 7 clips x 3 and a clip with one row
    sampler = ClipGroupedSampler(keys, seed=5)
    order = list(sampler)
    assert sorted(order) == list(range(22)) and len(sampler) == 22
    runs = [keys[i] for i in order]
    assert sum(a != b for a, b in zip(runs, runs[1:])) == 7  # each clip's rows are one contiguous run
    assert list(sampler) == order  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != order and list(ClipGroupedSampler(keys, seed=5)) == order


def test_trainer_encodes_each_clip_once_with_the_same_result(tmp_path):
    from transformers import TrainingArguments

    model, processor = tiny_reward_model(tmp_path / "tiny", fusion_type="cross_attention")
    clips = [{"array": sine_clip(0.5 + 0.2 * c, 200 + 50 * c, seed=c), "sampling_rate": 16000} for c in range(3)]
    rows = [
        {"audio": clips[c], "text": BAMBARA_SAMPLE[k], "score": 10.0 * k}
        for c, k in ((0, 1), (1, 2), (0, 3), (2, 4), (1, 5), (0, 6))
    ]
    deduped = RewardDataCollator(processor, dedupe_audio=True)(rows)
    assert deduped["audio"].shape[0] == 3 and deduped["audio_index"].tolist() == [0, 1, 0, 2, 1, 0]
    plain = RewardDataCollator(processor)(rows)
    args = TrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True)
    trainer = RewardModelTrainer(model=model.eval(), args=args, processor=processor)
    with torch.no_grad():
        loss, outputs = trainer.compute_loss(model, deduped, return_outputs=True)
        expected = model(**plain)
    torch.testing.assert_close(outputs.logits, expected.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss, expected.loss, rtol=0, atol=1e-7)
    no_labels = {k: v for k, v in deduped.items() if k != "labels"}
    _, logits, _ = trainer.prediction_step(model, no_labels, prediction_loss_only=False)
    torch.testing.assert_close(logits, expected.logits, rtol=0, atol=1e-6)


def test_mismatch_pairs_use_the_reference_and_another_sentence():
    rows = {"audio": [], "text": [], "score": [], "reference": [], "clip_id": []}
    for c, sentence in enumerate(["i ni ce", "i ni ce", "a bɛ so kɔnɔ", "sanji bɛ na bi"]):  # two clips, one text
        for text, score in ((sentence[:3], 40.0), (sentence, 100.0)):
            for key, value in zip(rows, ({"path": f"c{c}.wav"}, text, score, sentence, c), strict=True):
                rows[key].append(value)
    audios, own, others = mismatch_pairs(datasets.Dataset.from_dict(rows), seed=1)
    assert [a["path"] for a in audios] == ["c0.wav", "c1.wav", "c2.wav", "c3.wav"]
    assert own == ["i ni ce", "i ni ce", "a bɛ so kɔnɔ", "sanji bɛ na bi"]
    assert all(o != m for o, m in zip(own, others, strict=True)) and set(others) <= set(own)
    no_reference = datasets.Dataset.from_dict(rows).remove_columns("reference")
    assert mismatch_pairs(no_reference, seed=1)[1] == own  # best-scored text of each clip


# ----------------------------------------------------------------------------------------- recipe end to end


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """10 steps straight through (2+ epochs), checkpoints every 5 steps; the demo YAML's augmentation is on, so the
    resume test also shows augmented batches are drawn again identically. The final model is the step-10 one."""
    root = tmp_path_factory.mktemp("reward_recipe")
    data = write_scorer_jsonl(root / "data")
    out = root / "straight"
    summary = load_recipe().main([
        "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "10", "--save_steps", "5",
        "--eval_strategy", "steps", "--eval_steps", "5", "--load_best_model_at_end", "false", *TINY,
    ])  # fmt: skip
    return data, out, summary


def test_recipe_saves_a_loadable_model_with_metrics(straight_run):
    data, out, summary = straight_run
    model = RewardModel.from_pretrained(out)
    auto = AutoModel.from_pretrained(out)
    assert type(auto) is RewardModel and model.config.embed_dim == 16 and model.config.fusion_type == "alignment"
    processor = RewardModelProcessor.from_pretrained(out)
    assert len(processor.tokenizer) <= model.config.vocab_size
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id
    for name in ("eval_results.json", "test_metrics.json", "train_results.json", "test_plot.png"):
        assert (out / name).is_file(), name
    test_metrics = json.loads((out / "test_metrics.json").read_text())
    assert {"test_mse", "test_r2", "test_pearson", "test_spearman", "test_accuracy@0.1", "test_mismatch_auroc"} <= set(
        test_metrics
    )
    assert "eval_pearson" in json.loads((out / "eval_results.json").read_text())
    # Trainer kept the processor with each checkpoint too, so a checkpoint is a usable model on its own.
    assert (out / "checkpoint-5" / "spiece.model").is_file()
    assert summary["train"]["train_rows"] > 0 and summary["test"]["test_n"] > 0


def test_resume_from_checkpoint_gives_the_same_weights(straight_run, tmp_path):
    data, out, _ = straight_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(out / "checkpoint-5", resumed / "checkpoint-5")  # as if the run had died after step 5
    load_recipe().main([
        "--dataset_name", str(data), "--output_dir", str(resumed), "--max_steps", "10", "--save_steps", "5",
        "--eval_strategy", "steps", "--eval_steps", "5", "--load_best_model_at_end", "false",
        "--resume_from_checkpoint", "true", *TINY,
    ])  # fmt: skip
    straight, again = load_file(out / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert straight.keys() == again.keys()
    for key in straight:
        torch.testing.assert_close(again[key], straight[key], rtol=0, atol=0, msg=key)
    # The weights did move after the checkpoint, so the comparison is not vacuous.
    at_five = load_file(out / "checkpoint-5" / "model.safetensors")
    assert any(not torch.equal(at_five[k], straight[k]) for k in straight if straight[k].is_floating_point())


def test_recipe_flags_over_the_demo_yaml_and_architecture_from_reward_config(tmp_path):
    recipe = load_recipe()
    args, arch = recipe.parse_arguments(["--max_steps", "3"])  # the demo YAML is the base; the flag overrides it
    assert args.max_steps == 3 and args.learning_rate == 2e-3 and arch.fusion_type == "alignment"
    assert args.output_dir == "outputs/reward-model-demo" and args.export_dir is None  # never the shipped asset
    assert "--export_dir rlnf/assets/demo-reward-model" in DEMO_YAML.read_text()  # the maintainer command
    config = tmp_path / "c.yaml"
    config.write_text("dataset_name: demo\nfusion_type: cross_attention\nlearning_rate: 0.01\noutput_dir: x\n")
    args, arch = recipe.parse_arguments([str(config), "--learning_rate", "0.02"])
    assert arch.fusion_type == "cross_attention" and args.learning_rate == 0.02 and not args.remove_unused_columns
    args, arch = recipe.parse_arguments(["--config", str(config), "--alignment_dim", "32", "--dropout", "0.1"])
    assert args.learning_rate == 0.01 and arch.alignment_dim == 32 and arch.dropout == 0.1
    assert arch.embed_dim == RewardConfig().embed_dim and args.max_steps == -1  # demo YAML not read with --config
    # One source of truth: every RewardConfig argument but the tokenizer-bound/published-format ones is a flag.
    expected = set(inspect.signature(RewardConfig.__init__).parameters) - {
        "self",
        "kwargs",
        "vocab_size",
        "pad_token_id",
        "pretrained_config",
        "override",
        "tokenizer_path",
    }
    assert set(dataclasses.asdict(arch)) == expected
    config.write_text("fusion: late\n")
    with pytest.raises(ValueError, match="fusion"):
        recipe.parse_arguments([str(config)])
    with pytest.raises(ValueError, match="score_scale must be 100"):
        recipe.parse_arguments(["--score_scale", "10", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="fusion_type must be one of"):
        RewardConfig(**{**dataclasses.asdict(arch), "fusion_type": "concat"})


def test_recipe_rejects_bad_rows_before_training(tmp_path):
    data = write_scorer_jsonl(tmp_path / "data", clips=8)
    lines = data.read_text().splitlines()
    row = json.loads(lines[1])
    row["score"] = 0.5 * 100 + 500  # out of range
    lines[1] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScorerDatasetError, match=r"(?s)split 'train' of .*row 1: score 550.0 is outside"):
        load_recipe().main(
            [
                "--dataset_name",
                str(data),
                "--output_dir",
                str(tmp_path / "o"),
                "--max_steps",
                "1",
                "--test_split_size",
                "2",
                *TINY,
            ]
        )


def test_a_corrupt_clip_is_found_before_training_or_skipped(tmp_path):
    data = write_scorer_jsonl(tmp_path / "data", clips=8)
    (tmp_path / "data" / "clip3.wav").write_bytes(b"RIFF\x00\x00not a wav file at all")
    run = ["--dataset_name", str(data), "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no",
           "--load_best_model_at_end", "false", "--test_split_size", "2", *TINY]  # fmt: skip
    out = tmp_path / "o"
    with pytest.raises(
        ScorerDatasetError,
        match=r"split '\w+': 3 rows have audio that cannot be decoded; row \d+: "
        r"audio '.*clip3.wav' cannot be used.*--skip_undecodable_audio true",
    ):
        load_recipe().main([*run, "--output_dir", str(out)])
    assert not (out / "model.safetensors").exists() and not list(out.glob("checkpoint-*"))  # failed up front
    summary = load_recipe().main([*run, "--output_dir", str(out), "--skip_undecodable_audio", "true"])
    rows = sum(summary[k][n] for k, n in (("train", "train_rows"), ("eval", "eval_n"), ("test", "test_n")))
    assert rows == 7 * 3  # clip 3's three rows were dropped, every other row kept


def test_a_one_clip_test_split_does_not_crash_after_training(tmp_path):
    data = write_scorer_jsonl(tmp_path / "data", clips=8)
    out = tmp_path / "o"
    summary = load_recipe().main(["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "2",
                                  "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end",
                                  "false", "--test_split_size", "1", *TINY])  # fmt: skip
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["test_n"] == 3 and metrics["test_mismatch_auroc"] is None and metrics["test_mismatch_clips"] == 0
    assert summary["test"]["test_n"] == 3


def _args(tmp_path, **kwargs):
    from rlnf.trainers.reward_model_config import RewardModelTrainingArguments

    return RewardModelTrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", **kwargs)


def test_validate_catches_a_0_1_dataset_declared_0_100(tmp_path):
    rows = scorer_rows().to_list()
    for row in rows:
        row["score"] /= 100.0
    with pytest.raises(
        ScorerDatasetError,
        match=r"all 18 scores lie in \[0, 1\] but the declared range is "
        r"\[0, 100\]: the data looks 0-1 scaled; pass score_scale 1",
    ):
        validate_scorer_dataset(datasets.Dataset.from_list(rows))
    validate_scorer_dataset(datasets.Dataset.from_list(rows), score_range=(0, 1))
    rows[0]["score"] = 2.0  # one score above 1: a 0-100 dataset with low scores, accepted
    validate_scorer_dataset(datasets.Dataset.from_list(rows))


def test_validate_names_conflicting_scores_of_one_clip_and_text():
    rows = scorer_rows().to_list()
    rows[7] = {**rows[6], "score": rows[6]["score"] + 30}  # clip 2, "text 2 0", another score
    with pytest.raises(
        ScorerDatasetError,
        match=r"1 rows repeat a \(clip, text\) pair with a different score: "
        r"rows 6 and 7 \(text 'text 2 0'\): scores",
    ):
        validate_scorer_dataset(datasets.Dataset.from_list(rows))
    rows[7] = dict(rows[6])  # an exact duplicate is harmless
    validate_scorer_dataset(datasets.Dataset.from_list(rows))
    rows[7] = {**rows[6], "clip_id": 5, "score": 1.0}  # same text, another clip: no conflict
    validate_scorer_dataset(datasets.Dataset.from_list(rows))


def test_one_recording_under_two_names_leaves_the_training_split(tmp_path, caplog):
    from rlnf.data.scorer_data import prepare_splits

    folder = tmp_path / "audio"
    folder.mkdir()
    splits: dict[str, list] = {"train": [], "test": []}
    for c in range(8):
        sf.write(folder / f"clip{c}.wav", sine_clip(0.6 + 0.05 * c, 200 + 30 * c, seed=c), 16000)
        for k, score in enumerate((100.0, 40.0)):
            splits["train"].append({"audio": str(folder / f"clip{c}.wav"), "text": f"t{c} {k}", "score": score})
    shutil.copy(folder / "clip2.wav", folder / "renamed.wav")  # the same recording, another file name
    sf.write(folder / "fresh.wav", sine_clip(0.9, 450, seed=99), 16000)
    for name in ("renamed.wav", "fresh.wav"):
        splits["test"] += [{"audio": str(folder / name), "text": f"{name} {k}", "score": 50.0 * k} for k in (1, 2)]
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(tmp_path / "d")
    args = _args(tmp_path, dataset_name=str(tmp_path / "d"), eval_split_size=2, seed=0)
    with caplog.at_level("WARNING"):
        out = prepare_splits(args)
    assert "clip2.wav" not in "".join(out["train"]["audio"]) + "".join(out["validation"]["audio"])
    assert len(out["train"]) + len(out["validation"]) == 14 and len(out["test"]) == 4
    assert re.search(
        r"2 train rows are recordings that are also in a held-out split \(e.g. train row \d+ "
        r"'.*clip2.wav' = test row 0 '.*renamed.wav', same decoded samples\): dropped",
        caplog.text,
    )


# ----------------------------------------------------------------------------------- alignment fusion, v2 data


def test_alignment_fusion_is_batch_invariant_and_encodes_each_clip_once(tmp_path):
    model, processor = tiny_reward_model(tmp_path / "a", fusion_type="alignment")
    clips = [sine_clip(0.5 + 0.37 * i, 200 + 100 * i, seed=i) for i in range(4)]
    texts = BAMBARA_SAMPLE[:4]
    with torch.no_grad():
        batched = model(**processor(audios=clips, texts=texts)).logits
        alone = torch.stack([model(**processor(audios=[a], texts=[t])).logits[0] for a, t in zip(clips, texts)])
        reversed_ = model(**processor(audios=clips[::-1], texts=texts[::-1])).logits.flip(0)
        audio = model.encode_audio(**processor.extract_audio([clips[2]]))
        reused = model.score(
            audio.select(torch.zeros(4, dtype=torch.long)), model.encode_text(**processor.tokenize(texts))
        )
        direct = model(**processor(audios=[clips[2]] * 4, texts=texts)).logits
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(reversed_, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(reused, direct, atol=1e-6, rtol=0)
    assert len(set(batched.tolist())) == 4  # the scores differ, so the comparisons are not vacuous
    model.save_pretrained(tmp_path / "b")
    again = RewardModel.from_pretrained(tmp_path / "b").eval()
    with torch.no_grad():
        assert torch.equal(again(**processor(audios=clips, texts=texts)).logits, batched)
    assert again.config.fusion_type == "alignment"


def test_alignment_loss_is_mse_plus_ctc_of_the_exact_rows(tmp_path):
    model, processor = tiny_reward_model(tmp_path, fusion_type="alignment")
    clips = [sine_clip(1.0, 200 + 100 * i, seed=i) for i in range(3)]
    batch = processor(audios=clips, texts=BAMBARA_SAMPLE[:3])
    with torch.no_grad():
        graded = model(**batch, labels=torch.tensor([0.2, 0.5, 0.9]))
        mse = torch.mean((graded.logits - torch.tensor([0.2, 0.5, 0.9])) ** 2)
        torch.testing.assert_close(graded.loss, mse)  # no exact row: no CTC term
        exact = model(**batch, labels=torch.tensor([1.0, 0.5, 1.0]))
        audio = model.encode_audio(batch["audio"], batch["audio_attention_mask"])
        log_probs = audio.frames[..., -model.config.vocab_size :]  # the fusion's per-frame CTC distribution
        frames = batch["audio_attention_mask"][:, ::2].sum(1)
        ctc = []
        for row in (0, 2):
            n = int(batch["text_attention_mask"][row].sum()) - 1  # its tokens without </s>
            ctc.append(torch.nn.functional.ctc_loss(
                log_probs[row, : frames[row]].unsqueeze(1), batch["text"][row, :n].unsqueeze(0), frames[row : row + 1],
                torch.tensor([n]), blank=model.config.pad_token_id, reduction="sum") / n)  # fmt: skip
        mse = torch.mean((exact.logits - torch.tensor([1.0, 0.5, 1.0])) ** 2)
    torch.testing.assert_close(exact.loss, mse + model.config.ctc_loss_weight * torch.stack(ctc).mean())


def test_policy_samples_are_seeded_and_scored_by_their_true_cer(tmp_path):
    import jiwer

    from rlnf.data.scorer_data import sample_transcripts
    from rlnf.data.synthetic import score_hypotheses
    from rlnf.policies.tiny_whisper import build_tiny_whisper

    policy, policy_processor = build_tiny_whisper(BAMBARA_SAMPLE, d_model=32, layers=1, vocab_size=80)
    clips = [sine_clip(0.8, 200 + 50 * c, seed=c) for c in range(3)]
    first = sample_transcripts(policy, policy_processor, clips, samples_per_clip=3, seed=5, max_new_tokens=8)
    again = sample_transcripts(policy, policy_processor, clips, samples_per_clip=3, seed=5, max_new_tokens=8)
    assert first == again and [len(s) for s in first] == [3, 3, 3]
    assert len({t for s in first for t in s}) > 1  # sampled, not greedy
    asr = datasets.Dataset.from_dict({"audio": [{"array": c, "sampling_rate": 16000} for c in clips],
                                      "text": BAMBARA_SAMPLE[:3]})  # fmt: skip
    rows = score_hypotheses(asr, [["i ni ce", "i ni", "xyz"], [], ["a bɛ so kɔnɔ"]])
    assert rows["clip_id"] == [0, 0, 0, 2] and set(rows["kind"]) == {"policy"}
    for text, reference, score in zip(rows["text"], rows["reference"], rows["score"], strict=True):
        assert score == pytest.approx(100 * max(0.0, 1 - jiwer.cer(reference, text)))
    assert rows["score"][0] == 100.0 and rows["score"][1] == pytest.approx(100 * (1 - 3 / 7))
    with pytest.raises(ValueError, match="hypotheses for 2 clips but the dataset has 3"):
        score_hypotheses(asr, [[], []])


def test_eval_reward_cli_writes_json_and_png(straight_run, tmp_path, capsys):
    data, out, _ = straight_run
    code = cli_main(
        [
            "eval-reward",
            "--model",
            str(out),
            "--dataset",
            str(data),
            "--split",
            "train",
            "--output_dir",
            str(tmp_path),
            "--batch_size",
            "16",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "eval_train_metrics.json").read_text())
    assert metrics["n"] == 60 and metrics["mismatch_clips"] == 20 and 0 <= metrics["mismatch_auroc"] <= 1
    assert (tmp_path / "eval_train.png").stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mse"] == metrics["mse"]
    assert cli_main(["eval-reward", "--model", str(out), "--dataset", str(data), "--split", "nope"]) == 2


def test_eval_reward_on_the_demo_builds_the_recipes_rows(straight_run, tmp_path, monkeypatch, capsys):
    """`rlnf eval-reward --dataset demo` asks the demo builder for the rows the reward recipe's YAML reports on
    (its policy samples included), for the evaluated split only; --demo_policies none: synthetic rows only."""
    import yaml
    from transformers import HfArgumentParser

    from rlnf.data import scorer_data
    from rlnf.trainers.reward_model_config import RewardModelTrainingArguments

    data, out, _ = straight_run
    rows = scorer_data.load_scorer_dataset(str(data))["train"]
    asked: list[dict] = []
    defaults = {k: v.default for k, v in inspect.signature(scorer_data.demo_scorer_dataset).parameters.items()}

    def fake_demo(**options):  # the real one synthesises the corpus and samples three policies (minutes)
        asked.append(options)
        return datasets.DatasetDict({"target_test": rows})

    monkeypatch.setattr(scorer_data, "demo_scorer_dataset", fake_demo)
    base = ["eval-reward", "--model", str(out), "--dataset", "demo", "--split", "target_test", "--no_plot"]
    assert cli_main([*base, "--output_dir", str(tmp_path / "a"), "--batch_size", "16"]) == 0
    yaml_path = Path(__file__).resolve().parents[1] / "recipes" / "reward_model_demo.yaml"
    (recipe_args,) = HfArgumentParser(RewardModelTrainingArguments).parse_yaml_file(yaml_path, allow_extra_keys=True)
    expected = scorer_data.demo_options(recipe_args)  # what the recipe's prepare_splits passes
    assert expected["policies"] == yaml.safe_load(yaml_path.read_text())["demo_policies"] != []
    assert {**defaults, **asked[-1]} == {**defaults, **expected, "seed": 0, "splits": ["target_test"]}
    metrics = json.loads((tmp_path / "a" / "eval_target_test_metrics.json").read_text())
    assert metrics["n"] == len(rows)
    assert "policy samples: ['demo', 'demo-ctc', 'demo-tdt']" in capsys.readouterr().err
    assert cli_main([*base, "--output_dir", str(tmp_path / "b"), "--demo_policies", "none"]) == 0
    assert asked[-1]["policies"] == [] and asked[-1]["splits"] == ["target_test"]
    assert cli_main([*base, "--demo_config", str(tmp_path / "missing.yaml")]) == 2
    assert "--demo_config" in capsys.readouterr().err


def test_augmentation_is_seeded_by_the_batch_and_used_for_training_only(tmp_path):
    from transformers import TrainingArguments

    from rlnf.trainers.audio_augmentation import ChannelAugmentation

    wave = sine_clip(1.0, 300, seed=0)
    assert np.array_equal(ChannelAugmentation(probability=0.0)(wave, np.random.default_rng(0)), wave)
    perturbed = ChannelAugmentation(probability=1.0)(wave, np.random.default_rng(0))
    assert perturbed.dtype == np.float32 and np.isfinite(perturbed).all() and perturbed.shape != wave.shape
    model, processor = tiny_reward_model(tmp_path / "t")
    clips = [{"array": sine_clip(0.8, 200 + 80 * c, seed=c), "sampling_rate": 16000} for c in range(2)]
    rows = [{"audio": clips[c], "text": BAMBARA_SAMPLE[k], "score": 50.0} for c, k in ((0, 1), (1, 2), (0, 3))]
    augmenting = RewardDataCollator(processor, dedupe_audio=True, augment=ChannelAugmentation(probability=1.0), seed=3)
    first, again = augmenting(rows), augmenting(rows)
    assert torch.equal(first["audio"], again["audio"]) and first["audio_index"].tolist() == [0, 1, 0]
    plain = RewardDataCollator(processor, dedupe_audio=True)
    assert first["audio"].shape != plain(rows)["audio"].shape  # speed-perturbed: other frame counts
    other_texts = augmenting([rows[0], rows[1], {**rows[2], "text": BAMBARA_SAMPLE[5]}])  # clip 0 in another batch
    assert not torch.equal(other_texts["audio_attention_mask"][0], first["audio_attention_mask"][0]) or not (
        torch.equal(other_texts["audio"][0], first["audio"][0])
    )
    dataset = datasets.Dataset.from_list(rows)
    args = TrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True,
                             remove_unused_columns=False, per_device_train_batch_size=3)  # fmt: skip
    trainer = RewardModelTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
                                 data_collator=plain, train_data_collator=augmenting, processor=processor)  # fmt: skip
    assert trainer.get_train_dataloader().collate_fn is augmenting
    assert trainer.get_eval_dataloader().collate_fn is plain


def test_a_training_budget_stops_the_run_with_an_evaluated_checkpoint(tmp_path):
    data = write_scorer_jsonl(tmp_path / "data", clips=8)
    out = tmp_path / "o"
    summary = load_recipe().main(["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "50",
                                  "--eval_steps", "25", "--save_steps", "25", "--max_train_minutes", "1e-9",
                                  "--test_split_size", "2", *TINY])  # fmt: skip
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and (out / "checkpoint-1").is_dir()  # stopped after the first step
    assert any("eval_pearson" in entry for entry in state["log_history"]) and summary["test"]["test_n"] == 6


def test_each_policy_is_reported_alone_and_a_held_out_policy_never_trains(monkeypatch):
    """Demo data with several policies: each policy's rows get their own figures (against scipy on exactly those
    rows), and `holdout_policy`'s samples are in the held-out splits only."""
    from scipy.stats import pearsonr

    import rlnf.data.demo_corpus as demo_corpus
    import rlnf.data.scorer_data as scorer_data
    from rlnf.data.synthetic import score_hypotheses
    from rlnf.trainers.reward_model_evaluation import _policy_metrics

    clips = [{"array": sine_clip(0.5, 200 + 40 * c, seed=c), "sampling_rate": 16000} for c in range(3)]
    split = datasets.Dataset.from_dict({"audio": clips, "text": BAMBARA_SAMPLE[:3]})
    corpus = {name: split for name in ("sft_train", "sft_validation", "test")}
    monkeypatch.setattr(demo_corpus, "load_demo_corpus", lambda cache_dir=None: corpus)

    def fake_rows(asr, policy, *, temperature, **kwargs):  # each policy's "samples": its name, so rows are traceable
        return score_hypotheses(asr, [[policy]] * len(asr), kind=scorer_data.policy_kind(policy), rate=temperature)

    monkeypatch.setattr(scorer_data, "policy_scorer_rows", fake_rows)
    data = scorer_data.demo_scorer_dataset(
        policies=["demo", "demo-ctc"], holdout_policy="demo-ctc", policy_train_temperatures=[1.0, 1.5], cache_dir="x"
    )
    assert set(data["train"]["kind"]) >= {"policy:demo"} and "policy:demo-ctc" not in data["train"]["kind"]
    train_rates = [r for k, r in zip(data["train"]["kind"], data["train"]["rate"]) if k == "policy:demo"]
    assert sorted(train_rates) == [1.0] * 3 + [1.5] * 3  # training rows at every train temperature
    for name in ("test", "target_test"):
        assert data[name]["kind"].count("policy:demo-ctc") == 3 and data[name]["kind"].count("policy:demo") == 3
        assert {r for k, r in zip(data[name]["kind"], data[name]["rate"]) if k.startswith("policy")} == {1.0}
    with pytest.raises(ValueError, match="holdout_policy 'demo-tdt' is not one of"):
        scorer_data.demo_scorer_dataset(policies=["demo"], holdout_policy="demo-tdt", cache_dir="x")

    rng = np.random.default_rng(0)
    kinds = ["synthetic"] * 6 + ["policy:demo"] * 5 + ["policy:demo-ctc"] * 4
    details = {"predictions": rng.random(15), "labels": rng.random(15)}
    report = _policy_metrics(kinds, details)
    for prefix, rows in (("policy", slice(6, 15)), ("policy_demo", slice(6, 11)), ("policy_demo-ctc", slice(11, 15))):
        expected = pearsonr(details["predictions"][rows], details["labels"][rows])[0]
        assert report[f"{prefix}_pearson"] == pytest.approx(expected, abs=1e-12)
        assert report[f"{prefix}_n"] == rows.stop - rows.start
