"""Greedy corpus WER/CER of a speech-to-text policy: the numbers a recipe reports before and after training."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

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
    **transcribe_kwargs: Any,
) -> dict[str, Any]:
    """Greedy corpus WER/CER of ``model`` on ``dataset`` (a ``datasets.Dataset`` or a list of row dicts).

    Returns ``{"wer", "cer", "num_samples", "hypotheses"}``; a recipe logs it before and after training. The
    default normaliser matches ``ASRGRPOConfig.eval_normalizer`` and the ``wer``/``cer`` rewards.
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
    hypotheses = transcribe(model, processor, [r[audio_column] for r in rows], **transcribe_kwargs)
    rates = error_rates([r[reference_column] for r in rows], hypotheses, normalizer)
    return {**rates, "num_samples": len(rows), "hypotheses": hypotheses}


__all__ = ["error_rates", "evaluate_asr", "transcribe"]
