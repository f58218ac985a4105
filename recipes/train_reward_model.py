"""Train an rlnf reward model (audio + transcript -> score in [0, 1]) with transformers' Trainer.

    python recipes/train_reward_model.py                                  # the demo YAML -> outputs/reward-model-demo
    python recipes/train_reward_model.py --max_steps 20 --output_dir outputs/try   # flags override the demo YAML
    python recipes/train_reward_model.py --config my.yaml --dataset_name my_scores.csv --score_scale 1
    accelerate launch -q recipes/train_reward_model.py --fusion_type late

The base YAML is recipes/reward_model_demo.yaml unless ``--config`` names another; flags override it. Its
``eval_split_size: 200`` (validation clips of the demo's thousands) is the demo's: on one's own data with the demo
YAML as base, the validation split is the default 0.1 of the training clips unless ``--eval_split_size`` is given
(said in one line). Options:
`rlnf.trainers.reward_model_config.RewardModelTrainingArguments` (data, tokenizer, export) and every
`RewardConfig` architecture field (``--fusion_type``, ``--alignment_dim``, ...). Every clip is decoded and every
split checked before training (`rlnf.data.scorer_data.prepare_splits`). Writes the model + processor,
``eval_results.json`` and ``test_metrics.json`` (test split and ``--report_splits``) to ``--output_dir``; the
shipped asset is written only with an explicit ``--export_dir``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from transformers import set_seed  # noqa: E402
from trl import TrlParser  # noqa: E402

from rlnf.data.scorer_data import clip_keys, prepare_splits  # noqa: E402
from rlnf.model_cards import reward_model_card, save_card  # noqa: E402
from rlnf.recipe_support import given_flags, resume_argument, with_base_config  # noqa: E402
from rlnf.trainers.audio_augmentation import ChannelAugmentation  # noqa: E402
from rlnf.trainers.console import use_compact_console  # noqa: E402
from rlnf.trainers.reward_model_config import (  # noqa: E402
    RewardModelTrainingArguments,
    reward_architecture_arguments,
    reward_config_kwargs,
)
from rlnf.trainers.reward_model_evaluation import report_splits  # noqa: E402
from rlnf.trainers.reward_model_metrics import compute_metrics  # noqa: E402
from rlnf.trainers.reward_model_trainer import (  # noqa: E402
    RewardDataCollator,
    RewardModelTrainer,
    WallClockLimit,
    build_processor,
    build_reward_model,
    export,
)

DEMO_CONFIG = Path(__file__).with_name("reward_model_demo.yaml")
logger = logging.getLogger("train_reward_model")


def parse_arguments(argv: list[str] | None = None) -> tuple[RewardModelTrainingArguments, Any]:
    """(training arguments, RewardConfig architecture fields): flags over the base YAML over defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith((".yaml", ".yml")):  # the old positional form: recipe.py config.yaml
        argv = ["--config", *argv]
    parser = TrlParser((RewardModelTrainingArguments, reward_architecture_arguments()))
    argv = with_base_config(argv, DEMO_CONFIG)
    args, architecture = parser.parse_args_and_config(args=argv)
    args.resume_from_checkpoint = resume_argument(args.resume_from_checkpoint)
    _own_data_split_size(args, argv)
    return args, architecture


def _own_data_split_size(args: RewardModelTrainingArguments, argv: list[str]) -> None:
    """The demo YAML's 200 validation clips would be all or most of a small dataset of one's own: there the
    default share applies unless --eval_split_size is given."""
    config = Path(argv[argv.index("--config") + 1])
    if args.dataset_name == "demo" or "eval_split_size" in given_flags(argv) or not config.samefile(DEMO_CONFIG):
        return
    default = RewardModelTrainingArguments.__dataclass_fields__["eval_split_size"].default
    if args.eval_split_size != default:
        logger.info("validation: %g of your training clips (--eval_split_size to change it; the demo YAML's %g is "
                    "the demo corpus's)", default, args.eval_split_size)  # fmt: skip
        args.eval_split_size = default


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, save model + processor to ``output_dir``, write ``eval_results.json`` / ``test_metrics.json``."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args, architecture = parse_arguments(argv)
    threads = torch.get_num_threads()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    try:
        return train(args, reward_config_kwargs(architecture))
    finally:
        torch.set_num_threads(threads)  # main() may run inside another program (tests, notebooks)


def train(args: RewardModelTrainingArguments, architecture: dict[str, Any]) -> dict[str, Any]:
    set_seed(args.seed)
    with args.main_process_first(desc="dataset preparation"):
        splits = prepare_splits(args)
    logger.info("rows per split: %s", {name: len(rows) for name, rows in splits.items()})
    processor = build_processor(args, splits["train"])
    set_seed(args.seed)  # the initial weights do not depend on how much randomness data prep used
    model = build_reward_model(args, processor, architecture)
    logger.info("model: %s fusion, %d parameters", model.config.fusion_type, model.num_parameters())
    columns = {"audio_column": args.audio_column, "text_column": args.text_column, "score_column": args.score_column}
    collator = RewardDataCollator(
        processor, args.score_scale, **columns, cache_audio_mb=args.cache_audio_mb, dedupe_audio=args.group_by_clip
    )
    augment = ChannelAugmentation(probability=args.augment_probability) if args.augment_audio else None
    train_collator = RewardDataCollator(
        processor, args.score_scale, **columns, dedupe_audio=args.group_by_clip, augment=augment, seed=args.seed
    )
    keys = clip_keys(splits["train"], clip_column=args.clip_column, audio_column=args.audio_column)
    trainer = RewardModelTrainer(
        model=model, args=args, train_dataset=splits["train"], eval_dataset=splits["validation"],
        data_collator=collator, compute_metrics=compute_metrics, processor=processor,
        train_clip_keys=keys if args.group_by_clip else None, train_data_collator=train_collator if augment else None,
        callbacks=[WallClockLimit(60 * args.max_train_minutes)] if args.max_train_minutes else None,
    )  # fmt: skip
    use_compact_console(trainer)  # one short line per log, as in the RL recipes
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    train_metrics = {**result.metrics, "train_wall_seconds": round(time.perf_counter() - start, 2),
                     "train_rows": len(splits["train"])}  # fmt: skip
    trainer.save_model(args.output_dir)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    eval_metrics = trainer.evaluate()
    trainer.save_metrics("eval", eval_metrics)  # eval_results.json
    summary: dict[str, Any] = {"train": train_metrics, "eval": eval_metrics, "output_dir": args.output_dir}
    if args.should_save:
        held_out = {name: rows for name, rows in splits.items() if name not in ("train", "validation")}
        summary["test"] = report_splits(trainer.model, processor, held_out, args, Path(args.output_dir))
        trainer.log_metrics("test", summary["test"])
        save_card(reward_model_card(model.config, metrics=summary["test"], dataset=args.dataset_name), args.output_dir)
        if args.export_dir:
            export(trainer.model, processor, args.output_dir, args.export_dir)
    trainer.accelerator.wait_for_everyone()  # no rank exits while rank 0 still writes (aborts at exit otherwise)
    trainer.accelerator.end_training()
    return summary


if __name__ == "__main__":
    from rlnf.errors import run_main

    run_main(main)  # rlnf's errors: one `error: ...` line, exit code 2; bugs keep their traceback
