"""(audio, text, score) datasets for reward-model training: where rows come from, the checks, the splits.

`prepare_splits` is what the training recipe calls: it loads the rows, checks every split (columns, scores,
scale, conflicting duplicates: `validate_scorer_dataset`), decodes every clip once before training (a corrupt clip
is found here, not after hours of training), and returns train / validation / test with no recording on two
sides (`split_by_clip` carves held-out splits by clip). Audio columns stay undecoded (`undecoded_audio`), so
training and evaluation read clips the same way.

The demo scorer data (``dataset_name="demo"``) is built from demo corpus v2's SOURCE domain for training and
its test report (``sft_train`` -> train, ``sft_validation`` -> test), and from the TARGET domain's ``test``
split for ``target_test``: synthetic corruptions of the references (`rlnf.data.synthetic`), plus, with a
policy, the policy's own temperature samples scored by their true CER, the hypotheses RL will show the model.

Nothing here imports the trainers: `prepare_splits` reads its options off any object with the fields it names
(the recipe passes its `RewardModelTrainingArguments`, defined in ``trainers/reward_model_config.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..audio import audio_key, load_audio
from ..errors import RlnfUserError

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_EVAL_SEEDS",
    "DEMO_OPTIONS",
    "ScorerDatasetError",
    "clip_keys",
    "decode_check",
    "demo_options",
    "demo_scorer_dataset",
    "load_scorer_dataset",
    "policy_kind",
    "policy_scorer_rows",
    "prepare_splits",
    "sample_transcripts",
    "score_range_for_scale",
    "split_by_clip",
    "undecoded_audio",
    "validate_scorer_dataset",
]

# Fixed seeds of the demo's held-out rows: their hypotheses never change with the training options.
DEMO_EVAL_SEEDS = {"test": 1002, "target_test": 1003}
MIN_SAMPLES = 1024  # one analysis window (n_fft) of the reward model's features: shorter clips are rejected
_SCORE_SCALES = (100.0, 1.0)
_MAX_PROBLEMS_SHOWN = 5


class ScorerDatasetError(RlnfUserError, ValueError):
    """A scorer dataset that would fail (or silently mislead) training; the message names rows and columns."""


def score_range_for_scale(score_scale: float) -> tuple[float, float]:
    """The declared score range for a scale: scores are divided by ``score_scale`` to give labels in [0, 1]."""
    scale = float(score_scale)
    if scale not in _SCORE_SCALES:
        raise ValueError(f"score_scale must be 100 (scores 0-100) or 1 (scores 0-1), got {score_scale!r}")
    return (0.0, scale)


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


def _carve(train: Any, flag: str, size: Any, **kwargs: Any) -> Any:
    """`split_by_clip` of ``size`` clips whose size error names the flag that set it."""
    try:
        return split_by_clip(train, test_size=_size(size), **kwargs)
    except ValueError as error:
        raise ScorerDatasetError(f"{flag} {size}: {error}") from None


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
# Policy samples


@torch.inference_mode()
def sample_transcripts(
    model: Any,
    processor: Any,
    audios: Sequence[Any],
    *,
    samples_per_clip: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int = 96,
) -> list[list[str]]:
    """``samples_per_clip`` transcripts of each clip sampled from a speech policy (any rlnf policy family), the
    encoder once per clip; seeded, so a cache of them can be trusted."""
    from ..policies.base import ClipBatch, PolicyOptions, policy_for

    if samples_per_clip < 1 or temperature <= 0:
        raise ValueError(f"need samples_per_clip >= 1 and temperature > 0, got {samples_per_clip}, {temperature}")
    rate = int(processor.feature_extractor.sampling_rate)
    policy = policy_for(model, processor, PolicyOptions(sampling_rate=rate, max_completion_length=None))
    length = len(policy.prompt_ids) + max_new_tokens  # never more positions than the decoder has (tiny: 64)
    positions = getattr(model.config, "max_target_positions", None)
    policy.configure_sampling(
        {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0},
        {"max_length": min(length, positions) if positions else length},
    )
    model.eval()
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    out: list[list[str]] = []
    from tqdm.auto import tqdm
    from transformers.utils.logging import is_progress_bar_enabled

    # minutes of sampling on CPU: a progress bar (off where transformers' progress bars are disabled)
    bar = tqdm(total=len(audios), desc="sampling transcripts", unit="clip", disable=not is_progress_bar_enabled())
    for start in range(0, len(audios), batch_size):
        chunk = [load_audio(a, rate, index=start + i) for i, a in enumerate(audios[start : start + batch_size])]
        clips = ClipBatch(
            policy.clip_inputs(chunk, device, dtype),
            torch.arange(len(chunk), device=device).repeat_interleave(samples_per_clip),
        )
        texts = policy.tokenizer.batch_decode(policy.sample(model, clips), skip_special_tokens=True)
        out.extend(
            [t.strip() for t in texts[i * samples_per_clip : (i + 1) * samples_per_clip]] for i in range(len(chunk))
        )
        bar.update(len(chunk))
    bar.close()
    return out


def _fingerprint(policy_dir: str) -> str:
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        path = Path(policy_dir) / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def policy_scorer_rows(
    asr_dataset: datasets.Dataset,
    policy: str,
    *,
    samples_per_clip: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> datasets.Dataset:
    """Scorer rows of a policy's own samples (kind ``policy:<policy>``, `policy_kind`), score = 100 * max(0, 1 - CER),
    as the synthetic rows. Samples are cached in ``cache_dir`` under a key of the policy's weights, the clips and
    the options."""
    from ..assets import resolve_demo_path
    from .synthetic import score_hypotheses

    path = resolve_demo_path(policy, "policy")
    keys = [audio_key(a) for a in undecoded_audio(asr_dataset, "audio")["audio"]]
    key = hashlib.sha256(
        json.dumps([_fingerprint(path), repr(keys), samples_per_clip, temperature, seed]).encode()
    ).hexdigest()[:20]
    cache = Path(cache_dir) / f"policy_samples_{key}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        samples = json.loads(cache.read_text(encoding="utf-8"))
    else:
        from transformers import AutoProcessor

        from ..policies.base import load_policy_model

        logger.info("sampling %d transcripts per clip of %d clips from %s", samples_per_clip, len(keys), path)
        model, processor = load_policy_model(path), AutoProcessor.from_pretrained(path)
        samples = sample_transcripts(
            model, processor, list(asr_dataset["audio"]), samples_per_clip=samples_per_clip,
            temperature=temperature, seed=seed,
        )  # fmt: skip
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(samples, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cache)
    return score_hypotheses(asr_dataset, samples, kind=policy_kind(policy), rate=temperature)


def policy_kind(policy: str) -> str:
    """The ``kind`` of a policy's scorer rows: ``policy:<name>`` (a demo alias, or the folder's name), so each
    policy's rows can be reported alone."""
    return f"policy:{Path(str(policy).rstrip('/')).name}"


