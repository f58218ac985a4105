"""GRPO for a speech-to-text policy with a learned reward and/or reference transcripts.

    accelerate launch recipes/grpo_asr.py                         # the embedded Bambara demo (CPU, minutes)
    accelerate launch recipes/grpo_asr.py --config recipes/grpo_asr_demo.yaml --max_steps 20
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml recipes/grpo_asr.py \
        --model_name_or_path my-org/whisper-small-bambara --dataset_name my-org/bambara-asr \
        --reward_funcs reward_model wer --reward_weights 1.0 0.5 --reward_model_path RobotsMali/reward-model

Evaluates greedy WER/CER on the test split before and after training, saves the policy and processor, and
writes `training_curves.png` and `results.json` next to the checkpoints. Runs as plain `python` too.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor  # noqa: E402
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config  # noqa: E402

from rlnf import ASRGRPOConfig, ASRGRPOTrainer, get_reward_funcs  # noqa: E402
from rlnf.assets import resolve_demo_path  # noqa: E402
from rlnf.data.loading import load_asr_dataset  # noqa: E402
from rlnf.plotting import plot_training_curves  # noqa: E402

DEMO_CONFIG = Path(__file__).with_name("grpo_asr_demo.yaml")


@dataclass
class GRPOScriptArguments(ScriptArguments):
    dataset_name: str | None = field(
        default="demo", metadata={"help": "'demo' (Bambara demo corpus), a hub id, a local folder or a CSV/JSONL file"}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["reward_model", "wer"],
        metadata={"help": "rewards by name: reward_model, wer, cer, repetition_penalty, empty_penalty"},
    )
    reward_model_path: str | None = field(
        default="demo", metadata={"help": "reward model folder or hub id ('demo': the shipped demo reward model)"}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "cap the evaluation split (faster runs)"})


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = TrlParser((GRPOScriptArguments, ASRGRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(args=argv or ["--config", str(DEMO_CONFIG)])
    model_path = resolve_demo_path(model_args.model_name_or_path or "demo", "policy")
    reward_model_path = resolve_demo_path(script_args.reward_model_path, "reward_model")

    data = load_asr_dataset(
        script_args.dataset_name, script_args.dataset_config,
        audio_column=training_args.audio_column, text_column=training_args.reference_column,
    )
    train = data[script_args.dataset_train_split]
    held_out = data[script_args.dataset_test_split]
    if script_args.max_eval_samples is not None:
        held_out = held_out.select(range(min(script_args.max_eval_samples, len(held_out))))

    model = AutoModelForSpeechSeq2Seq.from_pretrained(model_path, dtype=model_args.dtype or "auto")
    processor = AutoProcessor.from_pretrained(model_path)
    reward_funcs, reward_weights = get_reward_funcs(
        script_args.reward_funcs, weights=training_args.reward_weights, reward_model_path=reward_model_path,
        audio_column=training_args.audio_column, reference_column=training_args.reference_column,
    )
    training_args.reward_weights = reward_weights
    trainer = ASRGRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=training_args, train_dataset=train, eval_dataset=held_out,
        processing_class=processor, peft_config=get_peft_config(model_args),
    )
    before = trainer.evaluate()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    after = trainer.evaluate()
    trainer.save_model(training_args.output_dir)

    rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]
    results = {
        "eval_before": {k: before.get(k) for k in ("eval_wer", "eval_cer")},
        "eval_after": {k: after.get(k) for k in ("eval_wer", "eval_cer")},
        "mean_reward_first_log": rewards[0] if rewards else None,
        "mean_reward_last_log": rewards[-1] if rewards else None,
        "global_steps": trainer.state.global_step,
        "train_runtime_s": next((r["train_runtime"] for r in trainer.state.log_history if "train_runtime" in r), None),
    }
    if trainer.is_world_process_zero():
        processor.save_pretrained(training_args.output_dir)
        history = [{"step": 0, **before}, *trainer.state.log_history]  # train() starts a new log history
        plot_training_curves(history, Path(training_args.output_dir) / "training_curves.png")
        (Path(training_args.output_dir) / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return results


if __name__ == "__main__":
    main()
