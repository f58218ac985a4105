"""Greedy corpus WER/CER of a speech-to-text policy: the numbers a recipe reports before and after training."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from ..audio import load_audio
from ..data.loading import check_columns
from ..policies.base import transcribe


def error_rates(
    references: Sequence[str], hypotheses: Sequence[str], normalizer: str | Callable[[str], str] | None = "none"
) -> dict[str, float]:
    """Corpus WER and CER (jiwer: total edits / total reference words or characters) after normalisation.

    ``normalizer``: ``"bambara"``, ``"basic"``, ``"none"`` (whitespace only) or a callable, as in
    ``rlnf.rewards.transcript_rewards.get_normalizer``.
    """
    import jiwer

    from rlnf.rewards.transcript_rewards import get_normalizer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    normalize = get_normalizer(normalizer)
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if not any(refs):
        return {"wer": math.nan, "cer": math.nan}
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def evaluate_asr(
    model: Any,
    processor: Any,
    dataset: Any,
    *,
    audio_column: str = "audio",
    reference_column: str = "text",
    normalizer: str | Callable[[str], str] | None = "bambara",
    progress: bool | None = None,
    **transcribe_kwargs: Any,
) -> dict[str, Any]:
    """Greedy corpus WER/CER of ``model`` on ``dataset`` (a ``datasets.Dataset`` or a list of row dicts).

    Returns ``{"wer", "cer", "num_samples", "hypotheses"}``; a recipe logs it before and after training. The
    default normaliser matches ``ASRGRPOConfig.eval_normalizer`` and the ``wer``/``cer`` rewards. ``progress``:
    a progress bar over the clips (None: unless transformers' progress bars are disabled); a few hundred clips
    take minutes on CPU.
    """
    rows = [dataset[i] for i in range(len(dataset))]
    columns = {audio_column: "audio_column", reference_column: "reference_column"}
    check_columns(dataset if hasattr(dataset, "column_names") else rows, columns, where="evaluation dataset")
    missing = [i for i, r in enumerate(rows) if r[reference_column] is None]
    if missing:  # as the trainers' greedy evaluation: a missing reference is not an empty one
        warnings.warn(
            f"{len(missing)} evaluation rows have no reference ({reference_column!r} is None; rows "
            f"{missing[:10]}): left out of WER/CER",
            stacklevel=2,
        )
        rows = [r for r in rows if r[reference_column] is not None]
    audios = [r[audio_column] for r in rows]
    rate = int(transcribe_kwargs.pop("sampling_rate", None) or processor.feature_extractor.sampling_rate)
    step = int(transcribe_kwargs.get("batch_size", 8))  # transcribe's own batches: the same transcripts
    hypotheses: list[str] = []
    with tqdm(total=len(audios), desc="greedy WER/CER", unit="clip", leave=False, disable=not _shown(progress)) as bar:
        for start in range(0, len(audios), step):  # decoded here, so that an error names the dataset row
            chunk = [load_audio(a, rate, index=start + i, target_sampling_rate=rate)
                     for i, a in enumerate(audios[start : start + step])]  # fmt: skip
            hypotheses += transcribe(model, processor, chunk, sampling_rate=rate, **transcribe_kwargs)
            bar.update(len(chunk))
    rates = error_rates([r[reference_column] for r in rows], hypotheses, normalizer)
    return {**rates, "num_samples": len(rows), "hypotheses": hypotheses}


def _shown(progress: bool | None) -> bool:
    return hf_logging.is_progress_bar_enabled() if progress is None else progress


__all__ = ["error_rates", "evaluate_asr", "transcribe"]