# ---------------------------------------------------------------------------------------------------------------
# Data sources


def demo_scorer_dataset(
    *,
    seed: int = 0,
    hypotheses_per_clip: int = 8,
    mismatch_fraction: float = 0.3,
    label_noise: float = 0.0,
    policies: Sequence[str] = (),
    holdout_policy: str | None = None,
    policy_samples_per_clip: int = 4,
    policy_temperature: float = 1.0,
    policy_train_temperatures: Sequence[float] = (),
    cache_dir: str | None = None,
    splits: Sequence[str] | None = None,
) -> datasets.DatasetDict:
    """Splits ``train`` (source-domain ``sft_train``), ``test`` (source ``sft_validation``) and ``target_test``
    (the target domain's ``test``: other speakers and channels, never trained on); ``splits`` builds only those
    (an evaluation of ``target_test`` need not sample the policies on the training clips).

    ``train`` rows follow ``seed`` and the options; ``test``/``target_test`` synthetic rows use fixed seeds and
    the builder's defaults, so reports stay comparable across runs. Every split also holds each of ``policies``'
    samples (``policy_samples_per_clip`` per clip at ``policy_temperature``; held-out splits sampled with fixed
    seeds), except ``holdout_policy``'s, which only the held-out splits hold (a policy the model never saw).
    ``policy_train_temperatures`` (default: ``policy_temperature`` alone) samples ``train`` at each of them: a
    strong policy's samples at temperature 1 are mostly perfect, hotter ones show its errors; the held-out
    splits keep ``policy_temperature``.
    """
    import datasets

    from .demo_corpus import default_corpus_dir, load_demo_corpus
    from .synthetic import make_scorer_dataset

    if holdout_policy is not None and holdout_policy not in policies:
        raise ValueError(f"holdout_policy {holdout_policy!r} is not one of the policies {list(policies)}")
    corpus = load_demo_corpus(cache_dir=cache_dir)
    folder = Path(cache_dir) if cache_dir is not None else default_corpus_dir()
    sources = {"train": "sft_train", "test": "sft_validation", "target_test": "test"}
    unknown = sorted(set(splits or ()) - set(sources))
    if unknown:
        raise ValueError(f"the demo scorer data has no split {unknown[0]!r}; it has {list(sources)}")
    built = {}
    for name, source in sources.items():
        if splits is not None and name not in splits:
            continue
        split_seed = seed if name == "train" else DEMO_EVAL_SEEDS[name]
        options = (
            {"hypotheses_per_clip": hypotheses_per_clip, "mismatch_fraction": mismatch_fraction,
             "label_noise": label_noise} if name == "train" else {}
        )  # fmt: skip
        parts = [make_scorer_dataset(corpus[source], seed=split_seed, **options)]
        temperatures = (policy_train_temperatures or [policy_temperature]) if name == "train" else [policy_temperature]
        for policy in policies:
            if name == "train" and policy == holdout_policy:
                continue
            for temperature in temperatures:
                parts.append(
                    policy_scorer_rows(
                        corpus[source],
                        policy,
                        samples_per_clip=policy_samples_per_clip,
                        temperature=temperature,
                        seed=split_seed,
                        cache_dir=folder,
                    )  # fmt: skip
                )
        built[name] = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return datasets.DatasetDict(built)


