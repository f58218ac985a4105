"""The recipes as a user drives them: flags over the demo YAML, LoRA from flags, own data with one split,
resume, model cards, the ASR pipeline, reference-free traps, GPU templates. Tiny settings (a tiny random
Whisper, a tiny reward model, a handful of clips written to tmp_path), each run a few seconds."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import TEXTS, synthetic_clip

from rlnf.policies.tiny_whisper import build_tiny_whisper

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


grpo_recipe = _load("grpo_asr")
sft_recipe = _load("sft_asr")


def grpo_flags(assets: dict[str, Path], output: Path, *extra: str) -> list[str]:
    """Tiny-run flags on top of the demo YAML (which stays the base: lr, beta, rewards ... come from it)."""
    return [
        "--model_name_or_path", str(assets["policy"]), "--reward_model_path", str(assets["reward"]),
        "--dataset_name", str(assets["csv"]), "--eval_split_size", "2", "--output_dir", str(output),
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
        "--max_completion_length", "6", "--eval_max_new_tokens", "6", "--logging_steps", "1",
        "--eval_strategy", "no", "--save_strategy", "no", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------- parsing
def parse_grpo(argv: list[str]):
    from trl import TrlParser

    from rlnf import ASRGRPOConfig
    from rlnf.recipe_support import ASRModelConfig, with_base_config

    parser = TrlParser((grpo_recipe.GRPOScriptArguments, ASRGRPOConfig, ASRModelConfig))
    return parser.parse_args_and_config(args=with_base_config(argv, grpo_recipe.DEMO_CONFIG))


def test_flags_override_the_demo_yaml_field_by_field() -> None:
    demo = yaml.safe_load(grpo_recipe.DEMO_CONFIG.read_text())
    script, args, model = parse_grpo(["--max_steps", "3"])
    assert args.max_steps == 3  # the flag
    assert args.learning_rate == demo["learning_rate"] != 1e-6  # TRL's default would be 1e-6
    assert args.output_dir == demo["output_dir"] and args.max_completion_length == demo["max_completion_length"]
    assert args.reward_weights == demo["reward_weights"] and script.reward_funcs == demo["reward_funcs"]
    assert script.dataset_train_split == demo["dataset_train_split"] and model.model_name_or_path == "demo"


def test_config_flag_chooses_another_base(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("learning_rate: 0.003\noutput_dir: elsewhere\nmax_steps: 7\n")
    for argv in (["--config", str(other)], [f"--config={other}"]):
        _, args, _ = parse_grpo([*argv, "--max_steps", "9"])
        assert (args.learning_rate, args.output_dir, args.max_steps) == (0.003, "elsewhere", 9)
        assert not args.use_cpu  # the demo's use_cpu does not leak into another base


def test_lora_from_flags_has_no_task_type() -> None:
    from trl import get_peft_config

    _, _, model = parse_grpo(["--use_peft", "--lora_target_modules", "q_proj", "v_proj", "--lora_r", "4"])
    peft = get_peft_config(model)
    assert peft.task_type is None and set(peft.target_modules) == {"q_proj", "v_proj"} and peft.r == 4
    _, _, model = parse_grpo(["--use_peft", "--lora_task_type", "SEQ_2_SEQ_LM"])
    assert get_peft_config(model).task_type == "SEQ_2_SEQ_LM"  # an explicit choice is kept (and refused later)


def test_resume_argument() -> None:
    from rlnf.recipe_support import resume_argument

    assert resume_argument("true") is True and resume_argument("True") is True
    assert resume_argument("false") is None and resume_argument(None) is None
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        resume_argument("outputs/not-there/checkpoint-5")


def _assert_pipeline_matches_greedy(folder: Path, assets: dict[str, Path]) -> None:
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    from rlnf.audio import load_audio
    from rlnf.policies.asr_pipeline import pipeline_ready
    from rlnf.policies.whisper import transcribe

    model, processor = AutoModelForSpeechSeq2Seq.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    assert pipeline_ready(processor.tokenizer)
    clips = [load_audio(assets["root"] / "clips" / f"c{i}.wav") for i in range(3)]
    greedy = transcribe(model, processor, clips, max_new_tokens=20)
    asr = pipeline("automatic-speech-recognition", model=str(folder))
    kwargs = {"num_beams": 1, "max_new_tokens": 20}
    assert [asr({"raw": c, "sampling_rate": 16000}, generate_kwargs=kwargs)["text"] for c in clips] == greedy


# ----------------------------------------------------------------------------------------------- GRPO runs
def test_grpo_lora_from_flags_on_own_csv_with_one_split(assets, tmp_path: Path, caplog) -> None:
    out = tmp_path / "lora"
    with caplog.at_level(logging.WARNING, logger="rlnf.data.loading"):
        results = grpo_recipe.main(grpo_flags(assets, out, "--use_peft", "--lora_target_modules", "q_proj", "v_proj",
                                              "--lora_r", "4"))  # fmt: skip
    assert results["global_steps"] == 2
    assert "held out 2 of the 8 rows of 'train' by clip" in caplog.text  # the CSV has no 'test' split
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] is None
    _assert_pipeline_matches_greedy(out / "merged", assets)  # the merged copy is a plain, pipeline-ready checkpoint
    card = (out / "README.md").read_text()
    assert "rlnf transcribe clip.wav other.flac --model PATH_OR_HUB_ID/merged" in card  # what loads: merged/
    assert 'pipeline("automatic-speech-recognition", model="PATH_OR_HUB_ID/merged")' in card
    assert "pipeline_tag: automatic-speech-recognition" in card and "text-generation" not in card
    assert "`reward_model` (weight 1), `wer` (weight 1)" in card  # the demo YAML's weights survived the flags
    assert "evaluation split `2 clips held out of the training split (seed 0)`" in card


def test_grpo_full_run_card_pipeline_and_resume(assets, tmp_path: Path, caplog) -> None:
    out = tmp_path / "full"
    first = grpo_recipe.main(grpo_flags(assets, out, "--save_strategy", "steps", "--save_steps", "2"))
    before = json.loads((out / "eval_before.json").read_text())
    assert first["eval_before"] == {k: before[k] for k in ("eval_wer", "eval_cer")}
    card = (out / "README.md").read_text()
    assert "| before training |" in card and "rlnf transcribe" in card and "## How to transcribe" in card
    assert f"| after training | {first['eval_after']['eval_wer']:.3f} |" in card
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation.get("do_sample") in (None, False) and generation["task"] == "transcribe"
    _assert_pipeline_matches_greedy(out, assets)  # from a policy whose special tokens came first

    # Resume: "before" is the run's stored one, not a new evaluation of whatever is loaded now.
    marker = {"eval_wer": 0.123, "eval_cer": 0.456, "eval_loss": None}
    (out / "eval_before.json").write_text(json.dumps(marker))
    with caplog.at_level(logging.WARNING):
        resumed = grpo_recipe.main(grpo_flags(assets, out, "--resume_from_checkpoint", "true", "--max_steps", "3"))
    assert resumed["global_steps"] == 3
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text  # names the checkpoint it resumes
    assert resumed["eval_before"] == {"eval_wer": 0.123, "eval_cer": 0.456}
    assert json.loads((out / "results.json").read_text())["eval_before"]["eval_wer"] == 0.123


def test_grpo_reference_free_refuses_transcript_rewards_before_loading(assets, tmp_path: Path) -> None:
    """A reward that would score None on every completion is refused, in the recipe as in the trainer."""
    flags = grpo_flags(assets, tmp_path / "free", "--reference_column", "none", "--max_steps", "1")
    message = r"reward\(s\) \['wer'\] compare with a reference transcript.*need no transcript: \[.*'reward_model'"
    with pytest.raises(ValueError, match=message):
        grpo_recipe.main(flags)  # the demo YAML's reward_model + wer
    assert not (tmp_path / "free").exists()  # refused before anything was loaded or written
    results = grpo_recipe.main([*flags, "--reward_funcs", "reward_model", "--reward_weights", "1.0"])
    assert results["global_steps"] == 1


def test_grpo_logs_to_tensorboard_and_writes_the_completions_table(assets, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "logged"
    flags = grpo_flags(assets, out, "--report_to", "tensorboard", "--log_completions", "true", "--max_steps", "2")
    grpo_recipe.main(flags)
    events = sorted(out.glob("runs/*/events.out.tfevents.*"))  # the before-training evaluation opens one too
    assert events, sorted(p.relative_to(out) for p in out.rglob("*"))
    readers = [EventAccumulator(str(path)).Reload() for path in events]
    tags = set().union(*(set(r.Tags()["scalars"]) for r in readers))
    assert {"train/reward", "train/rewards/wer/mean", "train/rewards/reward_model/mean", "train/kl", "eval/wer"} <= tags
    logged = [e.value for r in readers if "train/reward" in r.Tags()["scalars"] for e in r.Scalars("train/reward")]
    assert len(logged) == 2  # logging_steps 1, two steps
    weights = {"reward_model": 1.0, "wer": 1.0}  # the demo YAML's
    tables = [pd.read_parquet(p) for p in sorted(out.glob("completions/completions_*.parquet"))]
    tables = [t for t in tables if len(t)]  # the before-training evaluation logs an empty one
    assert len(tables) == 2
    references = set(TEXTS)
    for table, reward in zip(tables, logged):
        assert list(table.columns) == ["step", "prompt", "completion", "reward_model", "wer", "reference", "advantage"]
        assert len(table) == 4 and set(table["reference"]) <= references  # one clip x 4 transcripts per step
        assert table["prompt"].nunique() == 1 and table["prompt"].iloc[0] in {f"c{i}.wav" for i in range(8)}
        clip = int(table["prompt"].iloc[0][1:-4])
        assert set(table["reference"]) == {TEXTS[clip % len(TEXTS)]}  # the clip id names the clip referenced
        total = sum(weights[name] * table[name] for name in weights)
        assert total.mean() == pytest.approx(reward, rel=1e-5)  # the logged reward is the table's weighted sum
        assert table["advantage"].sum() == pytest.approx(0.0, abs=1e-3)  # group-normalised within the clip


# ----------------------------------------------------------------------------------------------- SFT
def test_sft_on_own_csv_pipeline_ready_with_card(assets, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    results = sft_recipe.main([
        "--dataset_name", str(assets["csv"]), "--eval_split_size", "0.25", "--output_dir", str(out),
        "--max_steps", "3", "--per_device_train_batch_size", "4", "--tiny_d_model", "32", "--tiny_layers", "1",
        "--tiny_vocab_size", "300", "--tiny_window_seconds", "2", "--eval_max_new_tokens", "8", "--logging_steps", "1",
    ])  # fmt: skip
    assert (results["train_samples"], results["eval_samples"]) == (6, 2)
    assert results["global_steps"] == 3 and len(results["examples"]) == 2
    card = (out / "README.md").read_text()
    assert "supervised fine-tuning" in card and f"| after training | {results['after']['wer']:.3f} |" in card

    _assert_pipeline_matches_greedy(out, assets)


def test_sft_ctc_trains_with_ctc_loss_and_reloads(assets, tmp_path: Path) -> None:
    """`--tiny_architecture parakeet_ctc`: the model's own CTC loss goes down, and the saved policy reloads as a
    CTC model whose greedy WER on the held-out rows is the one the recipe reported."""
    from transformers import AutoProcessor, ParakeetForCTC

    from rlnf.policies.base import load_policy_model
    from rlnf.policies.tiny_ctc import demo_parakeet_ctc
    from rlnf.recipe_support import load_train_eval
    from rlnf.trainers.asr_eval import evaluate_asr

    out = tmp_path / "ctc"
    results = sft_recipe.main([
        "--config", str(RECIPES / "sft_asr_ctc_demo.yaml"), "--dataset_name", str(assets["csv"]),
        "--dataset_train_split", "train", "--dataset_test_split", "none", "--eval_split_size", "0.25",
        "--output_dir", str(out), "--max_steps", "12", "--warmup_steps", "0", "--per_device_train_batch_size", "6",
        "--logging_steps", "1", "--learning_rate", "0.003", "--save_strategy", "steps", "--save_steps", "12",
    ])  # fmt: skip
    state = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 12 and losses[-1] < losses[0]
    model, processor = load_policy_model(str(out)), AutoProcessor.from_pretrained(out)
    assert isinstance(model, ParakeetForCTC)
    assert not torch.equal(model.ctc_head.weight, demo_parakeet_ctc(seed=0)[0].ctc_head.weight)  # it trained
    script = sft_recipe.SFTScriptArguments(
        dataset_name=str(assets["csv"]), dataset_train_split="train", dataset_test_split="none", eval_split_size=0.25
    )
    _, held_out, _ = load_train_eval(script, audio_column="audio", text_column="text", seed=0)
    again = evaluate_asr(model, processor, held_out)
    assert again["hypotheses"] == [e["hypothesis"] for e in results["examples"]]  # the saved policy was evaluated
    assert again["wer"] == pytest.approx(results["after"]["wer"])


def test_demo_ctc_policy_is_shipped_and_transcribes() -> None:
    from transformers import AutoProcessor, ParakeetForCTC

    from rlnf.assets import resolve_model_path
    from rlnf.policies.base import load_policy_model

    path = Path(resolve_model_path("demo-ctc"))
    assert path.name == "demo-ctc-sft" and not (path / "training_args.bin").exists()  # no pickle shipped
    model = load_policy_model(str(path))
    assert isinstance(model, ParakeetForCTC) and sum(p.numel() for p in model.parameters()) < 1_000_000
    measured = json.loads((path / "sft_results.json").read_text())
    assert measured["after"]["wer"] < 0.2  # it learned the source domain (sft_validation)
    assert AutoProcessor.from_pretrained(path).tokenizer.pad_token == "<blank>"


# ----------------------------------------------------------------------------------------------- templates
TEMPLATES = sorted(RECIPES.glob("grpo_asr_whisper_*.yaml"))


def test_gpu_templates_exist() -> None:
    assert {t.name for t in TEMPLATES} >= {"grpo_asr_whisper_small.yaml", "grpo_asr_whisper_small_lora.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_gpu_template_parses_without_demo_leaks(template: Path) -> None:
    from dataclasses import fields

    from trl import get_peft_config

    from rlnf import ASRGRPOConfig
    from rlnf.recipe_support import ASRModelConfig

    raw = yaml.safe_load(template.read_text())
    known = {f.name for cls in (grpo_recipe.GRPOScriptArguments, ASRGRPOConfig, ASRModelConfig) for f in fields(cls)}
    assert set(raw) <= known, f"unknown keys {set(raw) - known}"
    assert "use_cpu" not in raw and raw["bf16"] is True and raw["model_name_or_path"].startswith("openai/whisper")
    assert raw["pad_features_to"] == "30s" and raw["task"] == "transcribe"
    script, args, model = parse_grpo(["--config", str(template), "--bf16", "false"])  # no bf16 on this CPU box
    assert not args.use_cpu and args.num_generations == 8
    peft = get_peft_config(model)
    if "lora" in template.name:
        assert peft is not None and peft.task_type is None and "proj_out" not in peft.target_modules
    else:
        assert peft is None


def test_pipeline_fix_on_a_tiny_model_with_the_same_vocab_property(tmp_path: Path) -> None:
    from transformers import pipeline

    from rlnf.policies.asr_pipeline import pipeline_ready, prepare_for_asr_pipeline
    from rlnf.policies.whisper import transcribe

    model, processor = build_tiny_whisper(TEXTS * 4, d_model=32, layers=1, heads=2, vocab_size=300,
                                          max_source_positions=50, max_target_positions=32, seed=3)  # fmt: skip
    no_ts = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert not pipeline_ready(processor.tokenizer) and no_ts < len(processor.tokenizer) - 1  # the demo's defect
    clips = [synthetic_clip(1.0, 200.0 + 50 * i, seed=i) for i in range(3)]
    greedy = transcribe(model, processor, clips, max_new_tokens=12)
    before = tmp_path / "before"
    model.save_pretrained(before)
    processor.save_pretrained(before)
    broken = pipeline("automatic-speech-recognition", model=str(before))
    assert [broken({"raw": c, "sampling_rate": 16000})["text"] for c in clips] != greedy

    ids = processor.tokenizer("i ni ce").input_ids
    model, processor = prepare_for_asr_pipeline(model, processor)
    assert pipeline_ready(processor.tokenizer)
    assert processor.tokenizer.convert_ids_to_tokens(len(processor.tokenizer) - 1) == "<|notimestamps|>"
    moved = processor.tokenizer("i ni ce").input_ids
    assert len(moved) == len(ids) and processor.tokenizer.decode(moved, skip_special_tokens=True) == "i ni ce"
    assert transcribe(model, processor, clips, max_new_tokens=12) == greedy  # the same function, renumbered
    after = tmp_path / "after"
    model.save_pretrained(after)
    processor.save_pretrained(after)
    asr = pipeline("automatic-speech-recognition", model=str(after))
    greedy_kwargs = {"num_beams": 1, "max_new_tokens": 12}
    assert [asr({"raw": c, "sampling_rate": 16000}, generate_kwargs=greedy_kwargs)["text"] for c in clips] == greedy
    assert all(greedy)


def test_shipped_demo_policy_works_in_the_asr_pipeline_and_transcribe(assets, capsys) -> None:
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    from rlnf.assets import resolve_model_path
    from rlnf.audio import load_audio
    from rlnf.cli import main as cli
    from rlnf.policies.asr_pipeline import pipeline_ready
    from rlnf.policies.whisper import transcribe

    path = resolve_model_path("demo")
    model, processor = AutoModelForSpeechSeq2Seq.from_pretrained(path), AutoProcessor.from_pretrained(path)
    assert pipeline_ready(processor.tokenizer)
    files = [assets["root"] / "clips" / f"c{i}.wav" for i in (0, 5)]
    greedy = transcribe(model, processor, [load_audio(f) for f in files], max_new_tokens=40)
    asr = pipeline("automatic-speech-recognition", model=path)
    kwargs = {"num_beams": 1, "max_new_tokens": 40}
    assert [
        asr({"raw": load_audio(f), "sampling_rate": 16000}, generate_kwargs=kwargs)["text"] for f in files
    ] == greedy
    assert asr({"raw": load_audio(files[0]), "sampling_rate": 16000})["text"].strip()  # beam search: not ''

    assert cli(["transcribe", *map(str, files), "--model", "demo", "--max_new_tokens", "40"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{f}\t{t}" for f, t in zip(files, greedy)]
    assert cli(["transcribe", str(files[0]), "--model", "no-org/no-model"]) == 2
    assert "HF_HUB_OFFLINE is set and 'no-org/no-model' is not in the Hugging Face cache" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- model paths
def test_resolve_model_path(tmp_path: Path, monkeypatch) -> None:
    import time

    import rlnf.assets as assets_module
    from rlnf.assets import ModelNotAvailableError, resolve_model_path

    assert Path(resolve_model_path("demo")).name == "demo-whisper-sft"
    assert Path(resolve_model_path("demo", "reward_model")).name == "demo-reward-model"
    saved = tmp_path / "saved"
    saved.mkdir()
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        resolve_model_path(saved)
    (saved / "config.json").write_text("{}")
    assert resolve_model_path(saved) == str(saved)
    with pytest.raises(ModelNotAvailableError, match="no such model folder"):
        resolve_model_path("./outputs/not-there")
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE is set and 'org/model' is not in the"):
        resolve_model_path("org/model")  # conftest sets HF_HUB_OFFLINE=1
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(assets_module, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelNotAvailableError, match="--reward_model_path org/model: the Hugging Face hub cannot be"):
        resolve_model_path("org/model", "reward_model", option="--reward_model_path")
    assert time.monotonic() - start < 5  # not minutes of retries
    monkeypatch.setattr(assets_module, "hub_reachable", lambda timeout=3.0: True)
    assert resolve_model_path("org/model") == "org/model"  # online: left to transformers


# ----------------------------------------------------------------------------------------------- own data
def _audiofolder(root: Path) -> Path:
    for split, count in (("train", 3), ("test", 2)):
        folder = root / split
        folder.mkdir(parents=True)
        lines = ["file_name,text"]
        for i in range(count):
            sf.write(folder / f"{split}{i}.flac", synthetic_clip(0.5, 200.0 + 30 * i, seed=i), 16000)
            lines.append(f"{split}{i}.flac,{TEXTS[i]}")
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_audiofolder_without_torchcodec_reads_the_same_rows(tmp_path: Path, monkeypatch) -> None:
    from rlnf.audio import load_audio
    from rlnf.data import loading

    folder = _audiofolder(tmp_path / "af")
    monkeypatch.setattr(loading, "torchcodec_usable", lambda: False)
    plain = loading.load_asr_dataset(str(folder))
    assert {k: len(v) for k, v in plain.items()} == {"train": 3, "test": 2}
    assert list(plain["test"]["text"]) == TEXTS[:2]
    for split in ("train", "test"):
        for i, item in enumerate(plain[split]["audio"]):
            expected = synthetic_clip(0.5, 200.0 + 30 * i, seed=i)
            np.testing.assert_allclose(load_audio(item), expected, atol=1e-4)  # FLAC is lossless (16-bit)
    monkeypatch.undo()
    if loading.torchcodec_usable():  # datasets' audiofolder gives the same rows
        stock = loading.load_asr_dataset(str(folder))
        assert list(stock["test"]["text"]) == list(plain["test"]["text"])
        assert [Path(a["path"]).name for a in stock["train"]["audio"]] == [
            Path(p).name for p in plain["train"]["audio"]
        ]


def test_missing_torchcodec_is_one_line_saying_what_to_install(tmp_path: Path, monkeypatch) -> None:
    import datasets

    from rlnf.data import loading

    def generation_fails(*_args, **_kwargs):
        try:
            raise ImportError("To support encoding audio data, please install 'torchcodec'.")
        except ImportError as error:
            raise datasets.exceptions.DatasetGenerationError("An error occurred") from error

    monkeypatch.setattr(datasets, "load_dataset", generation_fails)
    with pytest.raises(ImportError) as caught:
        loading.load_asr_dataset("some-org/some-audio-dataset")
    message = str(caught.value)
    assert message.startswith("dataset 'some-org/some-audio-dataset': decoding audio inside datasets needs torchcodec")
    assert "apt-get install ffmpeg" in message and "pip install 'rlnf[audio]'" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hold_out_by_clip_keeps_every_row_of_a_clip_together() -> None:
    from datasets import Dataset

    from rlnf.data.loading import hold_out_by_clip, train_eval_splits

    clips = [f"/data/c{i // 2}.wav" for i in range(20)]  # 10 clips, two transcripts each
    data = Dataset.from_dict({"audio": clips, "text": [f"t{i}" for i in range(20)]})
    train, held = hold_out_by_clip(data, 0.3, seed=1)
    assert (len(train), len(held)) == (14, 6)
    assert not set(train["audio"]) & set(held["audio"])
    assert sorted([*train["text"], *held["text"]]) == sorted(data["text"])
    again, _ = hold_out_by_clip(data, "3", seed=1)
    assert list(again["text"]) == list(train["text"])  # seeded: a fraction and a count of the same size agree
    assert list(hold_out_by_clip(data, 3, seed=2)[1]["audio"]) != list(held["audio"])
    for bad, match in ((0, "fraction in"), (10, "nothing would be left"), (2.5, "whole number")):
        with pytest.raises(ValueError, match=match):
            hold_out_by_clip(data, bad)
    from datasets import DatasetDict

    with pytest.raises(ValueError, match=r"no split 'rl_train' \(--dataset_train_split\); its splits are"):
        train_eval_splits(DatasetDict({"a": data, "b": data}), "rl_train", "test")
    tr, ev = train_eval_splits(DatasetDict({"a": data, "b": data.select(range(4))}), "a", "b")
    assert (len(tr), len(ev)) == (20, 4)


def test_split_names_from_the_yaml_adapt_but_names_the_user_gave_must_exist() -> None:
    from datasets import Dataset, DatasetDict

    from rlnf.data.loading import train_eval_splits

    data = Dataset.from_dict({"audio": [f"/d/c{i}.wav" for i in range(10)], "text": ["t"] * 10})
    both = DatasetDict({"train": data, "test": data.select(range(3))})
    tr, ev = train_eval_splits(both, "rl_train", "test")  # the demo YAML's names on a train/test audiofolder
    assert (len(tr), len(ev)) == (10, 3)
    with pytest.raises(ValueError, match=r"no split 'rl_train' \(--dataset_train_split\); its splits are"):
        train_eval_splits(both, "rl_train", "test", named={"dataset_train_split"})
    with pytest.raises(ValueError, match=r"no split 'tset' \(--dataset_test_split\); its splits are \['train', "
                       r"'test'\]. Name one, or pass --dataset_test_split none"):  # fmt: skip
        train_eval_splits(both, "train", "tset", named={"dataset_test_split"})
    tr, ev = train_eval_splits(both, "train", "tset", eval_size=2)  # the YAML's name: held out of train
    assert (len(tr), len(ev)) == (8, 2)
    tr, ev = train_eval_splits(both, "train", "none", eval_size=2, named={"dataset_test_split"})
    assert (len(tr), len(ev)) == (8, 2)


def test_given_flags_are_the_command_lines_not_the_yamls() -> None:
    from rlnf.recipe_support import given_flags

    assert given_flags(["--dataset_test_split", "x", "--max-steps=3", "value", "-q"]) == {
        "dataset_test_split", "max_steps",
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------- plots, cards
def test_plot_says_why_the_wer_panel_is_empty() -> None:
    from rlnf.plotting import training_curves_figure

    history = [{"step": 1, "reward": 0.2}, {"step": 2, "reward": 0.4}]
    texts = [t.get_text() for t in training_curves_figure(history, why_no_wer="no references").axes[1].texts]
    assert texts == ["no held-out WER/CER:\nno references"]
    default = training_curves_figure(history).axes[1].texts[0].get_text()
    assert "no eval_wer / eval_cer in the log" in default
    full = training_curves_figure([*history, {"step": 2, "eval_wer": 0.5, "eval_cer": 0.3}])
    assert not full.axes[1].texts and [line.get_label() for line in full.axes[1].get_lines()] == [
        "eval_wer",
        "eval_cer",
    ]


def test_reward_model_card_in_the_published_shape(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from rlnf import RewardConfig
    from rlnf.model_cards import reward_model_card, save_card

    config = RewardConfig(vocab_size=2048, dropout=0.3)
    metrics = {"test_mse": 0.0767, "test_r2": 0.4268, "test_pearson": 0.6603, "test_accuracy@0.1": 0.33, "n": 5}
    path = save_card(reward_model_card(config, metrics=metrics, dataset="RobotsMali/transcription-scorer"), tmp_path)
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "tabular-regression" and card.data.datasets == ["RobotsMali/transcription-scorer"]
    sections = [line for line in card.text.splitlines() if line.startswith("#")]
    assert sections == [
        "# Reward model",
        "## Description",
        "## Model Overview",
        "### Audio Encoder",
        "### Text Encoder",
        "### Fusion & Regression Head",
        "## Objective",
        "## Example Usage",
        "## Evaluation Results",
    ]
    assert "Linear(384 -> 256) -> ReLU -> Dropout(0.3)" in card.text  # the published head, from the config
    assert "n_fft 1024, n_mels 80, hop_length 256" in card.text and "vocab_size 2048" in card.text
    assert "| MSE | 0.0767 |" in card.text and "| Accuracy (within 0.1) | 0.3300 |" in card.text


def test_asr_card_metadata_validates_and_keeps_local_paths_out(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from rlnf.model_cards import asr_model_card, save_card

    card = asr_model_card(method="GRPO", base_model="openai/whisper-small", dataset=str(tmp_path / "data.csv"),
                          eval_split="test", before={"eval_wer": 0.5, "eval_cer": 0.25},
                          after={"eval_wer": 0.4, "eval_cer": 0.2}, rewards=["reward_model", "wer"],
                          reward_weights=[0.5, 1.0], reward_model="RobotsMali/reward-model")  # fmt: skip
    loaded = ModelCard.load(save_card(card, tmp_path))
    assert loaded.data.base_model == "openai/whisper-small" and loaded.data.datasets is None  # a local CSV
    assert [(r.metric_type, r.metric_value) for r in loaded.data.eval_results] == [("wer", 0.4), ("cer", 0.2)]
    assert "| before training | 0.500 | 0.250 |" in loaded.text and "| after training | 0.400 | 0.200 |" in loaded.text
    assert "whisper" in loaded.data.tags and "reinforcement learning (GRPO" in loaded.text
    ppo = asr_model_card(method="PPO", base_model=None, dataset="demo", eval_split="test", before={}, after={},
                         model_type="parakeet_ctc")  # fmt: skip
    assert "parakeet_ctc" in ppo.data.tags and "whisper" not in ppo.data.tags
    assert "reinforcement learning (PPO, TRL + rlnf)" in ppo.text and "a tiny parakeet_ctc" in ppo.text


# ----------------------------------------------------------------------------------------------- GPU check
def test_gpu_check_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the check, not skip")
    env = {**os.environ, "PYTHON": sys.executable, "RLNF_WHEELS": str(tmp_path / "no-such-folder")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        "gpu_check: SKIP: no CUDA device here (torch.cuda.is_available() is False or torch is missing)"
    ]
    assert not (tmp_path / "no-such-folder").exists() and "pip" not in done.stdout + done.stderr


@pytest.mark.parametrize("trainer", ["rloo", "ppo"])
def test_trainer_flag_runs_rloo_and_ppo_from_their_demo_yaml(assets, tmp_path: Path, trainer: str) -> None:
    out = tmp_path / trainer
    flags = grpo_flags(assets, out, "--trainer", trainer, "--num_generations", "2")
    results = grpo_recipe.main(flags)
    assert results["global_steps"] == 2 and results["mean_reward_first_log"] is not None
    assert "eval_wer" in results["eval_after"] and (out / "model.safetensors").exists()
    with pytest.raises(ValueError, match="--trainer must be one of grpo, rloo, ppo, got 'dpo'"):
        grpo_recipe.main(grpo_flags(assets, out, "--trainer", "dpo"))


def test_grpo_recipe_trains_a_ctc_policy(assets, tmp_path: Path) -> None:
    from rlnf.policies.tiny_ctc import tiny_wav2vec2_ctc

    model, processor = tiny_wav2vec2_ctc()
    model.save_pretrained(tmp_path / "ctc")
    processor.save_pretrained(tmp_path / "ctc")
    out = tmp_path / "ctc-out"
    results = grpo_recipe.main(
        grpo_flags(
            assets, out, "--model_name_or_path", str(tmp_path / "ctc"), "--importance_sampling_level", "sequence"
        )
    )
    assert results["global_steps"] == 2 and results["eval_after"]["eval_cer"] is not None
    reloaded = type(model).from_pretrained(out)  # trained: the CTC head moved, the frozen conv front end did not
    assert not torch.equal(reloaded.lm_head.weight, model.lm_head.weight)
    front = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(reloaded.state_dict()[front], model.state_dict()[front])


def test_another_run_cannot_reuse_or_resume_a_folder_that_holds_a_different_run(assets, tmp_path: Path) -> None:
    """The trap: only --dataset_name changed, same output folder, --resume_from_checkpoint true; or the same file
    name with other rows; or other rewards or learning rate on resume."""
    out = tmp_path / "shared"
    first = grpo_recipe.main(grpo_flags(assets, out, "--save_strategy", "steps", "--save_steps", "2"))
    assert first["global_steps"] == 2 and (out / "checkpoint-2").is_dir()
    stamp = json.loads((out / "checkpoint-2" / "rlnf_run.json").read_text())  # the checkpoint knows its run
    assert stamp == json.loads((out / "rlnf_run.json").read_text()) and stamp["data"]["train"]["rows"] == 6
    saved = (out / "results.json").read_text()
    other_csv = assets["root"] / "other.csv"
    other_csv.write_text(assets["csv"].read_text(encoding="utf-8"), encoding="utf-8")  # same rows, another dataset
    flags = grpo_flags(assets, out, "--max_steps", "4")
    flags[flags.index("--dataset_name") + 1] = str(other_csv)
    with pytest.raises(
        ValueError, match=r"holds another run \(data: .*, dataset: '.*data.csv' there, '.*other.csv' now"
    ):
        grpo_recipe.main([*flags, "--resume_from_checkpoint", "true"])
    with pytest.raises(ValueError, match=r"holds another run \(.*\): pass another --output_dir"):
        grpo_recipe.main(flags)  # nor a fresh run
    resume = ["--max_steps", "4", "--resume_from_checkpoint", "true"]
    for changed in (["--learning_rate", "0.1"], ["--reward_weights", "1", "2"]):
        with pytest.raises(
            ValueError,
            match=r"holds another run \((learning_rate: 5e-05 there, 0.1 now|"
            r"reward_weights: \[1.0, 1.0\] there, \[1.0, 2.0\] now)\)\. A resumed run keeps",
        ):
            grpo_recipe.main(grpo_flags(assets, out, *resume, *changed))
    assert (out / "results.json").read_text() == saved and not (out / "checkpoint-4").exists()  # nothing mixed
    resumed = grpo_recipe.main(grpo_flags(assets, out, *resume, "--save_strategy", "no"))  # the same run resumes
    assert resumed["global_steps"] == 4
    with pytest.raises(ValueError, match=r"has no run to resume"):
        grpo_recipe.main(grpo_flags(assets, tmp_path / "empty", "--resume_from_checkpoint", "true"))


def test_a_fresh_run_never_starts_over_an_earlier_runs_checkpoints(assets, tmp_path: Path) -> None:
    """Otherwise a shorter second run leaves the first one's higher checkpoints, and a later resume takes them."""
    out = tmp_path / "again"
    save = ["--save_strategy", "steps", "--save_steps", "1"]
    grpo_recipe.main(grpo_flags(assets, out, *save, "--max_steps", "3"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]  # save_total_limit 2
    with pytest.raises(
        ValueError,
        match=r"already holds this run's checkpoints or results: pass "
        r"--resume_from_checkpoint true to continue it .*--overwrite_output_dir to start over",
    ):
        grpo_recipe.main(grpo_flags(assets, out, *save, "--max_steps", "1"))
    again = grpo_recipe.main(grpo_flags(assets, out, *save, "--max_steps", "1", "--overwrite_output_dir", "true"))
    assert again["global_steps"] == 1 and [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    resumed = grpo_recipe.main(grpo_flags(assets, out, "--max_steps", "2", "--resume_from_checkpoint", "true"))
    assert resumed["global_steps"] == 2  # from its own checkpoint-1, not the first run's checkpoint-3

    # a checkpoint of another run named by path: refused by its stamp
    other = tmp_path / "other"
    grpo_recipe.main(grpo_flags(assets, other, *save, "--max_steps", "1", "--learning_rate", "0.001"))
    with pytest.raises(ValueError, match=r"checkpoint-1: that checkpoint belongs to another run \(learning_rate"):
        grpo_recipe.main(grpo_flags(assets, out, "--max_steps", "3", "--resume_from_checkpoint",
                                    str(other / "checkpoint-1")))  # fmt: skip


def test_resume_refuses_the_same_file_name_with_other_rows(assets, tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    rows = [line.replace("clips/", f"{assets['root']}/clips/") for line in assets["csv"].read_text().splitlines()]
    mine.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "mine-out"
    flags = grpo_flags(assets, out, "--save_strategy", "steps", "--save_steps", "1", "--max_steps", "1")
    flags[flags.index("--dataset_name") + 1] = str(mine)
    grpo_recipe.main(flags)
    mine.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")  # one clip fewer, same file name
    with pytest.raises(
        ValueError, match=r"holds another run \(data: the training split changed \(6 rows there, 5 now\)"
    ):
        grpo_recipe.main([*flags, "--max_steps", "2", "--resume_from_checkpoint", "true"])


def test_a_failed_start_leaves_no_claim_on_the_folder(assets, tmp_path: Path) -> None:
    """Following an error's advice (here: add --reference_free) is not refused as "another run"."""
    out = tmp_path / "advice"
    flags = grpo_flags(assets, out)
    flags[flags.index("--dataset_name") + 1] = str(assets["root"] / "audio_only.csv")
    with pytest.raises(ValueError, match="pass --reference_free"):
        grpo_recipe.main(flags)
    assert not (out / "rlnf_run.json").exists()
    assert grpo_recipe.main([*flags, "--reference_free", "--max_steps", "1"])["global_steps"] == 1
