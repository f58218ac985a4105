"""Small frictions a new user met: flags the demo YAMLs set that do not fit one's own data, errors that did not name
the flag to change, shipped YAMLs by name, ``--no_X`` help, and the repetition warning's count."""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlnf import cli
from rlnf.launch import LaunchError, resolve_config

ROOT = Path(__file__).resolve().parents[1]
DEMO_REWARD_MODEL = ROOT / "rlnf" / "assets" / "demo-reward-model"


# ----------------------------------------------------------------------------------------------- train-reward
def test_train_reward_on_own_data_holds_out_the_default_share_not_the_demos_200(tmp_path: Path, caplog) -> None:
    recipe = importlib.import_module("rlnf.recipes.train_reward_model")
    own = ["--dataset_name", str(tmp_path / "scores.csv"), "--output_dir", str(tmp_path / "out")]
    with caplog.at_level(logging.INFO, logger="train_reward_model"):
        args, _ = recipe.parse_arguments(own)
    assert args.eval_split_size == 0.1
    assert "--eval_split_size" in caplog.text and "200" in caplog.text
    assert recipe.parse_arguments([*own, "--eval_split_size", "3"])[0].eval_split_size == 3  # given: kept
    assert recipe.parse_arguments(["--output_dir", str(tmp_path / "o")])[0].eval_split_size == 200  # the demo
    config = tmp_path / "mine.yaml"
    config.write_text("eval_split_size: 200\n")
    assert recipe.parse_arguments(["--config", str(config), *own])[0].eval_split_size == 200  # one's own YAML


# ----------------------------------------------------------------------------------------------- eval-reward
def test_eval_reward_uses_the_only_split_of_a_file_and_names_the_flag_otherwise(tmp_path: Path, capsys) -> None:
    from test_reward_training import write_scorer_jsonl

    data = write_scorer_jsonl(tmp_path / "data", clips=4)  # one split: train
    base = ["eval-reward", "--model", str(DEMO_REWARD_MODEL), "--dataset", str(data), "--no_plot"]
    assert cli.main([*base, "--output_dir", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "eval_train_metrics.json").read_text())["n"] == 12
    assert "evaluating split 'train', the only one" in capsys.readouterr().err
    assert cli.main([*base, "--split", "test"]) == 2  # asked for explicitly: not replaced
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line == f"rlnf eval-reward: error: {data} has no split 'test'; pass --split train"


def test_eval_reward_split_choice() -> None:
    assert cli._choose_split(["train", "test"], None, "d") == "test"
    assert cli._choose_split(["train", "test"], "train", "d") == "train"
    with pytest.raises(ValueError, match="no split 'test'; pass --split a or --split b"):
        cli._choose_split(["a", "b"], None, "d")


# ----------------------------------------------------------------------------------------------- --config by name
def test_config_names_a_shipped_yaml_without_a_checkout(tmp_path: Path, monkeypatch) -> None:
    import rlnf.recipes

    shipped = Path(rlnf.recipes.__file__).parent
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: only the installed package has the YAMLs
    for value in ("grpo_asr_ctc_demo.yaml", "grpo_asr_ctc_demo", "ctc_demo", "ctc_demo.yaml"):
        assert Path(resolve_config(value, "grpo_asr")) == shipped / "grpo_asr_ctc_demo.yaml"
    assert Path(resolve_config("ctc_demo", "sft_asr")) == shipped / "sft_asr_ctc_demo.yaml"
    (tmp_path / "ctc_demo").write_text("max_steps: 1\n")
    assert resolve_config("ctc_demo", "grpo_asr") == "ctc_demo"  # an existing file comes first
    for value in ("nope", "elsewhere/ctc_demo"):
        with pytest.raises(LaunchError, match=f"--config {value}: no such file.*grpo_asr_demo.yaml"):
            resolve_config(value, "grpo_asr")


def test_verb_passes_the_shipped_yaml_to_the_recipe(tmp_path: Path, monkeypatch) -> None:
    recipe = importlib.import_module("rlnf.recipes.grpo_asr")
    calls: list[list[str]] = []
    monkeypatch.setattr(recipe, "main", calls.append)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["rloo", "--config", "ctc_demo", "--max_steps", "1"]) == 0
    assert cli.main(["grpo", "--config=whisper_small_lora"]) == 0
    shipped = Path(recipe.__file__).parent
    assert calls[0] == ["--trainer", "rloo", "--config", str(shipped / "grpo_asr_ctc_demo.yaml"), "--max_steps", "1"]
    assert calls[1] == ["--trainer", "grpo", f"--config={shipped / 'grpo_asr_whisper_small_lora.yaml'}"]


# ----------------------------------------------------------------------------------------------- --no_X help
def test_no_flags_help_says_what_they_turn_off(capsys) -> None:
    original = argparse.ArgumentParser.format_help
    with pytest.raises(SystemExit):
        cli.main(["grpo", "--help"])
    lines = capsys.readouterr().out.splitlines()
    below = lines[next(i for i, line in enumerate(lines) if line.strip().startswith("--no_merge_lora")) + 1]
    assert below.strip() == "turn off --merge_lora"
    assert argparse.ArgumentParser.format_help is original  # argparse is left as it was


