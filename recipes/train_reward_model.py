"""Train an rlnf reward model (audio + transcript -> score in [0, 1]) with transformers' Trainer.

Usage (a YAML file gives defaults; command-line flags override it)::

    python recipes/train_reward_model.py recipes/reward_model_demo.yaml
    python recipes/train_reward_model.py --config recipes/reward_model_demo.yaml --fusion_type cross_attention
    python recipes/train_reward_model.py --dataset_name RobotsMali/transcription-scorer \\
        --dataset_config partially-reviewed --output_dir outputs/reward --num_train_epochs 20
    accelerate launch recipes/train_reward_model.py recipes/reward_model_demo.yaml

Data: ``--dataset_name demo`` (synthetic scorer rows from the Bambara demo corpus), a hub id, an audiofolder,
a ``save_to_disk`` folder or a CSV/JSONL file (audio paths relative to it) with audio, text and score
columns. The validation split is carved out of train BY CLIP (no clip on both sides); the test split is
used once, for the final report (``test_metrics.json`` next to the model, with the mismatch AUROC). With no
``--processor_path``/``--tokenizer_path``/``--model_name_or_path`` a SentencePiece tokenizer is trained on the
training texts. ``--resume_from_checkpoint true`` continues the last checkpoint in ``--output_dir``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from rlnf.audio import audio_key
from rlnf.reward_model import (
    RewardConfig,
    RewardFeatureExtractor,
    RewardModel,
    RewardModelProcessor,
    RewardTokenizer,
    train_tokenizer,
)
from rlnf.trainers.reward_model_evaluation import evaluate_reward_model, plot_reward_evaluation, write_metrics_json
from rlnf.trainers.reward_model_trainer import (
    RewardDataCollator,
    RewardModelTrainer,
    ScorerDatasetError,
    clip_keys,
    compute_metrics,
    load_scorer_dataset,
    score_range_for_scale,
    split_by_clip,
    undecoded_audio,
    validate_scorer_dataset,
)

logger = logging.getLogger("train_reward_model")


@dataclass
class ScriptArguments:
    """Data: where the (audio, text, score) rows come from and how they are split."""

    dataset_name: str = field(default="demo", metadata={"help": "'demo', a hub id, a local folder or CSV/JSONL file"})
    dataset_config: str | None = field(default=None, metadata={"help": "hub configuration, e.g. partially-reviewed"})
    train_split: str = field(default="train")
    validation_split: str | None = field(
        default=None, metadata={"help": "a split of the dataset to validate on; default: carved from train by clip"}
    )
    test_split: str | None = field(
        default="test", metadata={"help": "split for the final report only; carved from train by clip if absent"}
    )
    validation_size: float = field(default=0.1, metadata={"help": "fraction (or count, if >= 1) of train clips"})
    test_size: float = field(default=0.1, metadata={"help": "used only when the dataset has no test split"})
    audio_column: str = field(default="audio")
    text_column: str = field(default="text")
    score_column: str = field(default="score")
    clip_column: str | None = field(default=None, metadata={"help": "clip identity; default clip_id, else audio"})
    reference_column: str | None = field(
        default="reference", metadata={"help": "own transcript of a clip for the mismatch AUROC (if the column exists)"}
    )
    score_scale: float = field(default=100.0, metadata={"help": "100: scores are 0-100; 1: scores are 0-1"})
    max_train_samples: int | None = field(default=None, metadata={"help": "keep the first N training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "keep the first N validation/test rows"})
    demo_hypotheses_per_clip: int = field(default=6, metadata={"help": "demo data: rows per clip"})
    demo_mismatch_fraction: float = field(default=0.15, metadata={"help": "demo data: share of other-clip texts"})
    demo_label_noise: float = field(default=0.0, metadata={"help": "demo data: score noise (points, std)"})
    demo_voices_per_sentence: int = field(
        default=2, metadata={"help": "demo data: voices per TRAINING sentence (2 = the standard corpus; up to 12)"}
    )
    group_by_clip: bool = field(
        default=True,
        metadata={"help": "batch a clip's rows together and encode each clip once per batch (several x faster)"},
    )
    cache_audio_mb: float = field(
        default=1024.0, metadata={"help": "keep up to this many MB of clip features in memory (0: recompute)"}
    )
    torch_threads: int | None = field(
        default=None,
        metadata={"help": "torch intra-op threads (default: torch's choice). 1 is much faster on a busy, shared CPU"},
    )
    export_dir: str | None = field(
        default=None, metadata={"help": "also save the final model + processor + metrics here (no checkpoints)"}
    )
    config: str | None = field(default=None, metadata={"help": "YAML file of defaults (flags override it)"})


@dataclass
class ModelArguments:
    """Model: start from a trained reward model, or build one (tokenizer trained on the training texts)."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "fine-tune this reward model"})
    processor_path: str | None = field(default=None, metadata={"help": "folder with a saved RewardModelProcessor"})
    tokenizer_path: str | None = field(default=None, metadata={"help": "a SentencePiece .model file"})
    tokenizer_vocab_size: int = field(default=2048, metadata={"help": "pieces to ask SentencePiece for"})
    fusion_type: str = field(default="late", metadata={"help": "late | cross_attention"})
    embed_dim: int = 128
    lstm_hidden: int = 128
    lstm_layers: int = 1
    audio_conv_channels: int = 128
    audio_conv_layers: int = 3
    head_hidden: int = 256
    dropout: float = 0.3
    num_attention_heads: int = 4


