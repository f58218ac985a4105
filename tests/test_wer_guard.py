"""The guard against reward hacking: a watched held-out WER that rises while the reward rises stops the run, the
checkpoint of the lowest watched WER is what the run ends with, and a reference-free run never reads the RL
split's transcripts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import TEXTS, synthetic_clip
from datasets import Dataset
from safetensors.torch import load_file
from test_recipes import grpo_flags, grpo_recipe
from transformers import AutoProcessor, TrainerControl

from rlnf.assets import resolve_demo_path
from rlnf.data.loading import watch_split
from rlnf.policies.base import load_policy_model, transcribe
from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer
from rlnf.trainers.wer_guard import WATCH_WER, WERWatch, reference_free_notice


def feed(callback: WERWatch, rows: list[tuple[float, float]]) -> list[bool]:
    """Each (reward, wer): one logged reward, then one watch evaluation; whether training was told to stop."""
    stops = []
    for step, (reward, wer) in enumerate(rows, start=1):
        state, control = SimpleNamespace(global_step=step), TrainerControl()
        callback.on_log(None, state, control, logs={"reward": reward, "loss": 0.1})
        callback.on_evaluate(None, state, control, metrics={WATCH_WER: wer, "eval_watch_cer": 0.0})
        stops.append(control.should_training_stop)
    return stops


def test_stops_only_when_wer_rises_k_times_while_the_reward_rises():
    # WER down, then up twice while the reward climbs: stop at the 2nd rise, not before
    assert feed(WERWatch(patience=2), [(0.1, 0.5), (0.2, 0.4), (0.3, 0.45), (0.4, 0.5)]) == [False] * 3 + [True]
    # WER rises but so does nothing else: the reward fell (a bad stretch, not reward hacking)
    assert not any(feed(WERWatch(patience=2), [(0.4, 0.4), (0.3, 0.45), (0.2, 0.5)]))
    # one rise between two falls never counts as "in a row"
    assert not any(feed(WERWatch(patience=2), [(0.1, 0.5), (0.2, 0.6), (0.3, 0.55), (0.4, 0.6), (0.5, 0.58)]))
    # patience 0: watch and log only
    watch = WERWatch(patience=0)
    assert not any(feed(watch, [(0.1, 0.3), (0.2, 0.4), (0.3, 0.5), (0.4, 0.6)]))
    assert [row["wer"] for row in watch.history] == [0.3, 0.4, 0.5, 0.6]
    assert [row["reward"] for row in watch.history] == [0.1, 0.2, 0.3, 0.4]


def test_configuration_errors_name_what_is_missing(tmp_path):
    base = {"output_dir": str(tmp_path), "report_to": [], "use_cpu": True}
    with pytest.raises(ValueError, match="needs a labelled watch set: --wer_watch_split NAME"):
        ASRGRPOConfig(**base, stop_when_wer_rises=2)
    with pytest.raises(ValueError, match="either wer_watch_split"):
        ASRGRPOConfig(**base, wer_watch_split="dev", wer_watch_clips=4)
    args = ASRGRPOConfig(**base, wer_watch_clips=4, stop_when_wer_rises=2, eval_steps=3)
    assert args.eval_strategy == "steps" and args.save_steps == 3 and args.load_best_model_at_end
    assert args.metric_for_best_model == WATCH_WER and args.greater_is_better is False
    rows = Dataset.from_dict({"audio": [f"c{i}.wav" for i in range(6)], "text": ["a"] * 6})
    with pytest.raises(ValueError, match="'test' is the training or the test split"):
        watch_split(rows, split="test", load_split=lambda name: rows, forbidden=("rl_train", "test"))
    train, watch = watch_split(rows, clips=2, seed=0)
    assert len(train) == 4 and len(watch) == 2 and not set(train["audio"]) & set(watch["audio"])
    free = SimpleNamespace(reference_column=None, eval_reference_column="text")
    assert "--wer_watch_clips" in reference_free_notice(free, watching=False)
    assert reference_free_notice(free, watching=True) is None
    free.eval_reference_column = None
    assert "no held-out WER can be watched" in reference_free_notice(free, watching=False)
    assert reference_free_notice(free, watching=False, wer_off_said=True) is None


def test_a_run_gaming_its_reward_is_stopped_at_the_best_watched_checkpoint(tmp_path):
    """A reward for LONG transcripts (a learned reward gone wrong) on the shipped CTC policy, reference-free:
    transcripts grow, the reward climbs and the watched WER rises (tones, not speech: the watched references are
    the policy's own first transcripts, so every change it makes is an error). The run stops early, ends on the checkpoint
    with the lowest watched WER, and the rewards never see the RL split's transcripts."""
    path = resolve_demo_path("demo-ctc", "policy")
    model, processor = load_policy_model(path), AutoProcessor.from_pretrained(path)
    clips = [synthetic_clip(1.0 + 0.2 * i, 150.0 + 40 * i, seed=i) for i in range(8)]
    audio = [{"array": c, "sampling_rate": 16000} for c in clips]
    train = Dataset.from_list([{"audio": a, "text": TEXTS[i]} for i, a in enumerate(audio[:4])])
    # the watched references are what the policy says at the start (watched WER 0): any drift is an error
    watch = Dataset.from_dict({"audio": audio[4:], "text": transcribe(model, processor, audio[4:])})
    seen_columns: set[str] = set()

    def longer_is_better(completions, **kwargs):
        seen_columns.update(kwargs)
        return [float(len(text)) for text in completions]

    args = ASRGRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4, max_steps=30,
        learning_rate=3e-3, beta=0.0, logging_steps=1, eval_steps=2, per_device_eval_batch_size=4,
        reference_column=None, wer_watch_split="watch", stop_when_wer_rises=2, eval_sampled_rewards=False,
        report_to=[], use_cpu=True, seed=0, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = ASRGRPOTrainer(
        model=model, reward_funcs=[longer_is_better], args=args, train_dataset=train,
        eval_dataset={"watch": watch}, processing_class=processor,
    )  # fmt: skip
    trainer.train()
    watcher = next(c for c in trainer.callback_handler.callbacks if isinstance(c, WERWatch))
    history = watcher.history
    assert trainer.state.global_step < args.max_steps, history  # stopped early
    assert (
        history[-1]["wer"] > history[-2]["wer"] > history[-3]["wer"] and history[-1]["reward"] > history[-3]["reward"]
    )
    best = min(history, key=lambda row: row["wer"])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    saved = load_file(f"{trainer.state.best_model_checkpoint}/model.safetensors")
    current = trainer.model.state_dict()
    assert all(torch.equal(current[name], tensor) for name, tensor in saved.items())  # ended on the best one
    assert "text" not in seen_columns  # reference-free: the RL split's transcripts never reached a reward
    assert "text" not in trainer.train_dataset.column_names


def test_the_recipe_watches_carved_clips_and_reports_the_watch(assets, tmp_path, caplog):
    """`--wer_watch_clips` in the recipe: the clips leave the RL split, their WER is watched every eval_steps and
    results.json holds the watch beside the held-out before/after (evaluated on the test split, not the watch)."""
    flags = grpo_flags(
        assets, tmp_path / "watched", "--reference_column", "none", "--reward_funcs", "reward_model",
        "--reward_weights", "1.0", "--max_steps", "4", "--wer_watch_clips", "2", "--eval_steps", "2",
        "--per_device_eval_batch_size", "4", "--stop_when_wer_rises", "5",  # keeps the best checkpoint, never stops
    )  # fmt: skip
    results = grpo_recipe.main(flags)
    watch = results["wer_watch"]
    assert [row["step"] for row in watch["history"]] == [2, 4] and watch["stopped_early"] is False
    assert all(0 <= row["wer"] for row in watch["history"])
    assert set(results["eval_before"]) == {"eval_wer", "eval_cer"}  # the held-out split's, not eval_watch_*
    best = min(watch["history"], key=lambda row: row["wer"])  # ties: the first, as transformers keeps it
    assert watch["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    card = (tmp_path / "watched" / "README.md").read_text()
    assert (
        f"- Held-out WER watch: 2 checks; the saved policy is the checkpoint of step {best['step']} (watched WER "
        f"{best['wer']:.3f}), the lowest watched WER"
    ) in card  # the rollback is in the card, not only in results.json
    caplog.set_level("WARNING")
    grpo_recipe.main([*flags[:-10], "--max_steps", "1", "--output_dir", str(tmp_path / "unwatched")])
    assert any("--wer_watch_clips" in r.getMessage() for r in caplog.records)  # told how to watch


def test_the_watched_wer_is_drawn_beside_the_reward():
    from rlnf.plotting import training_curves_figure

    history = [{"step": 2, "reward": 0.1}, {"step": 2, "eval_watch_wer": 0.4}, {"step": 4, "eval_watch_wer": 0.5}]
    lines = training_curves_figure(history).axes[1].get_lines()
    assert [(line.get_label(), list(line.get_ydata())) for line in lines] == [("eval_watch_wer", [0.4, 0.5])]