DEMO_OPTIONS = (
    "hypotheses_per_clip", "mismatch_fraction", "label_noise", "policies", "holdout_policy",
    "policy_samples_per_clip", "policy_temperature", "policy_train_temperatures",
)  # fmt: skip


def demo_options(source: Mapping[str, Any] | Any) -> dict[str, Any]:
    """`demo_scorer_dataset`'s options from the reward recipe's ``demo_*`` fields: its arguments, or its YAML as a
    dict (absent keys keep the builder's defaults), so that ``rlnf eval-reward --dataset demo`` builds the rows
    the recipe reported on."""
    if isinstance(source, Mapping):
        return {name: source[f"demo_{name}"] for name in DEMO_OPTIONS if f"demo_{name}" in source}
    return {name: getattr(source, f"demo_{name}") for name in DEMO_OPTIONS if hasattr(source, f"demo_{name}")}


def load_scorer_dataset(
    name: str,
    config: str | None = None,
    *,
    audio_column: str = "audio",
    text_column: str = "text",
    seed: int = 0,
    demo_options: dict[str, Any] | None = None,
) -> datasets.DatasetDict:
    """Every split of a scorer dataset, audio undecoded (paths or ``{"path", "bytes"}``).

    ``name`` is ``"demo"`` (`demo_scorer_dataset`; ``seed`` and ``demo_options`` shape its training rows) or
    anything `rlnf.data.loading.load_asr_dataset` reads: a hub id (``config`` picks its configuration, e.g.
    ``RobotsMali/transcription-scorer`` + ``partially-reviewed``), a ``save_to_disk`` folder, an audiofolder or
    a CSV/JSONL/Parquet file whose audio column holds paths relative to the file.
    """
    if name == "demo":
        return demo_scorer_dataset(seed=seed, **(demo_options or {}))
    from .loading import load_asr_dataset

    return load_asr_dataset(name, config, audio_column=audio_column, text_column=text_column)


# ---------------------------------------------------------------------------------------------------------------
# Checks before training


