"""`RewardModelTrainer`: a thin `Trainer` subclass for reward models, with its collator, clip-grouped sampler,
wall-clock budget, and the model / processor / export helpers the training recipe needs.

Data checks and splits live in `rlnf.data.scorer_data`, metrics in `rlnf.trainers.reward_model_metrics`, the
options in `rlnf.trainers.reward_model_config`. Audio columns stay undecoded, so training and evaluation read
clips the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.modeling_outputs import SequenceClassifierOutput

from ..audio import audio_key
from ..data.scorer_data import score_range_for_scale

if TYPE_CHECKING:
    import datasets

    from ..reward_model.processing import RewardModelProcessor

logger = logging.getLogger(__name__)

__all__ = [
    "ClipGroupedSampler",
    "RewardDataCollator",
    "RewardModelTrainer",
    "WallClockLimit",
    "build_processor",
    "build_reward_model",
    "export",
]


# ---------------------------------------------------------------------------------------------------------------
# Batching


class RewardDataCollator:
    """Rows ``{audio, text, score}`` -> the model's four tensors + ``labels`` (score / ``score_scale``, in [0, 1]).

    Audio stays undecoded in the dataset (paths/bytes); decoding and features happen here, per batch, so a
    dataset of thousands of clips never sits in memory as features. With ``cache_audio_mb`` > 0 each clip's
    log-mel features are kept (up to that many MB) and reused: a scorer dataset repeats every clip with several
    transcripts, every epoch, and features are per clip, so reuse gives exactly the tensors a fresh call would.

    With ``dedupe_audio`` a clip that occurs several times in the batch is sent once: ``audio`` has one row per
    distinct clip and ``audio_index`` [B] says which one each text goes with. Only `RewardModelTrainer` understands
    that (it encodes each clip once: the audio encoder is most of the cost); pair it with `ClipGroupedSampler`
    so batches actually hold several rows of a clip.

    With ``augment`` (e.g. `rlnf.trainers.audio_augmentation.ChannelAugmentation`, for the TRAINING collator
    only) each clip is decoded and perturbed before its features are made (no feature cache then). Its draws
    are seeded by ``seed``, the clip and the texts it comes with in this batch: the same batch (the clip-grouped
    sampler's order depends only on seed and epoch) is augmented the same way again, e.g. after a resume.
    """

    def __init__(
        self,
        processor: RewardModelProcessor,
        score_scale: float = 100.0,
        *,
        audio_column: str = "audio",
        text_column: str = "text",
        score_column: str = "score",
        sampling_rate: int | None = None,
        cache_audio_mb: float = 0.0,
        dedupe_audio: bool = False,
        augment: Any = None,
        seed: int = 0,
    ) -> None:
        self.processor = processor
        self.score_range = score_range_for_scale(score_scale)
        self.score_scale = float(score_scale)
        self.audio_column = audio_column
        self.text_column = text_column
        self.score_column = score_column
        self.sampling_rate = sampling_rate
        self.cache_audio_bytes = int(cache_audio_mb * 2**20)
        self.dedupe_audio = dedupe_audio
        self._cache: dict[Any, torch.Tensor] = {}
        self._cached_bytes = 0
        self.augment = augment
        self.seed = int(seed)

    def _augmented(self, audios: list[Any], texts: list[list[str]]) -> dict[str, torch.Tensor]:
        import hashlib

        from ..audio import load_audio

        waveforms = []
        for index, (item, clip_texts) in enumerate(zip(audios, texts, strict=True)):
            digest = hashlib.sha256(repr((audio_key(item), clip_texts)).encode()).digest()
            rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
            waveforms.append(self.augment(load_audio(item, self.sampling_rate, index=index), rng))
        return dict(self.processor.extract_audio(waveforms, sampling_rate=16000))

    def _features(self, audios: list[Any]) -> dict[str, torch.Tensor]:
        if self.cache_audio_bytes <= 0:
            return dict(self.processor.extract_audio(audios, sampling_rate=self.sampling_rate))
        features = []
        for item in audios:
            key = audio_key(item)
            feature = self._cache.get(key)
            if feature is None:
                feature = self.processor.extract_audio([item], sampling_rate=self.sampling_rate)["audio"][0]
                if self._cached_bytes + feature.nbytes <= self.cache_audio_bytes:
                    self._cache[key] = feature
                    self._cached_bytes += feature.nbytes
            features.append(feature)
        frames = max(f.shape[-1] for f in features)
        padding = float(self.processor.feature_extractor.padding_value)
        audio = torch.full((len(features), features[0].shape[0], frames), padding, dtype=features[0].dtype)
        mask = torch.zeros((len(features), frames), dtype=torch.long)
        for row, feature in enumerate(features):
            audio[row, :, : feature.shape[-1]] = feature
            mask[row, : feature.shape[-1]] = 1
        return {"audio": audio, "audio_attention_mask": mask}

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if len(rows) == 0:
            raise ValueError("RewardDataCollator: empty batch")
        audios = [row[self.audio_column] for row in rows]
        slots: dict[Any, int] = {}
        index = [slots.setdefault(audio_key(item), len(slots)) for item in audios]
        clip_texts = [[row[self.text_column] for row, slot in zip(rows, index) if slot == s] for s in range(len(slots))]
        if self.dedupe_audio:
            audios = [audios[index.index(slot)] for slot in range(len(slots))]
        if self.augment is None:
            batch = self._features(audios)
        elif self.dedupe_audio:
            batch = self._augmented(audios, clip_texts)
        else:
            batch = self._augmented(audios, [clip_texts[slot] for slot in index])
        if not self.dedupe_audio:
            index = None
        if index is not None:
            batch["audio_index"] = torch.tensor(index, dtype=torch.long)
        batch.update(self.processor.tokenize([row[self.text_column] for row in rows]))
        if self.score_column in rows[0]:
            scores = np.asarray([row[self.score_column] for row in rows], dtype=np.float64)
            low, high = self.score_range
            bad = np.flatnonzero(~np.isfinite(scores) | (scores < low) | (scores > high))
            if bad.size:
                raise ValueError(
                    f"RewardDataCollator: batch item {int(bad[0])} has score {float(scores[bad[0]]):g}, outside "
                    f"[{low:g}, {high:g}] (score_scale={self.score_scale:g}); run validate_scorer_dataset first"
                )
            batch["labels"] = torch.tensor(scores / self.score_scale, dtype=torch.float32)
        return batch


# ---------------------------------------------------------------------------------------------------------------
# Trainer


class ClipGroupedSampler(torch.utils.data.Sampler[int]):
    """Rows of one clip next to each other, clips (and rows within a clip) in a new seeded order each epoch.

    A batch then holds a few clips with several transcripts each, so `RewardDataCollator(dedupe_audio=True)`
    lets the audio encoder run once per clip instead of once per row. The order depends only on
    (``seed``, epoch), which Trainer sets through ``set_epoch``, so a resumed run sees the same batches.
    """

    def __init__(self, keys: Sequence[Any], seed: int = 0) -> None:
        groups: dict[Any, list[int]] = {}
        for row, key in enumerate(keys):
            groups.setdefault(key, []).append(row)
        self.groups = list(groups.values())
        self.seed = int(seed)
        self.epoch = 0
        self.rows = len(keys)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.rows

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for group in rng.permutation(len(self.groups)):
            rows = self.groups[group]
            yield from (rows[j] for j in rng.permutation(len(rows)))


class WallClockLimit(TrainerCallback):
    """Stop training after ``seconds`` of wall-clock time (a training budget), evaluating and saving that last
    state so ``load_best_model_at_end`` still chooses among every evaluated one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.start: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.start is not None and time.perf_counter() - self.start > self.seconds:
            logger.warning("training budget of %.0f s reached at step %d: stopping", self.seconds, state.global_step)
            control.should_training_stop = True
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = args.save_strategy != "no"


class RewardModelTrainer(Trainer):
    """`Trainer` that saves the reward processor with every checkpoint, scales the loss correctly and can
    encode each clip of a batch once.

    Why not ``processing_class=processor``: Trainer would then overwrite ``config.pad_token_id`` (the
    embedding's ``padding_idx``, 1 in the published layout) with the tokenizer's pad id. And because
    `RewardModel.forward` takes ``**kwargs``, Trainer would assume the model normalises its loss by
    ``num_items_in_batch`` and skip the division by gradient-accumulation steps (and multiply by the number of
    processes under ``accelerate launch``); the model returns a plain batch-mean MSE, so that is switched off.

    ``train_clip_keys`` (one clip identity per training row) switches on `ClipGroupedSampler`; batches with
    ``audio_index`` (from `RewardDataCollator(dedupe_audio=True)`) are scored with one audio encoding per clip.
    The loss is the same batch-mean MSE; only BatchNorm's batch statistics count each clip once instead of once
    per row. When the model is wrapped (DDP under ``accelerate launch``) the rows are expanded and go through
    the wrapper's forward, which is what synchronises gradients.
    """

    def __init__(
        self,
        *args: Any,
        processor: RewardModelProcessor | None = None,
        train_clip_keys: Sequence[Any] | None = None,
        train_data_collator: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.train_data_collator = train_data_collator
        self.reward_processor = processor
        self.train_clip_keys = list(train_clip_keys) if train_clip_keys is not None else None
        self.model_accepts_loss_kwargs = False

    def get_train_dataloader(self) -> Any:
        """With ``train_data_collator`` (e.g. an augmenting one), training batches use it; evaluation does not."""
        if self.train_data_collator is None:
            return super().get_train_dataloader()
        evaluation_collator, self.data_collator = self.data_collator, self.train_data_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = evaluation_collator

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_clip_keys is None or dataset is not self.train_dataset:
            return super()._get_train_sampler(train_dataset)
        if len(self.train_clip_keys) != len(dataset):
            raise ValueError(f"train_clip_keys has {len(self.train_clip_keys)} entries for {len(dataset)} rows")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return ClipGroupedSampler(self.train_clip_keys, seed=seed)

    @staticmethod
    def _expanded(inputs: dict[str, Any]) -> dict[str, Any]:
        """One audio row per text again (what `RewardModel.forward` takes)."""
        inputs = dict(inputs)
        index = inputs.pop("audio_index")
        inputs["audio"] = inputs["audio"].index_select(0, index)
        inputs["audio_attention_mask"] = inputs["audio_attention_mask"].index_select(0, index)
        return inputs

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:  # fmt: skip
        if "audio_index" not in inputs:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        core = self.accelerator.unwrap_model(model)
        if core is not model:
            outputs = model(**self._expanded(inputs))
        else:
            audio = core.encode_audio(inputs["audio"], inputs["audio_attention_mask"])
            text = core.encode_text(inputs["text"], inputs["text_attention_mask"])
            scores = core.score(audio.select(inputs["audio_index"].to(audio.pooled.device)), text)
            labels = inputs.get("labels")
            loss = None
            if labels is not None:  # MSE (+ the alignment fusion's CTC term): the same loss as forward()
                rows = audio.select(inputs["audio_index"].to(audio.pooled.device))
                loss = core.reward_loss(scores, labels.to(scores.device), rows, text)
            outputs = SequenceClassifierOutput(loss=loss, logits=scores)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def prediction_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "audio_index" in inputs and inputs.get("labels") is None:  # no loss to compute: plain forward
            inputs = self._expanded(inputs)
        return super().prediction_step(model, inputs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        if self.reward_processor is not None and self.args.should_save:
            self.reward_processor.save_pretrained(output_dir if output_dir is not None else self.args.output_dir)


# ---------------------------------------------------------------------------------------------------------------
# Model, tokenizer and export (what the recipe needs besides the Trainer)


def build_processor(args: Any, train: datasets.Dataset) -> RewardModelProcessor:
    """The checkpoint's processor when resuming, else a given one (``processor_path``/``model_name_or_path``/
    ``tokenizer_path``), else a SentencePiece tokenizer trained on the training references (or texts).

    A new tokenizer is trained by the main process and saved to ``output_dir``, so every rank and any resume
    uses the same ids.
    """
    import tempfile

    from ..reward_model import RewardFeatureExtractor, RewardModelProcessor, RewardTokenizer, train_tokenizer

    resume = args.resume_from_checkpoint
    if resume:
        from transformers.trainer_utils import get_last_checkpoint

        checkpoint = resume if isinstance(resume, str) else get_last_checkpoint(args.output_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"--resume_from_checkpoint true: no checkpoint-* in {args.output_dir}")
        return RewardModelProcessor.from_pretrained(checkpoint)
    source = args.processor_path or args.model_name_or_path
    if source is not None:
        return RewardModelProcessor.from_pretrained(source)
    if args.tokenizer_path is not None:
        return RewardModelProcessor(RewardFeatureExtractor(), RewardTokenizer(vocab_file=args.tokenizer_path))
    # Clean references when the data has them (corrupted hypotheses would teach BPE merges of random noise).
    if args.reference_column and args.reference_column in train.column_names:
        texts = list(dict.fromkeys(train[args.reference_column]))
    else:
        texts = list(train[args.text_column])
    with args.main_process_first(desc="tokenizer training"):
        if args.process_index == 0:
            with tempfile.TemporaryDirectory() as tmp:
                train_tokenizer(texts, tmp, vocab_size=args.tokenizer_vocab_size).save_pretrained(args.output_dir)
        processor = RewardModelProcessor.from_pretrained(args.output_dir)
    logger.info("trained a SentencePiece tokenizer on %d training texts: %d ids", len(texts), len(processor.tokenizer))
    return processor


def build_reward_model(args: Any, processor: RewardModelProcessor, architecture: dict[str, Any]) -> Any:
    """``model_name_or_path`` to fine-tune, else a new `RewardModel` of ``architecture`` (RewardConfig fields)
    sized to the tokenizer."""
    from ..reward_model.configuration import RewardConfig
    from ..reward_model.modeling import RewardModel

    if args.model_name_or_path is not None:
        model = RewardModel.from_pretrained(args.model_name_or_path)
    else:
        # A new model's padding row is the tokenizer's <pad> (the published layout's 1 is a real piece, which
        # padding_idx would keep from ever training).
        config = RewardConfig(
            **architecture, vocab_size=len(processor.tokenizer), pad_token_id=processor.tokenizer.pad_token_id
        )
        model = RewardModel(config)
    if len(processor.tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(processor.tokenizer)} ids but the model's embedding has "
            f"{model.config.vocab_size} rows: they do not belong together"
        )
    return model


def export(model: Any, processor: RewardModelProcessor, output_dir: str, export_dir: str) -> Path:
    """Model + processor + metrics only (what ships), built in a sibling folder and renamed into place."""
    import shutil
    import tempfile

    target = Path(export_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the export is meant to be shared
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for name in ("eval_results.json", "test_metrics.json", "train_results.json", "README.md"):
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
    return target