# ----------------------------------------------------------------------------------------------- repetitions
def simulated_passes(args, clips: int, max_steps: int, reuse: int) -> float:
    """Clip draws over ``max_steps`` as TRL's sampler and generation reuse make them, over the clip count: the
    sampler streams generation batches (a chunk of clips x num_generations, repeated steps_per_generation x reuse
    times); TRL generates on the first micro-step of each repetition block and trains on it for the rest."""
    from trl.trainer.utils import RepeatSampler

    generations, per_generation = args.num_generations, args.steps_per_generation
    sampler = RepeatSampler(range(clips), mini_repeat_count=generations, shuffle=True, seed=0,
                            batch_size=args.generation_batch_size // generations,
                            repeat_count=reuse * per_generation)  # fmt: skip
    stream = itertools.chain.from_iterable(sampler for _ in itertools.count())  # a new permutation each epoch
    draws = 0
    for micro_step in range(max_steps * args.gradient_accumulation_steps):
        batch = list(itertools.islice(stream, args.per_device_train_batch_size * per_generation))
        if micro_step % (per_generation * reuse) == 0:
            draws += len(set(batch))
    return draws / clips


SMALL_BATCHES = {"per_device_train_batch_size": 8, "num_generations": 4, "gradient_accumulation_steps": 2}


@pytest.mark.parametrize(
    ("kind", "fields", "reuse"),
    [
        ("grpo", {"per_device_train_batch_size": 32, "num_generations": 8, "max_steps": 750}, 1),  # the user's
        ("grpo", {**SMALL_BATCHES, "num_iterations": 2, "max_steps": 400}, 2),
        ("ppo", {**SMALL_BATCHES, "num_mini_batches": 2, "num_ppo_epochs": 2, "max_steps": 400}, 2),
    ],
)
def test_repetition_warning_counts_passes_over_the_clips(kind: str, fields: dict, reuse: int, tmp_path, caplog):
    from rlnf.trainers import ASRGRPOConfig
    from rlnf.trainers.console import RepetitionWarning
    from rlnf.trainers.ppo_config import ASRPPOConfig

    config = {"grpo": ASRGRPOConfig, "ppo": ASRPPOConfig}[kind]
    args = config(output_dir=str(tmp_path), use_cpu=True, report_to=[], **fields)
    expected = round(simulated_passes(args, 11, args.max_steps, reuse))
    assert expected == {750: 273, 400: 73}[args.max_steps]
    state = SimpleNamespace(is_world_process_zero=True, max_steps=args.max_steps)
    with caplog.at_level(logging.WARNING, logger="rlnf.trainers.console"):
        RepetitionWarning(11).on_train_begin(args, state, None)
        RepetitionWarning(11, max_epochs=expected).on_train_begin(args, state, None)  # at the limit: quiet
    assert [r.getMessage().split(" steps")[0] for r in caplog.records] == [
        f"{expected} epochs over 11 training clips ({args.max_steps}"
    ]


# ----------------------------------------------------------------------------------------------- sft
def test_sft_on_own_data_without_a_model_says_it_trains_the_tiny_random_one(caplog) -> None:
    recipe = importlib.import_module("rlnf.recipes.sft_asr")

    def warned(argv: list[str], **fields) -> list[str]:
        caplog.clear()
        script_args = recipe.SFTScriptArguments(**fields)
        with caplog.at_level(logging.WARNING, logger="sft_asr"):
            recipe.warn_tiny_model_on_own_data(script_args, argv)
        return [r.getMessage() for r in caplog.records]

    (line,) = warned([], dataset_name="mine.csv")
    assert line.startswith("no --model_name_or_path: training the demo's tiny whisper from random weights")
    assert warned([], dataset_name="demo") == []
    assert warned([], dataset_name="mine.csv", model_name_or_path="openai/whisper-small") == []
    assert warned(["--tiny_architecture", "parakeet_ctc"], dataset_name="mine.csv") == []  # asked for


def test_reward_data_split_size_error_names_the_flag() -> None:
    from datasets import Dataset

    from rlnf.data.scorer_data import ScorerDatasetError, _carve

    rows = Dataset.from_dict({"audio": [f"/d/c{i}.wav" for i in range(5)], "text": ["t"] * 5, "score": [0.5] * 5})
    with pytest.raises(
        ScorerDatasetError, match=r"^--eval_split_size 200: test_size=200 clips: need 1 <= test_size < 5"
    ):
        _carve(rows, "--eval_split_size", 200, seed=0, clip_column=None, audio_column="audio")
    parts = _carve(rows, "--eval_split_size", 2, seed=0, clip_column=None, audio_column="audio")
    assert (len(parts["train"]), len(parts["validation"])) == (3, 2)