def parse_arguments(argv: list[str] | None = None) -> tuple[ScriptArguments, ModelArguments, TrainingArguments]:
    """Flags over YAML over dataclass defaults. The YAML is ``argv[0]`` (``*.yaml``/``*.yml``) or ``--config``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ScriptArguments, ModelArguments, TrainingArguments))
    config_path = None
    if argv and argv[0].endswith((".yaml", ".yml")) and not argv[0].startswith("-"):
        config_path = argv.pop(0)
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            config_path = argv[i + 1]
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
    if config_path is not None:
        with open(config_path, encoding="utf-8") as handle:
            defaults = yaml.safe_load(handle) or {}
        if not isinstance(defaults, dict):
            raise ValueError(f"{config_path}: expected a mapping of argument names to values")
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(defaults) - known)
        if unknown:
            raise ValueError(f"{config_path}: unknown argument(s) {unknown}")
        parser.set_defaults(**defaults, config=config_path)
    script_args, model_args, training_args = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    score_range_for_scale(script_args.score_scale)
    for name in ("export_dir", "validation_split", "test_split", "clip_column", "reference_column"):
        if str(getattr(script_args, name)).lower() in ("", "none", "null"):  # a YAML value switched off by a flag
            setattr(script_args, name, None)
    if model_args.fusion_type not in ("late", "cross_attention"):
        raise ValueError(f"--fusion_type must be late or cross_attention, got {model_args.fusion_type!r}")
    # The collator needs the raw audio/text/score columns, which Trainer would otherwise drop.
    training_args.remove_unused_columns = False
    training_args.label_names = ["labels"]
    training_args.ddp_find_unused_parameters = False  # every parameter is used: skip DDP's extra graph walk
    return script_args, model_args, training_args


def _audio_keys(dataset: Any, audio_column: str) -> set[Any]:
    """Clip identities across splits (``clip_id`` is only unique within a split, the audio is not)."""
    return {audio_key(item) for item in undecoded_audio(dataset, audio_column)[audio_column]}


def prepare_splits(args: ScriptArguments, seed: int) -> dict[str, Any]:
    """train / validation / test with no clip shared between any two of them, each checked row by row."""
    demo_options = {
        "hypotheses_per_clip": args.demo_hypotheses_per_clip,
        "mismatch_fraction": args.demo_mismatch_fraction,
        "label_noise": args.demo_label_noise,
        "voices_per_sentence": args.demo_voices_per_sentence,
    }
    data = load_scorer_dataset(
        args.dataset_name, args.dataset_config, audio_column=args.audio_column, text_column=args.text_column,
        seed=seed, demo_options=demo_options,
    )
    if args.train_split not in data:
        raise ScorerDatasetError(f"no split {args.train_split!r} in {args.dataset_name!r}; it has {list(data)}")
    # Checked as loaded, so row numbers in errors are the rows of the user's file/split.
    score_range = score_range_for_scale(args.score_scale)
    for name in dict.fromkeys(n for n in (args.train_split, args.validation_split, args.test_split) if n in data):
        try:
            validate_scorer_dataset(
                data[name], audio_column=args.audio_column, text_column=args.text_column,
                score_column=args.score_column, score_range=score_range,
            )
        except ScorerDatasetError as error:
            raise ScorerDatasetError(f"split {name!r} of {args.dataset_name!r}: {error}") from None
    train = data[args.train_split]
    split_options = {"clip_column": args.clip_column, "seed": seed, "audio_column": args.audio_column}

    def size(value: float) -> float | int:
        return int(value) if value >= 1 else float(value)

    if args.test_split and args.test_split in data:
        test = data[args.test_split]
    else:
        logger.warning("no test split %r: holding out %s of the training clips for the final report",
                       args.test_split, args.test_size)
        parts = split_by_clip(train, test_size=size(args.test_size), **split_options)
        train, test = parts["train"], parts["validation"]
    if args.validation_split and args.validation_split in data:
        validation = data[args.validation_split]
    else:
        if args.validation_split:
            logger.warning("no validation split %r: carving %s of the training clips", args.validation_split,
                           args.validation_size)
        parts = split_by_clip(train, test_size=size(args.validation_size), seed=seed + 1,
                              clip_column=args.clip_column, audio_column=args.audio_column)
        train, validation = parts["train"], parts["validation"]
    # Published splits can share clips (the same clip transcribed by two systems): drop them from training.
    held_out = _audio_keys(validation, args.audio_column) | _audio_keys(test, args.audio_column)
    keys = [audio_key(item) for item in undecoded_audio(train, args.audio_column)[args.audio_column]]
    leaked = [i for i, key in enumerate(keys) if key in held_out]
    if leaked:
        logger.warning("%d training rows share a clip with validation/test: dropped from training", len(leaked))
        keep = sorted(set(range(len(train))) - set(leaked))
        train = train.select(keep)
    splits = {"train": train, "validation": validation, "test": test}
    if args.max_train_samples is not None:
        splits["train"] = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_eval_samples is not None:
        for name in ("validation", "test"):
            splits[name] = splits[name].select(range(min(args.max_eval_samples, len(splits[name]))))
    return splits


def build_processor(
    model_args: ModelArguments, script_args: ScriptArguments, training_args: TrainingArguments, train: Any,
    checkpoint: str | None,
) -> RewardModelProcessor:
    """The checkpoint's processor when resuming, else a given one, else a tokenizer trained on train texts."""
    if checkpoint is not None:
        return RewardModelProcessor.from_pretrained(checkpoint)
    source = model_args.processor_path or model_args.model_name_or_path
    if source is not None:
        return RewardModelProcessor.from_pretrained(source)
    if model_args.tokenizer_path is not None:
        return RewardModelProcessor(RewardFeatureExtractor(), RewardTokenizer(vocab_file=model_args.tokenizer_path))
    # Clean references when the data has them (corrupted hypotheses would teach BPE merges of random noise;
    # a damaged word should fall apart into small pieces, which is itself a signal), else the transcripts.
    if script_args.reference_column and script_args.reference_column in train.column_names:
        texts = list(dict.fromkeys(train[script_args.reference_column]))
    else:
        texts = list(train[script_args.text_column])
    # Trained once (by the main process) and saved with the model, so every rank and any resume uses the same ids.
    with training_args.main_process_first(desc="tokenizer training"):
        if training_args.process_index == 0:
            with tempfile.TemporaryDirectory() as tmp:
                processor = train_tokenizer(texts, tmp, vocab_size=model_args.tokenizer_vocab_size)
                processor.save_pretrained(training_args.output_dir)
        processor = RewardModelProcessor.from_pretrained(training_args.output_dir)
    logger.info("trained a SentencePiece tokenizer on %d training texts: %d ids", len(texts), len(processor.tokenizer))
    return processor


