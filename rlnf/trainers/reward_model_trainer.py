"""Training a reward model: data checks, clip-level splits, batching, metrics and a thin `Trainer` subclass.

Everything here is independent of where the data comes from (`rlnf.trainers.reward_model_data` loads, checks
and splits it); audio columns stay undecoded, so training and evaluation read clips the same way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.modeling_outputs import SequenceClassifierOutput

from ..audio import audio_key

if TYPE_CHECKING:
    import datasets

    from ..reward_model.processing import RewardModelProcessor

logger = logging.getLogger(__name__)

__all__ = [
    "ACCURACY_TOLERANCE",
    "ClipGroupedSampler",
    "RewardDataCollator",
    "RewardModelTrainer",
    "ScorerDatasetError",
    "WallClockLimit",
    "auroc",
    "clip_keys",
    "compute_metrics",
    "build_processor",
    "build_reward_model",
    "compute_reward_metrics",
    "export",
    "score_range_for_scale",
    "split_by_clip",
    "undecoded_audio",
    "validate_scorer_dataset",
]

ACCURACY_TOLERANCE = 0.1  # the model card's "accuracy": share of predictions within +-0.1 of the label
_SCORE_SCALES = (100.0, 1.0)
_MAX_PROBLEMS_SHOWN = 5


class ScorerDatasetError(ValueError):
    """A scorer dataset that would fail (or silently mislead) training; the message names rows and columns."""


def score_range_for_scale(score_scale: float) -> tuple[float, float]:
    """The declared score range for a scale: scores are divided by ``score_scale`` to give labels in [0, 1]."""
    scale = float(score_scale)
    if scale not in _SCORE_SCALES:
        raise ValueError(f"score_scale must be 100 (scores 0-100) or 1 (scores 0-1), got {score_scale!r}")
    return (0.0, scale)


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
# Dataset checks and splits


def undecoded_audio(dataset: datasets.Dataset, audio_column: str) -> datasets.Dataset:
    """The same rows with an ``Audio`` column cast to raw ``{"path", "bytes"}``: looking at rows, hashing clips
    or batching them never needs torchcodec (`rlnf.audio.load_audio` decodes where features are made)."""
    import datasets

    feature = dataset.features.get(audio_column) if dataset.features else None
    if isinstance(feature, datasets.Audio) and feature.decode:
        return dataset.cast_column(audio_column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    return dataset


def _audio_problem(value: Any) -> str | None:
    if value is None:
        return "audio is missing (None)"
    if isinstance(value, dict) and all(value.get(key) is None for key in ("path", "bytes", "array")):
        return "audio has neither a path, bytes nor an array"
    if isinstance(value, str) and not value:
        return "audio path is empty"
    return None


def _score_problem(value: Any, score_range: tuple[float, float]) -> str | None:
    if value is None:
        return "score is missing (None)"
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"score is not a number ({type(value).__name__} {value!r})"
    if math.isnan(float(value)):
        return "score is NaN"
    low, high = score_range
    if not low <= float(value) <= high:
        return f"score {value!r} is outside the declared range [{low:g}, {high:g}]"
    return None


def validate_scorer_dataset(
    dataset: datasets.Dataset,
    *,
    audio_column: str = "audio",
    text_column: str = "text",
    score_column: str = "score",
    score_range: tuple[float, float] = (0.0, 100.0),
    clip_column: str | None = None,
) -> None:
    """Fail before training, with row indices, on data that would crash a run hours in or train on garbage.

    Checks: the three columns exist, the dataset is not empty, no row has missing audio, a non-string text,
    or a score that is missing, NaN or outside ``score_range``; scores that all lie in [0, 1] under a 0-100
    range (a 0-1 dataset trained with ``score_scale=100`` would train silently towards labels <= 0.01); and
    no (clip, text) pair appears twice with different scores (clips as `clip_keys` identifies them).
    """
    columns = list(dataset.column_names)
    for role, name in (("audio", audio_column), ("text", text_column), ("score", score_column)):
        if name not in columns:
            raise ScorerDatasetError(f"the {role} column {name!r} is missing; the dataset has columns {columns}")
    if len(dataset) == 0:
        raise ScorerDatasetError("the dataset is empty (0 rows)")
    low, high = (float(v) for v in score_range)
    if not low < high:
        raise ValueError(f"score_range must be (low, high) with low < high, got {score_range!r}")
    view = undecoded_audio(dataset, audio_column).select_columns([audio_column, text_column, score_column])
    problems: list[str] = []
    count = 0
    start = 0
    for chunk in view.iter(batch_size=1024):
        rows = zip(chunk[audio_column], chunk[text_column], chunk[score_column], strict=True)
        for offset, (audio, text, score) in enumerate(rows):
            found = [
                _audio_problem(audio),
                None if isinstance(text, str) else f"text is not a string ({type(text).__name__} {text!r})",
                _score_problem(score, (low, high)),
            ]
            found = [p for p in found if p]
            if found:
                count += 1
                if len(problems) < _MAX_PROBLEMS_SHOWN:
                    problems.append(f"row {start + offset}: " + "; ".join(found))
        start += len(chunk[audio_column])
    if problems:
        more = f" (and {count - len(problems)} more rows)" if count > len(problems) else ""
        raise ScorerDatasetError(
            f"{count} of {len(dataset)} rows cannot be used for training{more}:\n  " + "\n  ".join(problems)
        )
    scores = np.asarray(view[score_column], dtype=np.float64)
    if high > 1.0 and len(scores) >= 2 and scores.max() <= 1.0:
        raise ScorerDatasetError(
            f"all {len(scores)} scores lie in [0, 1] but the declared range is [{low:g}, {high:g}]: the data looks "
            "0-1 scaled; pass score_scale 1 (--score_scale 1)"
        )
    _check_conflicting_scores(
        view, scores, text_column, clip_keys(dataset, clip_column=clip_column, audio_column=audio_column)
    )


def _check_conflicting_scores(view: datasets.Dataset, scores: np.ndarray, text_column: str, keys: list) -> None:
    """The same clip with the same transcript must have one score: two would train the model on noise."""
    first: dict[tuple, int] = {}
    conflicts = []
    for row, (key, text) in enumerate(zip(keys, view[text_column], strict=True)):
        pair = (repr(key), text)
        if pair not in first:
            first[pair] = row
        elif not math.isclose(scores[first[pair]], scores[row], rel_tol=0.0, abs_tol=1e-9):
            conflicts.append((first[pair], row))
    if conflicts:
        shown = "; ".join(
            f"rows {a} and {b} (text {view[a][text_column]!r}): scores {scores[a]:g} and {scores[b]:g}"
            for a, b in conflicts[:_MAX_PROBLEMS_SHOWN]
        )
        raise ScorerDatasetError(
            f"{len(conflicts)} rows repeat a (clip, text) pair with a different score: {shown}. Keep one score per "
            "pair (e.g. average the raters)"
        )


def clip_keys(dataset: datasets.Dataset, *, clip_column: str | None = None, audio_column: str = "audio") -> list[Any]:
    """Clip identity of each row: ``clip_column`` (default ``clip_id`` when present), else the audio's path or
    content hash (`rlnf.audio.audio_key`). Rows of one clip must never be on both sides of a split."""
    if clip_column is None and "clip_id" in dataset.column_names:
        clip_column = "clip_id"
    if clip_column is not None:
        if clip_column not in dataset.column_names:
            raise ScorerDatasetError(f"clip column {clip_column!r} is missing; the dataset has {dataset.column_names}")
        return list(dataset[clip_column])
    if audio_column not in dataset.column_names:
        raise ScorerDatasetError(
            f"no clip_id column and no audio column {audio_column!r} to identify clips; columns: {dataset.column_names}"
        )
    view = undecoded_audio(dataset, audio_column).select_columns([audio_column])
    keys: list[Any] = []
    for chunk in view.iter(batch_size=1024):
        keys.extend(audio_key(item) for item in chunk[audio_column])
    return keys


def split_by_clip(
    dataset: datasets.Dataset,
    *,
    clip_column: str | None = None,
    test_size: float | int = 0.1,
    seed: int = 0,
    audio_column: str = "audio",
) -> datasets.DatasetDict:
    """``{"train", "validation"}`` with every clip's rows on one side only (the same clip with several
    transcripts would otherwise leak into validation and inflate its metrics).

    ``test_size`` is a fraction of the clips (float in (0, 1)) or a number of clips (int >= 1).
    """
    import datasets

    keys = clip_keys(dataset, clip_column=clip_column, audio_column=audio_column)
    order = list(dict.fromkeys(keys))  # first-appearance order: deterministic, whatever the key type
    n_clips = len(order)
    if n_clips < 2:
        raise ScorerDatasetError(f"need at least 2 distinct clips to split by clip, got {n_clips}")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise ValueError(f"test_size must be a fraction or a clip count, got {test_size!r}")
    if isinstance(test_size, float) and test_size < 1.0:
        if test_size <= 0.0:
            raise ValueError(f"test_size must be > 0, got {test_size}")
        n_held = min(n_clips - 1, max(1, round(test_size * n_clips)))
    else:
        n_held = int(test_size)
        if not 1 <= n_held < n_clips:
            raise ValueError(f"test_size={test_size} clips: need 1 <= test_size < {n_clips} (the number of clips)")
    permutation = np.random.default_rng(seed).permutation(n_clips)
    held = {order[i] for i in permutation[:n_held]}
    held_rows = [i for i, key in enumerate(keys) if key in held]
    kept_rows = [i for i, key in enumerate(keys) if key not in held]
    return datasets.DatasetDict({"train": dataset.select(kept_rows), "validation": dataset.select(held_rows)})


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def auroc(positives: Iterable[float], negatives: Iterable[float]) -> float:
    """Area under the ROC curve = P(positive scores above negative), ties counting half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    pos = np.asarray(list(positives), dtype=np.float64).ravel()
    neg = np.asarray(list(negatives), dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: ties share the rank
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def _correlation(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # undefined for constant inputs (scipy would warn and return nan anyway)
    result = stats.pearsonr(x, y) if kind == "pearson" else stats.spearmanr(x, y)
    return float(result[0])


def compute_reward_metrics(
    predictions: Any,
    labels: Any,
    *,
    mismatch_predictions: Any = None,
    matched_predictions: Any = None,
) -> dict[str, float]:
    """Regression quality of scores in [0, 1] against labels in [0, 1], plus mismatch AUROC.

    Keys: ``mse``, ``r2`` (1 - SS_res/SS_tot), ``pearson``, ``spearman``, ``accuracy@0.1`` (share with
    |prediction - label| <= 0.1, the card's "accuracy"), ``n``; with ``mismatch_predictions`` (scores of
    clips paired with ANOTHER clip's transcript) also ``mismatch_auroc``: how often a true pair outscores a
    shuffled one. True-pair scores are ``matched_predictions`` when given (e.g. each clip with its reference),
    else ``predictions``.
    """
    pred = np.asarray(predictions, dtype=np.float64).ravel()
    true = np.asarray(labels, dtype=np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"got {pred.size} predictions but {true.size} labels")
    if pred.size == 0:
        raise ValueError("no predictions to evaluate")
    error = pred - true
    ss_tot = float(((true - true.mean()) ** 2).sum())
    metrics = {
        "mse": float(np.mean(error**2)),
        "r2": float(1.0 - (error**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "pearson": _correlation("pearson", pred, true),
        "spearman": _correlation("spearman", pred, true),
        f"accuracy@{ACCURACY_TOLERANCE:g}": float(np.mean(np.abs(error) <= ACCURACY_TOLERANCE + 1e-12)),
        "n": int(pred.size),
    }
    if mismatch_predictions is not None:
        positives = pred if matched_predictions is None else np.asarray(matched_predictions, dtype=np.float64)
        metrics["mismatch_auroc"] = auroc(positives, mismatch_predictions)
    return metrics


def compute_metrics(eval_prediction: Any) -> dict[str, float]:
    """`Trainer(compute_metrics=...)` adapter: ``EvalPrediction(predictions, label_ids)`` -> reward metrics."""
    predictions = eval_prediction.predictions
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    return compute_reward_metrics(predictions, eval_prediction.label_ids)


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
