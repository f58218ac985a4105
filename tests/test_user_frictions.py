"""A new user's second trial (issue 21): audio-only data in one flag, progress one can see, small-data warnings and
the smaller frictions (card wording, hints that do not apply, tensorboard, completions tables, tied weights).
Tiny settings: a tiny random Whisper, a tiny reward model, 8 clips in tmp_path; each recipe run a few seconds."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import warnings
from pathlib import Path

import pytest
from conftest import TEXTS, synthetic_clip

ROOT = Path(__file__).resolve().parents[1]


def _load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"frictions_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


grpo_recipe = _load_recipe("grpo_asr")
PENALTIES = "`reward_model` (weight 1), `repetition_penalty` (weight 1), `empty_penalty` (weight 1)"


def flags(assets: dict[str, Path], data: str, output: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(assets["policy"]), "--reward_model_path", str(assets["reward"]),
        "--dataset_name", str(assets["root"] / data), "--eval_split_size", "2", "--output_dir", str(output),
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
        "--max_completion_length", "6", "--eval_max_new_tokens", "6", "--logging_steps", "1",
        "--eval_strategy", "no", "--save_strategy", "no", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def parse(argv: list[str]):
    from trl import TrlParser

    from rlnf import ASRGRPOConfig
    from rlnf.recipe_support import ASRModelConfig, with_base_config

    parser = TrlParser((grpo_recipe.GRPOScriptArguments, ASRGRPOConfig, ASRModelConfig))
    return parser.parse_args_and_config(args=with_base_config(argv, grpo_recipe.DEMO_CONFIG))


# ----------------------------------------------------------------------------------------------- (a) audio only
def test_audio_only_data_trains_reference_free_with_one_flag(assets, tmp_path: Path, caplog, capsys) -> None:
    out = tmp_path / "audio-only"
    argv = flags(assets, "audio_only.csv", out, "--reference_free", "--eval_split_size", "1")
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = grpo_recipe.main(argv)  # the demo YAML's reward_model + wer, the demo's rl_train split name
    # the penalties judge the transcript alone here, as meant: no "applies to no completion" warning about it
    assert not [w for w in caught if "applies to no completion" in str(w.message)]
    assert results["global_steps"] == 2
    assert results["eval_before"] == {"eval_wer": None, "eval_cer": None}  # no transcripts to measure on
    messages = [r.getMessage() for r in caplog.records]
    said = [m for m in messages if "no held-out WER/CER is measured" in m]
    assert len(said) == 1 and "has no 'text' column" in said[0]  # one clear statement at start
    assert "nothing tells whether the learned reward's rise" in said[0]
    assert not [m for m in messages if "no held-out WER can be watched" in m]  # not said a second time
    assert any(
        "rewards reward_model (1), repetition_penalty (1), empty_penalty (1); wer dropped" in m for m in messages
    )
    assert any("has 1 clip: a WER on so few clips is noise" in m for m in messages)  # (c) tiny held-out set
    assert len([m for m in messages if m.startswith("no split 'rl_train' (--dataset_train_split)")]) == 1  # once

    card = (out / "README.md").read_text()
    rewards = next(line for line in card.splitlines() if line.startswith("- Rewards:"))
    assert rewards == f"- Rewards: {PENALTIES}"  # only the rewards that applied: no `wer`
    assert "none used in training (reference-free" in card and "Not measured: the evaluation split has no" in card
    assert "training split `train`" in card and "rl_train" not in card  # the split trained on, not the YAML's
    assert "evaluation split `1 clip held out of the training split (seed 0)`" in card  # not "1 clips"
    run = json.loads((out / "rlnf_run.json").read_text())
    assert run["reward_funcs"] == ["reward_model", "repetition_penalty", "empty_penalty"]
    assert run["reference_column"] is None
    assert run["train_split"] == "train"  # the split trained on, as in the card: not the demo YAML's rl_train

    # (b) one compact console line per log, not transformers' whole dict
    stdout = capsys.readouterr().out
    assert "step 1/2 | loss " in stdout and "| reward " in stdout
    assert "'grad_norm'" not in stdout and "'completions/mean_length'" not in stdout


def test_audio_only_data_without_the_flag_names_the_flags(assets, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"has no column 'text' \(--reference_column\).*pass --reference_free"):
        grpo_recipe.main(flags(assets, "audio_only.csv", tmp_path / "refused"))


def test_reference_free_on_labelled_data_keeps_the_held_out_wer(assets, tmp_path: Path, capsys, monkeypatch) -> None:
    """The held-out split has transcripts: WER before and after, under a progress bar; --log_completions writes
    one table per logged training step (no empty step-0 table, no second copy of the last step)."""
    import pandas as pd

    from rlnf.trainers import console

    monkeypatch.setattr(console, "MAX_EPOCHS", 0)  # (c) every run here is "heavy repetition"
    out = tmp_path / "labelled"
    argv = flags(
        assets, "labelled.csv", out, "--reference_free", "--log_completions", "true", "--disable_tqdm", "false"
    )
    logging.getLogger("rlnf.trainers.console").addHandler(handler := _ListHandler())
    try:
        results = grpo_recipe.main(argv)
    finally:
        logging.getLogger("rlnf.trainers.console").removeHandler(handler)
    assert isinstance(results["eval_before"]["eval_wer"], float) and isinstance(
        results["eval_after"]["eval_wer"], float
    )
    card = (out / "README.md").read_text()
    assert f"- Rewards: {PENALTIES}" in card and "| after training |" in card
    captured = capsys.readouterr()
    assert "greedy WER/CER" in captured.err  # the before/after evaluations' progress bar
    tables = sorted(out.glob("completions/completions_*.parquet"))
    assert [p.name for p in tables] == ["completions_00001.parquet", "completions_00002.parquet"]
    assert all(len(pd.read_parquet(p)) for p in tables)
    printed = [line for line in captured.out.splitlines() if " Step " in line]
    assert len(printed) == 2 and "Step 1" in printed[0] and "Step 2" in printed[1]
    assert any("epochs over 6 training clips (2 steps)" in m for m in handler.messages)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_held_out_split_without_transcripts_suggests_the_flags(assets, tmp_path: Path) -> None:
    """Labelled training split, audio-only test split: without --reference_free the error says what to pass;
    with it, no WER (eval_reference_column None)."""
    from datasets import Dataset, DatasetDict

    from rlnf.recipe_support import apply_reference_free, load_rl_train_eval

    paths = [str(assets["root"] / "clips" / f"c{i}.wav") for i in range(8)]
    data = DatasetDict({
        "train": Dataset.from_dict({"audio": paths[:6], "text": [TEXTS[i % 4] for i in range(6)]}),
        "test": Dataset.from_dict({"audio": paths[6:]}),
    })  # fmt: skip
    data.save_to_disk(tmp_path / "mixed")
    base = ["--dataset_name", str(tmp_path / "mixed"), "--dataset_train_split", "train"]
    script, args, _ = parse(base)
    with pytest.raises(ValueError, match=r"no column 'text' \(--eval_reference_column\).*--eval_reference_column none"):
        load_rl_train_eval(script, args)
    script, args, _ = parse([*base, "--reference_free"])
    apply_reference_free(script, args)
    train, held_out, name = load_rl_train_eval(script, args)
    assert (len(train), len(held_out), name) == (6, 2, "test")
    assert args.reference_column is None and args.eval_reference_column is None
    assert script.reward_funcs == ["reward_model", "repetition_penalty", "empty_penalty"]
    assert args.reward_weights == [1.0, 1.0, 1.0]


def test_reference_free_needs_a_reward_that_scores_transcripts() -> None:
    from rlnf.rewards.registry import reference_free_rewards

    assert reference_free_rewards(["reward_model", "cer", "empty_penalty"], [0.5, 2.0, 0.1]) == (
        ["reward_model", "empty_penalty", "repetition_penalty"], [0.5, 0.1, 1.0], ["cer"]
    )  # fmt: skip
    with pytest.raises(ValueError, match="leaves no reward that scores a transcript"):
        reference_free_rewards(["wer", "repetition_penalty"])


def test_card_lists_weight_zero_rewards_as_logged_only() -> None:
    from rlnf.model_cards import asr_model_card

    card = asr_model_card(method="GRPO", base_model=None, dataset="demo", eval_split="test", before={}, after={},
                          rewards=["reward_model", "wer"], reward_weights=[1.0, 0.0])  # fmt: skip
    assert "- Rewards: `reward_model` (weight 1); logged only (weight 0): `wer`" in card.text


# ----------------------------------------------------------------------------------------------- (b) progress
def test_compact_line_has_the_numbers_worth_reading() -> None:
    from rlnf.trainers.console import compact_line

    grpo = {"loss": 0.0123, "grad_norm": 1.5, "reward": 0.51234, "reward_std": 0.1, "kl": 0.00041, "epoch": 0.1}
    assert compact_line(grpo, 5, 750) == "step 5/750 | loss 0.0123 | reward 0.5123 | kl 0.00041"
    ppo = {"loss": 0.3, "objective/scores": 0.4, "objective/kl": 0.1, "loss/policy": 0.2}
    assert compact_line(ppo, 3, 10) == "step 3/10 | loss 0.3 | reward 0.4 | kl 0.1"
    assert compact_line({"eval_wer": 0.55, "eval_cer": 0.3, "eval_runtime": 3.0}, 0) == "step 0 | wer 0.55 | cer 0.3"
    assert compact_line({"eval_runtime": 0.1, "eval_samples_per_second": 9.0, "epoch": 0}, 0) is None  # nothing to say


def test_sampling_transcripts_shows_a_progress_bar(assets, capsys) -> None:
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    from rlnf.data.scorer_data import sample_transcripts

    model = WhisperForConditionalGeneration.from_pretrained(assets["policy"])
    processor = AutoProcessor.from_pretrained(assets["policy"])
    from transformers.utils import logging as hf_logging

    clips = [synthetic_clip(0.7, 200.0, seed=s) for s in range(3)]
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # global state another test (e.g. `rlnf score`) may have switched off
    try:
        samples = sample_transcripts(model, processor, clips, samples_per_clip=2, batch_size=2, max_new_tokens=4)
    finally:
        if not was_enabled:
            hf_logging.disable_progress_bar()
    assert len(samples) == 3
    err = capsys.readouterr().err
    assert "sampling transcripts" in err and "3/3" in err


def test_evaluate_asr_shows_a_progress_bar_and_the_same_numbers(assets, capsys) -> None:
    from datasets import Dataset
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    from rlnf.trainers.asr_eval import evaluate_asr

    model = WhisperForConditionalGeneration.from_pretrained(assets["policy"])
    processor = AutoProcessor.from_pretrained(assets["policy"])
    rows = Dataset.from_dict({"audio": [str(assets["root"] / "clips" / f"c{i}.wav") for i in range(5)],
                              "text": [TEXTS[i % 4] for i in range(5)]})  # fmt: skip
    shown = evaluate_asr(model, processor, rows, batch_size=2, max_new_tokens=4, progress=True)
    assert "greedy WER/CER" in capsys.readouterr().err
    quiet = evaluate_asr(model, processor, rows, batch_size=5, max_new_tokens=4, progress=False)
    assert "greedy WER/CER" not in capsys.readouterr().err
    assert shown["hypotheses"] == quiet["hypotheses"] and shown["wer"] == quiet["wer"]


def test_training_curves_have_loss_and_kl_panels_for_grpo_and_ppo() -> None:
    from rlnf.plotting import training_curves_figure

    def labels(figure, panel: int) -> list[str]:
        return [line.get_label() for line in figure.axes[panel].get_lines()]

    grpo = [{"step": 1, "loss": 0.1, "reward": 0.2, "kl": 0.01}, {"step": 2, "loss": 0.0, "reward": 0.3, "kl": 0.02}]
    figure = training_curves_figure(grpo)
    assert (labels(figure, 0), labels(figure, 2), labels(figure, 3)) == (["reward"], ["loss"], ["kl"])
    ppo = [{"step": 1, "loss": 0.3, "loss/policy": 0.1, "loss/value": 0.2, "objective/scores": 0.4,
            "objective/kl": 0.05}]  # fmt: skip
    figure = training_curves_figure(ppo)
    assert labels(figure, 0) == ["objective/scores"] and labels(figure, 3) == ["objective/kl"]
    assert labels(figure, 2) == ["loss", "loss/policy", "loss/value"]
    empty = training_curves_figure([{"step": 1, "reward": 0.2}])
    assert "beta = 0" in empty.axes[3].texts[0].get_text()  # an empty panel says why


# ----------------------------------------------------------------------------------------------- (c) small data
# ----------------------------------------------------------------------------------------------- (d) smaller list
def test_num_generations_1_gets_no_batch_multiple_hint(tmp_path: Path) -> None:
    from rlnf import ASRGRPOConfig

    with pytest.raises(ValueError, match="at least 2 generations") as error:
        ASRGRPOConfig(output_dir=str(tmp_path), num_generations=1, per_device_train_batch_size=4, use_cpu=True)
    assert "multiple of num_generations" not in str(error.value)
    with pytest.raises(ValueError, match="multiple of num_generations"):  # where it applies, the hint stays
        ASRGRPOConfig(output_dir=str(tmp_path), num_generations=3, per_device_train_batch_size=4, use_cpu=True)


def test_report_to_tensorboard_without_the_package_says_what_to_install(assets, tmp_path, monkeypatch) -> None:
    for module in ("tensorboard", "tensorboardX"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"`pip install tensorboard`"):
        grpo_recipe.main(flags(assets, "labelled.csv", tmp_path / "tb", "--report_to", "tensorboard"))


def test_resume_does_not_warn_about_a_tied_weight(assets) -> None:
    """Saving drops Whisper's ``proj_out.weight`` (the token embedding, tied); loading that checkpoint must not warn
    it "missing". A missing weight that is not tied still warns."""
    from transformers import Trainer, WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from rlnf.trainers.speech import SpeechTrainerMixin

    class Loader(SpeechTrainerMixin, Trainer):
        pass

    model = WhisperForConditionalGeneration.from_pretrained(assets["policy"])
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight
    loader = object.__new__(Loader)
    loader.model = model
    weights = model.state_dict()
    handler = _ListHandler()
    hf_logging.get_logger("transformers.trainer").addHandler(handler)
    try:
        without = {k: v for k, v in weights.items() if k != "proj_out.weight"}
        loader._issue_warnings_after_load(model.load_state_dict(without, False))
        assert handler.messages == []
        untied = "model.encoder.layer_norm.weight"
        without = {k: v for k, v in weights.items() if k != untied}
        loader._issue_warnings_after_load(model.load_state_dict(without, False))
        assert len(handler.messages) == 1 and untied in handler.messages[0] and "proj_out" not in handler.messages[0]
    finally:
        hf_logging.get_logger("transformers.trainer").removeHandler(handler)


WORLD_SCRIPT = """\
import json, os, sys
from transformers import TrainingArguments
args = TrainingArguments(output_dir=sys.argv[1], use_cpu=True, report_to="none")
print(json.dumps({"world": args.world_size, "rank": args.process_index, "launched": os.environ.get("WORLD_SIZE")}))
"""


def test_two_cpu_processes_as_docs_scaling_says(tmp_path: Path) -> None:
    """docs/scaling.md, accelerate 1.16 on a machine without GPUs: the 2-process config with ``use_cpu: true`` (the
    demo YAMLs') gives one world of 2 WITHOUT ``ACCELERATE_USE_CPU``; ``--num_processes 2`` without a config file
    starts a single process."""
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU-only launch behaviour")
    script = tmp_path / "world.py"
    script.write_text(WORLD_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    env["OMP_NUM_THREADS"] = "1"

    def launch(*options: str) -> list[dict]:
        command = [sys.executable, "-m", "accelerate.commands.launch", "-q", *options, str(script), str(tmp_path)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return sorted((json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")), key=str)

    config = str(ROOT / "accelerate_configs" / "cpu_2proc.yaml")
    assert launch("--config_file", config) == [
        {"world": 2, "rank": 0, "launched": "2"},
        {"world": 2, "rank": 1, "launched": "2"},
    ]
    assert launch("--num_processes", "2") == [{"world": 1, "rank": 0, "launched": None}]


# ----------------------------------------------------------------------------------------------- (d) one-line errors
@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.csv", r"dataset '.*missing.csv': no such file or folder"),
        ("", "empty.csv", r"dataset '.*empty.csv': the file is empty"),
        ("audio,text\n", "header.csv", r"dataset '.*header.csv' has no rows \(a header line only\?\)"),
        ('audio,text\n"unclosed\n', "broken.csv", r"dataset '.*broken.csv' cannot be read as CSV: "),
        (None, "someone/no-such-dataset", r"not a local file or folder, nor a hub dataset that could be loaded"),
    ],
)
def test_unreadable_data_is_one_user_error_naming_the_file(tmp_path: Path, content, name, message) -> None:
    from rlnf.data.loading import load_asr_dataset
    from rlnf.errors import is_user_error

    path = tmp_path / name if "/" not in name else name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises((ValueError, FileNotFoundError), match=message) as caught:
        load_asr_dataset(str(path))
    assert is_user_error(caught.value)  # `error: ...`, exit code 2, no traceback


def test_a_clip_too_short_for_the_reward_model_is_named_by_its_file(assets, tmp_path: Path) -> None:
    import soundfile as sf

    from rlnf.errors import is_user_error
    from rlnf.trainers.speech import RewardInputError

    sf.write(tmp_path / "blip.wav", synthetic_clip(0.04, 200.0, seed=1), 16000)  # 40 ms: under one 64 ms window
    rows = [f"{assets['root']}/clips/c{i}.wav,{TEXTS[i % len(TEXTS)]}" for i in range(6)]
    data = tmp_path / "short.csv"
    data.write_text("\n".join(["audio,text", f"{tmp_path}/blip.wav,{TEXTS[0]}", *rows]) + "\n", encoding="utf-8")
    argv = flags(assets, "unused", tmp_path / "out", "--dataset_test_split", "none", "--eval_split_size", "1",
                 "--max_steps", "1", "--seed", "1", "--shuffle_dataset", "false")  # fmt: skip
    argv[argv.index("--dataset_name") + 1] = str(data)
    with pytest.raises(RewardInputError, match=r"'reward_model' at global step \d: clip 'blip.wav' \(row \d+\): 40 ms "
                       r"of audio is too short for the reward model, which needs more than 64 ms") as caught:  # fmt: skip
        grpo_recipe.main(argv)
    assert is_user_error(caught.value)


def test_ctrl_c_ends_with_one_line_and_no_generic_card(assets, tmp_path: Path, monkeypatch) -> None:
    """The recipe does not leave TRL's generic card at its checkpoint saves; run_main turns Ctrl-C into one line."""
    import subprocess

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(grpo_recipe, "asr_model_card", interrupted)  # Ctrl-C once training and its saves are done
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        grpo_recipe.main(flags(assets, "data.csv", out, "--save_strategy", "steps", "--save_steps", "1"))
    assert (out / "checkpoint-2").is_dir() and not (out / "README.md").exists()

    script = "from rlnf.errors import run_main\ndef main():\n    raise KeyboardInterrupt\nrun_main(main)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "interrupted: a training run continues from its last saved checkpoint with --resume_from_checkpoint true "
        "(same flags otherwise)"
    ]