def _describe(item: Any) -> str:
    if isinstance(item, dict):
        return repr(item.get("path") or f"<{len(item.get('bytes') or b'')} bytes>")
    return repr(item) if isinstance(item, str) else f"<{type(item).__name__}>"


def decode_check(
    dataset: datasets.Dataset, audio_column: str, *, min_samples: int = MIN_SAMPLES
) -> tuple[dict[int, str], list[tuple]]:
    """Decode every distinct clip once. Returns ``{row: problem}`` for rows whose clip cannot be decoded (or
    is shorter than one analysis window) and each row's content key (the decoded samples' `audio_key`, so
    one recording under two file names has one key; None for undecodable rows)."""
    problems: dict[int, str] = {}
    by_source: dict[Any, tuple[str | None, tuple | None]] = {}
    content: list[tuple] = []
    for row, item in enumerate(undecoded_audio(dataset, audio_column)[audio_column]):
        source = audio_key(item, index=row)
        if source not in by_source:
            try:
                samples = load_audio(item, index=row)
                if samples.size < min_samples:
                    raise ValueError(f"{samples.size} samples, shorter than one {min_samples}-sample window")
                by_source[source] = (None, audio_key({"array": samples, "sampling_rate": 16000}))
            except (OSError, ValueError, RuntimeError) as error:
                by_source[source] = (f"audio {_describe(item)} cannot be used: {error}", None)
        problem, key = by_source[source]
        if problem is not None:
            problems[row] = problem
        content.append(key)
    return problems, content


def _drop_undecodable(name: str, dataset: datasets.Dataset, audio_column: str, skip: bool) -> tuple[Any, list]:
    problems, content = decode_check(dataset, audio_column)
    if not problems:
        return dataset, content
    first = min(problems)
    if not skip:
        raise ScorerDatasetError(
            f"split {name!r}: {len(problems)} rows have audio that cannot be decoded; row {first}: {problems[first]}. "
            "Fix or remove them, or pass --skip_undecodable_audio true to drop those rows"
        )
    logger.warning("split %r: dropping %d rows with undecodable audio (row %d: %s)", name, len(problems), first,
                   problems[first])  # fmt: skip
    keep = [i for i in range(len(dataset)) if i not in problems]
    if not keep:
        raise ScorerDatasetError(f"split {name!r}: no row has decodable audio")
    return dataset.select(keep), [content[i] for i in keep]


def _drop_shared_recordings(splits: dict[str, Any], content: dict[str, list], audio_column: str) -> dict[str, Any]:
    """A recording in a held-out split (by decoded content, whatever its file name) leaves train (and
    validation when it is in test): held-out metrics must be about recordings never trained on."""
    for name, held in (("train", ("validation", "test")), ("validation", ("test",))):
        held_keys: dict[tuple, tuple[str, int]] = {}
        for other in held:
            for row, key in enumerate(content[other]):
                held_keys.setdefault(key, (other, row))
        shared = [row for row, key in enumerate(content[name]) if key in held_keys]
        if not shared:
            continue
        other, other_row = held_keys[content[name][shared[0]]]
        audio = undecoded_audio(splits[name], audio_column)[audio_column]
        other_audio = undecoded_audio(splits[other], audio_column)[audio_column][other_row]
        logger.warning(
            "%d %s rows are recordings that are also in a held-out split (e.g. %s row %d %s = %s row %d %s, same "
            "decoded samples): dropped from %s", len(shared), name, name, shared[0], _describe(audio[shared[0]]),
            other, other_row, _describe(other_audio), name,
        )  # fmt: skip
        keep = sorted(set(range(len(splits[name]))) - set(shared))
        if not keep:
            raise ScorerDatasetError(f"every {name} row is a recording of a held-out split")
        splits[name] = splits[name].select(keep)
        content[name] = [content[name][i] for i in keep]
    return splits


def _size(value: float) -> float | int:
    return int(value) if value >= 1 else float(value)