def build_model(model_args: ModelArguments, processor: RewardModelProcessor) -> RewardModel:
    if model_args.model_name_or_path is not None:
        model = RewardModel.from_pretrained(model_args.model_name_or_path)
    else:
        config = RewardConfig(
            vocab_size=len(processor.tokenizer), fusion_type=model_args.fusion_type, embed_dim=model_args.embed_dim,
            lstm_hidden=model_args.lstm_hidden, lstm_layers=model_args.lstm_layers,
            audio_conv_channels=model_args.audio_conv_channels, audio_conv_layers=model_args.audio_conv_layers,
            head_hidden=model_args.head_hidden, dropout=model_args.dropout,
            num_attention_heads=model_args.num_attention_heads,
            # A new model's padding row is the tokenizer's <pad> (the published layout's 1 is a real piece,
            # which padding_idx would keep from ever training).
            pad_token_id=processor.tokenizer.pad_token_id,
        )
        model = RewardModel(config)
    if len(processor.tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(processor.tokenizer)} ids but the model's embedding has "
            f"{model.config.vocab_size} rows: they do not belong together"
        )
    return model


def _resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() == "true":
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if last is None:
            raise FileNotFoundError(f"--resume_from_checkpoint true: no checkpoint-* in {training_args.output_dir}")
        return last
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint: {value} is not a folder")
    return str(value)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, save model + processor to ``output_dir``, write ``eval_results.json`` / ``test_metrics.json``."""
    script_args, model_args, training_args = parse_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    checkpoint = _resolve_checkpoint(training_args)
    threads = torch.get_num_threads()
    if script_args.torch_threads is not None:
        torch.set_num_threads(script_args.torch_threads)
    try:
        return _train(script_args, model_args, training_args, checkpoint)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another program (tests, notebooks)


def _train(
    script_args: ScriptArguments, model_args: ModelArguments, training_args: TrainingArguments, checkpoint: str | None
) -> dict[str, Any]:
    set_seed(training_args.seed)
    with training_args.main_process_first(desc="dataset preparation"):
        splits = prepare_splits(script_args, training_args.seed)
    for name, dataset in splits.items():
        logger.info("%s: %d rows", name, len(dataset))
    processor = build_processor(model_args, script_args, training_args, splits["train"], checkpoint)
    set_seed(training_args.seed)  # the initial weights do not depend on how much randomness data prep used
    model = build_model(model_args, processor)
    logger.info("model: %s fusion, %d parameters", model.config.fusion_type, model.num_parameters())
    collator = RewardDataCollator(
        processor, script_args.score_scale, audio_column=script_args.audio_column,
        text_column=script_args.text_column, score_column=script_args.score_column,
        cache_audio_mb=script_args.cache_audio_mb, dedupe_audio=script_args.group_by_clip,
    )
    train_clip_keys = None
    if script_args.group_by_clip:
        train_clip_keys = clip_keys(splits["train"], clip_column=script_args.clip_column,
                                    audio_column=script_args.audio_column)
    trainer = RewardModelTrainer(
        model=model, args=training_args, train_dataset=splits["train"], eval_dataset=splits["validation"],
        data_collator=collator, compute_metrics=compute_metrics, processor=processor,
        train_clip_keys=train_clip_keys,
    )
    start = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - start
    trainer.save_model(training_args.output_dir)
    train_metrics = {**train_result.metrics, "train_wall_seconds": round(wall, 2), "train_rows": len(splits["train"])}
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)  # eval_results.json
    summary: dict[str, Any] = {"train": train_metrics, "eval": eval_metrics, "output_dir": training_args.output_dir}
    if training_args.should_save:
        test_metrics, details = evaluate_reward_model(
            trainer.model, processor, splits["test"], score_scale=script_args.score_scale,
            audio_column=script_args.audio_column, text_column=script_args.text_column,
            score_column=script_args.score_column, clip_column=script_args.clip_column,
            reference_column=script_args.reference_column, batch_size=training_args.per_device_eval_batch_size,
            seed=0,  # the shuffled pairs `rlnf eval-reward` draws by default: the two reports agree
        )
        test_metrics = {f"test_{k}": v for k, v in test_metrics.items()}
        write_metrics_json(test_metrics, Path(training_args.output_dir) / "test_metrics.json")
        plot_reward_evaluation(details, {k[len("test_"):]: v for k, v in test_metrics.items()},
                               Path(training_args.output_dir) / "test_plot.png",
                               title=f"{model.config.fusion_type} fusion, test split")
        trainer.log_metrics("test", test_metrics)
        summary["test"] = test_metrics
        if script_args.export_dir:
            export(trainer, processor, training_args.output_dir, script_args.export_dir)
    trainer.accelerator.wait_for_everyone()  # no rank exits while rank 0 still writes (aborts at exit otherwise)
    trainer.accelerator.end_training()
    return summary


def export(trainer: RewardModelTrainer, processor: RewardModelProcessor, output_dir: str, export_dir: str) -> None:
    """Model + processor + metrics only (what ships), built in a sibling folder and renamed into place."""
    target = Path(export_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the export is meant to be shared
    try:
        trainer.model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for name in ("eval_results.json", "test_metrics.json", "train_results.json"):
            if (Path(output_dir) / name).is_file():
                shutil.copy2(Path(output_dir) / name, tmp / name)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in target.iterdir())
    logger.info("exported model + processor + metrics to %s (%.2f MB)", target, size / 2**20)


if __name__ == "__main__":
    main()