def test_an_error_line_is_not_drawn_over_by_an_open_progress_bar(capsys) -> None:
    from tqdm.auto import tqdm

    from rlnf.errors import report_user_error

    bar = tqdm(total=10, desc="steps")
    bar.update(3)
    report_user_error(ValueError("bad clip"))
    assert bar not in getattr(type(bar), "_instances", set())  # closed before the line: nothing redraws after it
    assert capsys.readouterr().err.rstrip().endswith("error: bad clip")


def test_naming_the_transcript_column_once_serves_training_and_the_held_out_wer(assets, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.csv"
    lines = assets["csv"].read_text(encoding="utf-8").splitlines()
    rows = [line.replace("clips/", f"{assets['root']}/clips/") for line in lines[1:]]
    renamed.write_text("\n".join(["audio,transcript", *rows]) + "\n", encoding="utf-8")
    argv = flags(assets, "unused", tmp_path / "out", "--reference_column", "transcript", "--max_steps", "1")
    argv[argv.index("--dataset_name") + 1] = str(renamed)
    results = grpo_recipe.main(argv)
    assert results["eval_before"]["eval_wer"] is not None and results["eval_after"]["eval_wer"] is not None
    with pytest.raises(ValueError, match=r"has no column 'text' \(--eval_reference_column\)"):  # named apart: kept
        grpo_recipe.main([*argv, "--eval_reference_column", "text", "--output_dir", str(tmp_path / "apart")])