def prepare_splits(args: Any) -> dict[str, Any]:
    """train / validation / test (+ ``args.report_splits``), each checked, every clip decoded once up front.

    Checks (`validate_scorer_dataset`): columns, missing/NaN/out-of-range scores, data that looks 0-1 scaled
    under ``score_scale`` 100, and the same (clip, text) with conflicting scores, each an error naming rows.
    Undecodable clips: an error naming the row and file, or dropped with ``skip_undecodable_audio``. A
    recording present in a held-out split (same decoded samples, whatever the file name) is dropped from
    train (and from validation when it is in test), with a warning naming an example.

    ``args`` is the recipe's `RewardModelTrainingArguments` or any object with these fields, all this reads:
    ``dataset_name``, ``dataset_config``, ``dataset_train_split``, ``dataset_validation_split``,
    ``dataset_test_split``, ``report_splits``, ``eval_split_size``, ``test_split_size``, ``audio_column``,
    ``text_column``, ``score_column``, ``clip_column``, ``score_scale``, ``skip_undecodable_audio``,
    ``max_train_samples``, ``max_eval_samples``, ``seed`` and the demo options (``demo_hypotheses_per_clip``,
    ``demo_mismatch_fraction``, ``demo_label_noise``, ``demo_policies``, ``demo_holdout_policy``,
    ``demo_policy_samples_per_clip``, ``demo_policy_temperature``, ``demo_policy_train_temperatures``).
    """
    data = load_scorer_dataset(
        args.dataset_name, args.dataset_config, audio_column=args.audio_column, text_column=args.text_column,
        seed=args.seed, demo_options=demo_options(args),
    )  # fmt: skip
    if args.dataset_train_split not in data:
        raise ScorerDatasetError(f"no split {args.dataset_train_split!r} in {args.dataset_name!r}; it has {list(data)}")
    report = [s for s in args.report_splits if s in data]
    if len(report) < len(args.report_splits):  # e.g. the demo YAML's target_test under one's own data
        logger.warning("report split(s) %s not in %r (it has %s): not reported",
                       sorted(set(args.report_splits) - set(report)), args.dataset_name, list(data))  # fmt: skip
    columns = {"audio_column": args.audio_column, "text_column": args.text_column, "score_column": args.score_column}
    named = [args.dataset_train_split, args.dataset_validation_split, args.dataset_test_split, *report]
    for name in dict.fromkeys(n for n in named if n in data):  # as loaded: row numbers are the user's rows
        try:
            validate_scorer_dataset(
                data[name], **columns, score_range=score_range_for_scale(args.score_scale), clip_column=args.clip_column
            )
        except ScorerDatasetError as error:
            raise ScorerDatasetError(f"split {name!r} of {args.dataset_name!r}: {error}") from None
    train = data[args.dataset_train_split]
    carve = {"clip_column": args.clip_column, "audio_column": args.audio_column}
    if args.dataset_test_split in data:
        test = data[args.dataset_test_split]
    else:
        logger.warning("no test split %r: holding out %s of the training clips for the final report",
                       args.dataset_test_split, args.test_split_size)  # fmt: skip
        parts = _carve(train, "--test_split_size", args.test_split_size, seed=args.seed, **carve)
        train, test = parts["train"], parts["validation"]
    if args.dataset_validation_split in data:
        validation = data[args.dataset_validation_split]
    else:
        parts = _carve(train, "--eval_split_size", args.eval_split_size, seed=args.seed + 1, **carve)
        train, validation = parts["train"], parts["validation"]
    splits = {"train": train, "validation": validation, "test": test}
    splits.update({name: data[name] for name in report})
    content = {}
    for name in list(splits):
        splits[name], content[name] = _drop_undecodable(
            name, splits[name], args.audio_column, args.skip_undecodable_audio
        )
    splits = _drop_shared_recordings(splits, content, args.audio_column)
    if args.max_train_samples is not None:
        splits["train"] = splits["train"].select(range(min(args.max_train_samples, len(splits["train"]))))
    if args.max_eval_samples is not None:
        for name in splits.keys() - {"train"}:
            splits[name] = splits[name].select(range(min(args.max_eval_samples, len(splits[name]))))
    return splits
