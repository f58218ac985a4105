"""GRPO for a speech-to-text policy with a learned reward and/or reference transcripts.

    accelerate launch -q recipes/grpo_asr.py                          # the embedded Bambara demo (CPU, minutes)
    accelerate launch -q recipes/grpo_asr.py --max_steps 20           # flags override the demo YAML, field by field
    accelerate launch -q recipes/grpo_asr.py --use_peft --lora_target_modules q_proj v_proj    # LoRA
    accelerate launch -q --config_file accelerate_configs/multi_gpu.yaml recipes/grpo_asr.py \
        --config recipes/grpo_asr_whisper_small.yaml --dataset_name my_data.csv --reward_model_path my-reward-model

`--config` chooses another base YAML (e.g. the GPU templates recipes/grpo_asr_whisper_small*.yaml). Evaluates
greedy WER/CER on the held-out split before and after training (carved out of the training split by clip when
the data has none), saves the policy, its processor and an ASR model card (README.md), and writes
`training_curves.png`, `eval_before.json` and `results.json` next to the checkpoints.
`--resume_from_checkpoint true` continues from the last checkpoint in --output_dir. Runs as plain `python` too.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import AutoProcessor  # noqa: E402
from trl import TrlParser, get_peft_config  # noqa: E402

from rlnf import get_reward_funcs  # noqa: E402
from rlnf.assets import resolve_model_path  # noqa: E402
from rlnf.data.loading import load_asr_dataset, watch_split  # noqa: E402
from rlnf.launch import check_world_size  # noqa: E402
from rlnf.model_cards import asr_model_card, save_card  # noqa: E402
from rlnf.plotting import plot_training_curves  # noqa: E402
from rlnf.policies.base import load_policy_model  # noqa: E402
from rlnf.recipe_support import (  # noqa: E402
    ASRModelConfig,
    ASRScriptArguments,
    apply_reference_free,
    finish_run,
    given_flags,
    load_rl_train_eval,
    log_into_output_dir,
    resume_argument,
    run_before,
    with_base_config,
    with_clip_ids,
)
from rlnf.rewards.registry import check_reference_free  # noqa: E402
from rlnf.run_identity import StampCheckpoints, claim_output_dir, data_identity  # noqa: E402
from rlnf.trainers.choice import demo_config, method_name, pop_trainer_choice, trainer_classes  # noqa: E402
from rlnf.trainers.wer_guard import WATCH, WERWatch, reference_free_notice  # noqa: E402

DEMO_CONFIG = Path(__file__).with_name("grpo_asr_demo.yaml")
logger = logging.getLogger("grpo_asr")
METRICS = ("eval_wer", "eval_cer")


@dataclass
class GRPOScriptArguments(ASRScriptArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["reward_model", "wer"],
        metadata={"help": "rewards by name: reward_model, wer, cer, repetition_penalty, empty_penalty"},
    )
    reward_model_path: str | None = field(
        default="demo", metadata={"help": "reward model folder or hub id ('demo': the shipped demo reward model)"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "start over in an --output_dir that holds a run: its checkpoints and results are deleted "
                  "(without it such a folder is refused; --resume_from_checkpoint true continues that run)"},
    )  # fmt: skip
    merge_lora: bool = field(
        default=True,
        metadata={"help": "with --use_peft, also save the merged model in OUTPUT_DIR/merged (a plain checkpoint for "
                  "the ASR pipeline and rlnf transcribe; the adapter stays in OUTPUT_DIR)"},
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    trainer_name, argv = pop_trainer_choice(argv)  # --trainer grpo|rloo|ppo: the config class sets the schema
    config_class, trainer_class = trainer_classes(trainer_name)
    parser = TrlParser((GRPOScriptArguments, config_class, ASRModelConfig))
    base = demo_config(trainer_name, DEMO_CONFIG.parent)
    script_args, args, model_args = parser.parse_args_and_config(args=with_base_config(argv, base))
    check_world_size(args.world_size)
    named = given_flags(argv)
    if "reference_column" in named and "eval_reference_column" not in named and args.reference_column is not None:
        args.eval_reference_column = args.reference_column  # one transcript column named: the held-out WER's too
    resume = resume_argument(args.resume_from_checkpoint)
    model_path = resolve_model_path(model_args.model_name_or_path)
    use_reward_model = "reward_model" in script_args.reward_funcs
    reward_model_path = (
        resolve_model_path(script_args.reward_model_path, "reward_model", option="--reward_model_path")
        if use_reward_model else None
    )  # fmt: skip
    apply_reference_free(script_args, args, main=args.process_index == 0)  # --reference_free: rewards without wer/cer
    check_reference_free(script_args.reward_funcs, args.reference_column)  # before anything is loaded
    eval_column = args.eval_reference_column
    train, held_out, held_out_name = load_rl_train_eval(script_args, args, named)  # may turn eval WER off: audio only
    train, watch = watch_split(
        train, clips=args.wer_watch_clips, split=args.wer_watch_split, seed=args.seed, audio_column=args.audio_column,
        load_split=lambda name: load_asr_dataset(script_args.dataset_name, script_args.dataset_config)[name],
        forbidden=(script_args.dataset_train_split, script_args.dataset_test_split),
    )  # fmt: skip
    wer_off_said = eval_column is not None and args.eval_reference_column is None  # load_rl_train_eval said it
    if (notice := reference_free_notice(args, watch is not None, wer_off_said)) and args.process_index == 0:
        logger.warning(notice)

    model = load_policy_model(model_path, dtype=model_args.dtype or "auto")  # Whisper or CTC
    processor = AutoProcessor.from_pretrained(model_path)
    reward_funcs, args.reward_weights = get_reward_funcs(
        script_args.reward_funcs, weights=args.reward_weights, reward_model_path=reward_model_path,
        audio_column=args.audio_column, reference_column=args.reference_column,
    )  # fmt: skip
    identity = {
        "recipe": "grpo_asr", "trainer": trainer_name, "model": model_args.model_name_or_path,
        "dataset": script_args.dataset_name, "dataset_config": script_args.dataset_config,
        "train_split": script_args.dataset_train_split, "data": data_identity(train, held_out),
        "reward_funcs": list(script_args.reward_funcs), "reward_weights": list(args.reward_weights),
        "reward_model": script_args.reward_model_path if use_reward_model else None,
        "reference_column": args.reference_column, "learning_rate": args.learning_rate,
    }  # fmt: skip
    # every input checked (a failed start leaves no claim): the folder is this run's, the checkpoint this run's
    resume = claim_output_dir(
        args.output_dir, identity, resume=resume, overwrite=script_args.overwrite_output_dir,
        main=args.process_index == 0,
    )  # fmt: skip
    trainer = trainer_class(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=with_clip_ids(train, args.audio_column),
        eval_dataset={WATCH: watch} if watch is not None else held_out,  # what is evaluated during training
        processing_class=processor, peft_config=get_peft_config(model_args), callbacks=[StampCheckpoints(identity)],
    )  # fmt: skip
    trainer.create_model_card = lambda *args, **kwargs: None  # not TRL's generic card at each save: rlnf's, at the end
    main_process = trainer.is_world_process_zero()
    log_into_output_dir(trainer)
    evaluate_held_out = (lambda: trainer.evaluate(held_out)) if watch is not None else trainer.evaluate
    before = run_before(args.output_dir, evaluate_held_out, resuming=bool(resume), main=main_process)
    if resume and main_process:  # say which checkpoint, checked to be this run's
        logger.warning("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    after = evaluate_held_out()  # with stop_when_wer_rises: the checkpoint of the lowest watch WER
    trainer.save_model(args.output_dir)

    log = trainer.state.log_history
    rewards = [
        row.get("reward", row.get("objective/scores")) for row in log if "reward" in row or "objective/scores" in row
    ]
    results = {
        "eval_before": {k: before.get(k) for k in METRICS},
        "eval_after": {k: after.get(k) for k in METRICS},
        "mean_reward_first_log": rewards[0] if rewards else None,
        "mean_reward_last_log": rewards[-1] if rewards else None,
        "global_steps": trainer.state.global_step,
        "train_runtime_s": next((r["train_runtime"] for r in log if "train_runtime" in r), None),
    }
    watcher = next((c for c in trainer.callback_handler.callbacks if isinstance(c, WERWatch)), None)
    if watcher is not None:  # the watched WER beside the reward, and where a stop left the run
        results["wer_watch"] = {
            "history": watcher.history, "stopped_early": watcher.stopped,
            "best_checkpoint": trainer.state.best_model_checkpoint,
        }  # fmt: skip
    if main_process:
        output, merged = Path(args.output_dir), None
        processor.save_pretrained(output)
        if (output / "config.json").exists():  # a full model (not a LoRA adapter): ready for the ASR pipeline
            trainer.policy.finish_saved_folder(output)
        elif script_args.merge_lora and hasattr(trainer.model, "merge_and_unload"):
            merged = "merged"  # the adapter stays in output; the card's transcription examples load this
            trainer.model.merge_and_unload().save_pretrained(output / merged)
            processor.save_pretrained(output / merged)
            trainer.policy.finish_saved_folder(output / merged)
        card = asr_model_card(
            method=method_name(trainer_name), base_model=model_args.model_name_or_path, dataset=script_args.dataset_name,
            train_split=script_args.dataset_train_split, eval_split=held_out_name,
            before=before, after=after, rewards=script_args.reward_funcs, reward_weights=args.reward_weights,
            reward_model=script_args.reward_model_path if use_reward_model else None, steps=trainer.state.global_step,
            model_type=model.config.model_type, reference_free=args.reference_column is None,
            watch=results.get("wer_watch"), merged_subfolder=merged,
        )  # fmt: skip
        save_card(card, output)
        no_wer = None if args.eval_reference_column else "eval_reference_column is None (no reference transcripts)"
        plot_training_curves([{"step": 0, **before}, *log], output / "training_curves.png", why_no_wer=no_wer)
    finish_run(trainer, args.output_dir, results, "results.json")
    return results


if __name__ == "__main__":
    from rlnf.errors import run_main

    run_main(main)  # rlnf's errors: one `error: ...` line, exit code 2; bugs keep their traceback
