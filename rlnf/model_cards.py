"""Model cards (``README.md`` with hub metadata) for what rlnf trains: ASR policies and reward models.

TRL's own card describes a text-generation model ("fine-tuned version of [None]", a chat example). An ASR
user needs the base model, the data, the rewards, before/after WER/CER and how to transcribe; a reward-model
user needs what RobotsMali's published card gives: architecture, objective, usage, evaluation table.
Built with ``huggingface_hub.ModelCard`` so the metadata (model-index included) validates on the hub.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .assets import DEMO, DEMO_ALIASES

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _hub_id(value: str | None) -> str | None:
    """``value`` when it reads as an ``org/name`` hub id and is not a local path (metadata wants hub ids)."""
    if not value or os.path.exists(value) or not _HUB_ID.match(value):
        return None
    return value


_DEMO_NAMES = {
    "policy": "the rlnf demo policy (rlnf/assets/demo-whisper-sft, a tiny Whisper)",
    "dataset": "the rlnf Bambara demo corpus (synthetic espeak-ng speech)",
    "reward_model": "the rlnf demo reward model (rlnf/assets/demo-reward-model)",
    "ctc_policy": "the rlnf demo CTC policy (rlnf/assets/demo-ctc-sft, a tiny Parakeet CTC)",
    "tdt_policy": "the rlnf demo TDT policy (rlnf/assets/demo-tdt-sft, a tiny Parakeet TDT)",
}


def _describe(value: str | None, kind: str) -> str | None:
    if value in DEMO_ALIASES:
        return _DEMO_NAMES[DEMO_ALIASES[value]]
    return _DEMO_NAMES[kind] if value == DEMO else value


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _rewards_text(rewards: Sequence[str], weights: Sequence[float] | None) -> str:
    """The rewards that shaped the policy, with their weights; a weight-0 reward was only logged, and says so."""
    weights = list(weights) if weights else [1.0] * len(rewards)
    applied = [f"`{name}` (weight {weight:g})" for name, weight in zip(rewards, weights) if weight]
    logged = [f"`{name}`" for name, weight in zip(rewards, weights) if not weight]
    return ", ".join(applied) + (f"; logged only (weight 0): {', '.join(logged)}" if logged else "")


def asr_model_card(
    *,
    method: str,
    base_model: str | None,
    dataset: str,
    eval_split: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    rewards: Sequence[str] = (),
    reward_weights: Sequence[float] | None = None,
    reward_model: str | None = None,
    train_split: str | None = None,
    steps: int | None = None,
    language: str = "bm",
    model_name: str | None = None,
    model_type: str = "whisper",
    reference_free: bool = False,
    watch: Mapping[str, Any] | None = None,
    merged_subfolder: str | None = None,
) -> ModelCard:
    """The card of a speech-recognition policy trained by ``method`` ("GRPO", "RLOO", "PPO", "SFT");
    ``before``/``after`` hold greedy ``wer``/``cer`` (or ``eval_wer``/``eval_cer``) on ``eval_split`` (none: the
    card says there were no transcripts to measure them on); ``model_type`` (the config's, e.g. "whisper",
    "parakeet_ctc") is a hub tag; ``reference_free``: trained without the training split's transcripts, which
    the card says (``rewards`` should then hold only the rewards that applied: no wer/cer). ``watch``: the
    recipe's ``results["wer_watch"]`` (history, stopped_early, best_checkpoint): the card says which checkpoint
    the saved policy is. ``merged_subfolder``: a LoRA run's folder holds the adapter and the merged model there,
    which is what the transcription examples load."""

    def metric(values: Mapping[str, Any], name: str) -> Any:
        return values.get(name, values.get(f"eval_{name}"))

    base_id, data_id = _hub_id(base_model), _hub_id(dataset)
    base_model, dataset = _describe(base_model, "policy"), _describe(dataset, "dataset")
    reward_model = _describe(reward_model, "reward_model")
    results = [
        EvalResult(
            task_type="automatic-speech-recognition",
            dataset_type=data_id or dataset,
            dataset_name=dataset,
            dataset_split=eval_split,
            metric_type=name,
            metric_name=name.upper(),
            metric_value=float(value),
        )
        for name in ("wer", "cer")
        if (value := metric(after, name)) is not None
    ]
    name = model_name or f"rlnf-{method.lower()}-asr"
    data = ModelCardData(
        language=language, library_name="transformers", pipeline_tag="automatic-speech-recognition",
        tags=["rlnf", method.lower(), "automatic-speech-recognition", model_type], base_model=base_id,
        datasets=[data_id] if data_id else None, model_name=name, eval_results=results or None,
    )  # fmt: skip
    how = "supervised fine-tuning" if method.upper() == "SFT" else f"reinforcement learning ({method}, TRL + rlnf)"
    lines = [
        f"# {name}", "",
        f"A speech-recognition model trained with {how} from `{base_model or 'a policy built from scratch'}` on "
        f"`{dataset}`" + (f" (split `{train_split}`)" if train_split else "") + ".", "",
        "## Training", "",
        f"- Base model: `{base_model or f'built from scratch (a tiny {model_type}, rlnf.policies)'}`",
        f"- Data: `{dataset}`" + (f", training split `{train_split}`" if train_split else "")
        + f", evaluation split `{eval_split}`",
    ]  # fmt: skip
    if rewards:
        lines.append(f"- Rewards: {_rewards_text(rewards, reward_weights)}")
    if reference_free:
        lines.append("- Transcripts: none used in training (reference-free: the rewards score the audio and the "
                     "sampled transcript only)")  # fmt: skip
    if reward_model:
        lines.append(f"- Reward model: `{reward_model}`")
    if steps is not None:
        lines.append(f"- Optimizer steps: {steps}")
    if watch and watch.get("history"):
        lines.append(_watch_text(watch))
    measured = any(metric(values, name) is not None for values in (before, after) for name in ("wer", "cer"))
    lines += ["", f"## Evaluation (greedy decoding, split `{eval_split}`)", ""]
    lines += [
        "| | WER | CER |", "|---|---|---|",
        f"| before training | {_rate(metric(before, 'wer'))} | {_rate(metric(before, 'cer'))} |",
        f"| after training | {_rate(metric(after, 'wer'))} | {_rate(metric(after, 'cer'))} |",
    ] if measured else [
        "Not measured: the evaluation split has no reference transcripts. Measure the policy on a labelled split "
        "before trusting it (`rlnf transcribe`, or rlnf's `evaluate_asr`).",
    ]  # fmt: skip
    model_path = f"PATH_OR_HUB_ID/{merged_subfolder}" if merged_subfolder else "PATH_OR_HUB_ID"
    lines += ["", "## How to transcribe", ""]
    if merged_subfolder:
        lines += [
            f"This folder holds the LoRA adapter; `{merged_subfolder}/` holds the merged model, loaded below.",
            "",
        ]
    lines += [
        "```bash", f"rlnf transcribe clip.wav other.flac --model {model_path}", "```", "",
        "```python", "from transformers import pipeline", "",
        f'asr = pipeline("automatic-speech-recognition", model="{model_path}")',
        'print(asr("clip.wav")["text"])   # a file needs FFmpeg; or pass {"raw": samples, "sampling_rate": 16000}',
        "```", "",
    ]  # fmt: skip
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _watch_text(watch: Mapping[str, Any]) -> str:
    """One card line: how the watched WER went and which checkpoint the saved policy is."""
    history = watch["history"]
    text = f"- Held-out WER watch: {len(history)} checks"
    if watch.get("stopped_early"):
        text += ", stopped early (the watched WER rose while the reward rose)"
    best = watch.get("best_checkpoint")
    if best:
        step = Path(best).name.rsplit("-", 1)[-1]
        wer = next((row["wer"] for row in history if str(row["step"]) == step), None)
        at = f" (watched WER {wer:.3f})" if wer is not None else ""
        text += f"; the saved policy is the checkpoint of step {step}{at}, the lowest watched WER"
    return text


def reward_model_card(
    config: Any,
    *,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    description: str | None = None,
    model_id: str = "PATH_OR_HUB_ID",
) -> ModelCard:
    """A reward-model card in the shape of the published ``RobotsMali/reward-model`` card (description,
    model overview per encoder, fusion and head, objective, example usage, evaluation results), written from
    the ``RewardConfig`` so the numbers cannot drift from the weights. ``metrics`` keys may carry a ``test_``
    or ``eval_`` prefix: mse, r2, pearson, ``accuracy@0.1`` (share within 0.1 of the label) ..."""
    c = config
    data_id = _hub_id(dataset)
    card_data = ModelCardData(
        language="bm", library_name="transformers", pipeline_tag="tabular-regression",
        tags=["reward-model", "rlnf", "safetensors"], datasets=[data_id] if data_id else None,
    )  # fmt: skip
    fusion_in = c.audio_conv_channels + 2 * c.lstm_hidden
    if c.fusion_type == "cross_attention":
        fusion_in += 4 * c.lstm_hidden
    elif c.fusion_type == "alignment":  # AlignmentFusion.output_dim
        fusion_in += 2 * c.alignment_dim + c.alignment_dim // 2 + 7
    fusion = (
        f"Concatenate [audio_emb ({c.audio_conv_channels}), text_emb ({2 * c.lstm_hidden})]"
        if c.fusion_type == "late"
        else f"Cross-attention: the text tokens attend over the audio frames ({c.num_attention_heads} heads), then "
        "pooled and concatenated"
        if c.fusion_type == "cross_attention"
        else f"Alignment: frame context ({c.alignment_context_layers} dilated convs, width {c.alignment_dim}), the "
        "transcript's CTC likelihood over the frames, and token/frame attention with a diagonal position prior "
        f"({c.num_attention_heads} heads), pooled with the masks and concatenated with [audio_emb, text_emb]"
    )
    lines = [
        "# Reward model", "", "## Description", "",
        description or (
            f"A reward model trained on `{dataset or 'scored (audio, text) pairs'}`. It predicts a score between 0 "
            "and 1 for a pair (audio, text): how well the text transcribes the speech. Use it as the reward of RL "
            "fine-tuning of ASR models (rlnf `AudioTextReward`) or to rank transcripts."
        ), "",
        "## Model Overview", "",
        "Two encoders, one for audio and one for text, followed by a small regression head that outputs a "
        "scalar score.", "",
        "### Audio Encoder", "",
        f"- Input: raw waveform ({c.sample_rate} Hz)",
        f"- Features: log-mel spectrogram, n_fft {c.n_fft}, n_mels {c.n_mel}, hop_length {c.hop_length}",
        f"- Architecture: {c.audio_conv_layers} x (Conv1d -> BatchNorm1d -> ReLU), kernel {c.kernel_size}, "
        f"stride {c.stride}, padding {c.padding}, {c.audio_conv_channels} channels; masked mean over time", "",
        "### Text Encoder", "",
        "- Input: SentencePiece token ids",
        f"- Embedding: dim {c.embed_dim}, vocab_size {c.vocab_size}",
        f"- Bidirectional LSTM: hidden size {c.lstm_hidden}, {c.lstm_layers} layer(s); masked mean over tokens", "",
        "### Fusion & Regression Head", "",
        f"- Fusion: {fusion}",
        f"- Head: Linear({fusion_in} -> {c.head_hidden}) -> ReLU -> Dropout({c.dropout:g}) -> "
        f"Linear({c.head_hidden} -> {c.head_hidden}) -> ReLU -> Linear({c.head_hidden} -> 1) -> Sigmoid",
        "- Output: a scalar in [0, 1] (the reward)", "",
        "## Objective", "",
        "- Loss: mean squared error to the annotated score (scaled to [0, 1])"
        + (f"; plus {c.ctc_loss_weight:g} x the CTC loss of exact transcripts (label 1)"
           if c.fusion_type == "alignment" and getattr(c, "ctc_loss_weight", 0) else ""), "",
        "## Example Usage", "",
        "```bash", "pip install rlnf", f'rlnf score clip.wav "i ni ce" --model {model_id}', "```", "",
        "```python", "import torch", "from rlnf import RewardModel, RewardModelProcessor", "",
        f'processor = RewardModelProcessor.from_pretrained("{model_id}")',
        f'model = RewardModel.from_pretrained("{model_id}").eval()',
        'batch = processor(audios=["1.wav", "2.wav"], texts=["kelen", "fila."])',
        "with torch.inference_mode():", "    scores = model(**batch).logits   # shape [2], in [0, 1]", "```", "",
    ]  # fmt: skip
    rows = _metric_rows(metrics or {})
    if rows:
        lines += ["## Evaluation Results", "", "| Metric | Value |", "|---|---|", *rows, ""]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))


_METRIC_NAMES = {
    "mse": "MSE",
    "r2": "R²",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "accuracy@0.1": "Accuracy (within 0.1)",
    "accuracy": "Accuracy",
    "mismatch_auroc": "Mismatch AUROC",
}


def _metric_rows(metrics: Mapping[str, Any]) -> list[str]:
    plain = {re.sub(r"^(test|eval)_", "", key): value for key, value in metrics.items()}
    return [
        f"| {label} | {float(plain[key]):.4f} |"
        for key, label in _METRIC_NAMES.items()
        if isinstance(plain.get(key), (int, float))
    ]


def save_card(card: ModelCard, output_dir: str | os.PathLike) -> Path:
    """Write ``card`` as ``output_dir/README.md`` (replacing TRL's generated one)."""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


__all__ = ["asr_model_card", "reward_model_card", "save_card"]
