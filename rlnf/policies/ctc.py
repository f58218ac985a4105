"""CTC policies (wav2vec2, HuBERT, WavLM, MMS with an adapter, Parakeet/FastConformer CTC): on-policy GRPO.

A CTC model is all encoder: ONE forward per clip gives every frame's distribution, so G samples per clip cost
one forward plus G draws. The pieces, each exact:

* sampling: G frame paths per clip drawn from ``softmax(logits / temperature)`` frame by frame, collapsed
  (repeats merged, then blanks dropped) to label sequences. Drawing paths and collapsing them draws y from
  exactly p(y|x), the distribution the CTC loss scores, so no beam or n-best list is needed.
* scoring: ``log p(y|x) = -ctc_loss(reduction="none", zero_infinity=False)``, the sum over all alignments
  (the forward algorithm); the G transcripts of a clip reuse that clip's frame log-probs.
* text: the labels are decoded with the tokenizer WITHOUT its CTC grouping (``group_tokens=False``):
  ``Wav2Vec2CTCTokenizer`` and ``ParakeetTokenizer`` merge repeated tokens again by default, which would turn
  the collapsed "a a" (a blank between two a's) into "a".

`CTCPolicy` is the `SpeechPolicy` of this family (see ``rlnf/policies/base.py`` for the contract).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import AutoModelForCTC, GenerationConfig

from ..compat import encoder_output_lengths, groups_repeated_tokens
from .base import (
    ChunkScorer,
    ClipBatch,
    PolicyOptions,
    ScoringPass,
    SpeechPolicy,
    apply_freezing,
    check_sequence_level_args,
    check_sequence_level_peft,
    labels_before_end,
    peft_base,
    register_policy,
    spread_over_tokens,
)

# --------------------------------------------------------------------------------------------------
# Pure CTC machinery (tensors in, tensors out; no model)
# --------------------------------------------------------------------------------------------------


def frame_log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-frame log-probs ``[clips, T, V]`` of ``softmax(logits / temperature)``, in float32 (CTC sums many
    small terms; bf16 logits would blur the importance ratios)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for CTC sampling, got {temperature}")
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def frame_mask(frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """``[clips, max_frames]`` bool: which frames are real (not padding)."""
    return torch.arange(max_frames, device=frames.device)[None, :] < frames[:, None]


def sample_paths(
    log_probs: torch.Tensor,
    frames: torch.Tensor,
    clip_of_row: torch.Tensor,
    blank: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One frame path ``[rows, T]`` per row, each frame drawn from its clip's distribution; padding frames are
    blank. ``log_probs`` is ``[clips, T, V]`` (one per clip: the G rows of a clip share it)."""
    rows = clip_of_row.numel()
    clips, steps, vocab = log_probs.shape
    probs = log_probs.exp().index_select(0, clip_of_row.to(log_probs.device))  # [rows, T, V]
    paths = torch.multinomial(probs.reshape(rows * steps, vocab), 1, generator=generator).view(rows, steps)
    valid = frame_mask(frames.to(paths.device), steps).index_select(0, clip_of_row.to(paths.device))
    return paths.masked_fill(~valid, blank)


def collapse_paths(paths: torch.Tensor, blank: int) -> list[list[int]]:
    """CTC's many-to-one map: merge repeated labels, then drop blanks (``a a - a`` -> ``a a``)."""
    previous = torch.cat([torch.full_like(paths[:, :1], -1), paths[:, :-1]], dim=1)
    keep = (paths != previous) & (paths != blank)
    return [row[k].tolist() for row, k in zip(paths.cpu(), keep.cpu(), strict=True)]


def greedy_labels(log_probs: torch.Tensor, frames: torch.Tensor, blank: int) -> list[list[int]]:
    """Best-path decoding: the most likely label at each real frame, collapsed."""
    paths = log_probs.argmax(-1).masked_fill(~frame_mask(frames.to(log_probs.device), log_probs.shape[1]), blank)
    return collapse_paths(paths, blank)


def sequence_log_probs(
    log_probs: torch.Tensor,
    frames: torch.Tensor,
    clip_of_row: torch.Tensor,
    labels: Sequence[Sequence[int]],
    blank: int,
) -> torch.Tensor:
    """``log p(y_r | x_clip(r))`` for every row ``[rows]``: minus the CTC loss, the sum over all alignments.

    ``log_probs`` holds one ``[T, V]`` per CLIP; the rows of a clip reuse it (expanded, the model is not run
    again). An empty label sequence is valid (the all-blank paths). ``zero_infinity=False``: a transcript no
    alignment can produce is ``-inf``, never silently 0.
    """
    device = log_probs.device
    rows = clip_of_row.to(device)
    per_row = log_probs.index_select(0, rows).transpose(0, 1)  # [T, rows, V]
    lengths = torch.tensor([len(y) for y in labels], dtype=torch.long, device=device)
    flat = [t for y in labels for t in y]
    targets = torch.tensor(flat, dtype=torch.long, device=device) if flat else torch.zeros(0, dtype=torch.long)
    loss = F.ctc_loss(
        per_row,
        targets.to(device),
        frames.to(device).index_select(0, rows).long(),
        lengths,
        blank=blank,
        reduction="none",
        zero_infinity=False,
    )
    return -loss


def frame_entropy(log_probs: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Mean per-frame entropy of each clip's distribution over its real frames ``[clips]``."""
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # [clips, T]
    mask = frame_mask(frames.to(log_probs.device), log_probs.shape[1]).to(entropy.dtype)
    return (entropy * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


# --------------------------------------------------------------------------------------------------
# Tokenizer and model checks
# --------------------------------------------------------------------------------------------------


def label_text_tokenizer(tokenizer: Any) -> Any:
    """A shallow copy of ``tokenizer`` whose ``decode``/``batch_decode`` do not group repeated tokens.

    CTC tokenizers (``Wav2Vec2CTCTokenizer``, ``ParakeetTokenizer``) decode frame paths by default: they merge
    repeats. Collapsed label sequences must be decoded as they are (``[a, a]`` is "aa"). TRL decodes the
    completions with the tokenizer it is given, so it gets this copy; the user's tokenizer is left unchanged.
    """
    if not groups_repeated_tokens(tokenizer):
        return tokenizer  # no CTC grouping to switch off
    view = copy.copy(tokenizer)
    view.decode = functools.partial(tokenizer.decode, group_tokens=False)
    view.batch_decode = functools.partial(tokenizer.batch_decode, group_tokens=False)
    return view


def decode_labels(tokenizer: Any, labels: Sequence[Sequence[int]]) -> list[str]:
    """Text of collapsed label sequences, exactly as the rewards see it (no second grouping)."""
    return label_text_tokenizer(tokenizer).batch_decode([list(y) for y in labels], skip_special_tokens=True)


def ctc_head_size(model: nn.Module) -> int | None:
    """Output size of the CTC head (``lm_head`` for wav2vec2-style models, ``ctc_head`` for Parakeet)."""
    for name in ("lm_head", "ctc_head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            return int(head.out_features)
        if isinstance(head, nn.Conv1d):
            return int(head.out_channels)
    return None


def check_ctc_model(model: nn.Module, tokenizer: Any) -> int:
    """The blank id of ``model``, after checking that the model and tokenizer agree on the vocabulary."""
    name = type(model).__name__
    blank = getattr(model.config, "pad_token_id", None)
    if blank is None:
        raise ValueError(
            f"the CTC model {name} has no blank token: config.pad_token_id is None (transformers' CTC models use "
            "the pad token as the CTC blank). Set model.config.pad_token_id to the blank's id."
        )
    vocab = getattr(model.config, "vocab_size", None)
    head = ctc_head_size(model)
    if head is not None and vocab is not None and head != vocab:
        raise ValueError(f"the CTC model {name} has config.vocab_size={vocab} but its CTC head has {head} outputs")
    vocab = head if head is not None else vocab
    if vocab is not None and len(tokenizer) != vocab:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has {len(tokenizer)} tokens but the CTC model {name} "
            f"outputs {vocab} labels (config.vocab_size / CTC head): they are not the same vocabulary. Use the "
            "processor saved with the model (for MMS: load the adapter's tokenizer, tokenizer.set_target_lang)."
        )
    if not 0 <= int(blank) < (vocab or blank + 1):
        raise ValueError(f"the CTC model {name} has blank (pad_token_id) {blank} outside its {vocab} labels")
    if tokenizer.pad_token_id != blank:
        raise ValueError(
            f"the tokenizer's pad token id is {tokenizer.pad_token_id} but the CTC model {name}'s blank "
            f"(config.pad_token_id) is {blank}: CTC tokenizers drop the pad token as the blank, so they must agree"
        )
    return int(blank)


def _input_lengths(feature_extractor: Any, samples: int) -> int:
    """Input length (samples or feature frames) the feature extractor gives a clip of ``samples`` samples."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # silence: normalising a near-empty clip
        warnings.simplefilter("ignore")
        out = feature_extractor(
            [np.zeros(samples, dtype=np.float32)],
            sampling_rate=feature_extractor.sampling_rate,
            return_attention_mask=True,
            return_tensors="pt",
        )
    return int(out["attention_mask"].sum())


def min_clip_samples(model: nn.Module, feature_extractor: Any, upper: int = 1 << 16) -> int:
    """The shortest clip (in samples) for which the model outputs at least one frame: its minimum receptive
    field (wav2vec2-base: 400 samples = 25 ms, from conv kernels (10, 3, 3, 3, 3, 2, 2) and strides (5, 2, ...)).
    """
    kernels, strides = getattr(model.config, "conv_kernel", None), getattr(model.config, "conv_stride", None)
    if getattr(model, "main_input_name", None) == "input_values" and kernels and strides:
        samples = 1  # one output frame, then back through each conv layer
        for kernel, stride in reversed(list(zip(kernels, strides, strict=True))):
            samples = (samples - 1) * int(stride) + int(kernel)
        return samples
    low, high = 1, upper  # features + subsampling: monotone in the clip length, search it
    if int(encoder_output_lengths(model, torch.tensor([_input_lengths(feature_extractor, high)]))[0]) < 1:
        raise ValueError(f"{type(model).__name__} outputs no frame even for a clip of {upper} samples")
    while low < high:
        middle = (low + high) // 2
        if int(encoder_output_lengths(model, torch.tensor([_input_lengths(feature_extractor, middle)]))[0]) >= 1:
            high = middle
        else:
            low = middle + 1
    return low


def _receptive_field_text(model: nn.Module) -> str:
    kernels, strides = getattr(model.config, "conv_kernel", None), getattr(model.config, "conv_stride", None)
    if kernels and strides:
        return f" (conv front end: kernels {tuple(kernels)}, strides {tuple(strides)})"
    return ""


# --------------------------------------------------------------------------------------------------
# The CTC policy family
# --------------------------------------------------------------------------------------------------


_UNSUPPORTED_SAMPLING = {
    "top_k": (None, 0),
    "top_p": (None, 1.0),
    "min_p": (None, 0.0),
    "repetition_penalty": (None, 1.0),
}


def _freeze_front_end(base: nn.Module) -> None:
    """freeze_feature_encoder: the conv feature encoder (wav2vec2 family) or Parakeet's conv subsampling."""
    if hasattr(base, "freeze_feature_encoder"):
        base.freeze_feature_encoder()
    elif hasattr(getattr(base, "encoder", None), "subsampling"):
        base.encoder.subsampling.requires_grad_(False)


@register_policy
class CTCPolicy(SpeechPolicy):
    """CTC encoder policies (``AutoModelForCTC``): G frame paths per clip from one forward, sequence log-probs by
    the CTC forward algorithm.

    Completions: the collapsed label ids followed by ONE blank as the end token (TRL needs a non-empty
    completion ending in an EOS/pad id; an empty transcript is the blank alone). The prompt is empty.

    ``log_probs`` spreads ``log p(y|x)`` evenly over the completion's tokens (the L labels and the end token):
    the per-token values sum to ``log p(y|x)``, so TRL's ``importance_sampling_level="sequence"`` ratio is
    ``exp((log p - log p_old) / (L + 1))``, GSPO's length-normalised sequence ratio, and the KL term is TRL's k3
    estimator of that same normalised log-ratio to the reference. With an even spread, ``"token"`` level gives
    the same ratios. ``loss_type="grpo"`` averages per transcript; token-summing losses (TRL's default
    ``"dapo"``, ``"bnpo"``, ``"dr_grpo"``) weight each transcript by its L + 1 tokens. ``max_completion_length`` does not cut CTC transcripts (a transcript can never be longer
    than the clip's frames, and a cut one would be scored as another transcript).

    Trainable parameters: the conv feature encoder is frozen by default (``freeze_feature_encoder``), as CTC
    fine-tuning does; ``freeze_encoder=True`` trains the CTC head and, for MMS, the attention adapters only
    (MMS's adapter-only fine-tuning: the ``adapter_layer`` weights); a ``peft_config`` trains LoRA.
    """

    family = "ctc"
    description = "CTC encoder models (AutoModelForCTC: wav2vec2, HuBERT, WavLM, MMS, ParakeetForCTC ...)"
    auto_model_class = AutoModelForCTC
    lora_target_modules = ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj")  # wav2vec2 family; Parakeet: o_proj

    def __init__(self, model: nn.Module, processor: Any, options: PolicyOptions):
        super().__init__(model, processor, options)
        base = peft_base(model)
        self.config = base.config
        self.blank = check_ctc_model(base, self.tokenizer)
        self.tokenizer = label_text_tokenizer(self.tokenizer)  # what TRL and the rewards decode with
        self.prompt_ids = []
        self.eos_token_ids = [self.blank]
        self.main_input = base.main_input_name
        # wav2vec2 checkpoints with group-norm feature encoders are run without an attention mask (padding = 0).
        self.pass_attention_mask = self.main_input != "input_values" or bool(
            getattr(self.feature_extractor, "return_attention_mask", True)
        )
        self.min_samples = min_clip_samples(base, self.feature_extractor)
        self.receptive_field = _receptive_field_text(base)
        self.temperature = 1.0
        self.generation_kwargs: dict[str, Any] = {}
        if getattr(base, "generation_config", None) is None:
            # TRL writes the pad id into model.generation_config; CTC encoders that cannot generate have none.
            base.generation_config = GenerationConfig(pad_token_id=self.blank)

    # ---- family selection ----------------------------------------------------------------------

    @classmethod
    def accepts(cls, model: Any) -> bool:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

        return type(peft_base(model)).__name__ in set(MODEL_FOR_CTC_MAPPING_NAMES.values())

    @classmethod
    def accepts_config(cls, config: Any) -> bool:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

        architectures = getattr(config, "architectures", None) or []
        return getattr(config, "model_type", None) in MODEL_FOR_CTC_MAPPING_NAMES and any(
            a.endswith("ForCTC") for a in architectures
        )

    def sft_collator(self, audio_column: str = "audio", text_column: str = "text") -> CTCCollator:
        return CTCCollator(
            self.processor, audio_column=audio_column, text_column=text_column, main_input_name=self.main_input
        )

    # ---- checks --------------------------------------------------------------------------------

    def check_args(self, args: Any) -> None:
        check_sequence_level_args(args, self.config, "CTC")

    def check_peft_config(self, peft_config: Any) -> None:
        check_sequence_level_peft(peft_config, self.options, "CTC", "CTC head (and MMS adapters)")

    def prepare_model(self, model: nn.Module) -> None:
        base = apply_freezing(model, self.options, self._train_head_only, _freeze_front_end)
        # SpecAugment's learned mask embedding is never used in RL (check_args refuses SpecAugment): frozen, so DDP
        # does not wait for a gradient it never gets.
        for name, param in base.named_parameters():
            if name.endswith("masked_spec_embed"):
                param.requires_grad_(False)
        self.share_encoder_states = False  # the CTC head is cheap: every pass runs the model on its clips

    def _train_head_only(self, base: nn.Module) -> None:
        """freeze_encoder: the CTC head trains, and for MMS the attention adapters (adapter-only fine-tuning)."""
        head = "lm_head" if hasattr(base, "lm_head") else "ctc_head"
        for name, param in base.named_parameters():
            param.requires_grad_(name.startswith(f"{head}."))
        if getattr(self.config, "adapter_attn_dim", None) is not None:
            for name, param in base.named_parameters():  # MMS adapter weights: `...layers.N.adapter_layer.*`
                if ".adapter_layer." in name:
                    param.requires_grad_(True)

    @staticmethod
    def input_dtype(model: nn.Module) -> torch.dtype:
        return next(p for p in peft_base(model).parameters() if p.is_floating_point()).dtype

    # ---- audio -----------------------------------------------------------------------------------

    def clip_inputs(self, waveforms: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> dict:
        """``{main input, attention_mask}`` per clip (the mask is kept for the frame counts even when the model
        is run without it); a clip shorter than the receptive field is an error naming it."""
        for index, waveform in enumerate(waveforms):
            if len(waveform) < self.min_samples:
                rate = self.options.sampling_rate
                raise ValueError(
                    f"clip {index} of the batch has {len(waveform)} samples ({1000 * len(waveform) / rate:.1f} ms), "
                    f"shorter than the CTC model's minimum receptive field of {self.min_samples} samples "
                    f"({1000 * self.min_samples / rate:.1f} ms){self.receptive_field}: it gives no output frame. "
                    "Drop or pad such clips."
                )
        out = self.feature_extractor(
            list(waveforms),
            sampling_rate=self.options.sampling_rate,
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        values = out[self.main_input]
        return {self.main_input: values.to(device, dtype), "attention_mask": out["attention_mask"].long().to(device)}

    def model_inputs(self, clips: ClipBatch) -> dict[str, torch.Tensor]:
        inputs = {self.main_input: clips.inputs[self.main_input]}
        if self.pass_attention_mask:
            inputs["attention_mask"] = clips.inputs["attention_mask"]
        return inputs

    def frames(self, model: nn.Module, clips: ClipBatch, steps: int) -> torch.Tensor:
        """Real output frames of each clip ``[clips]`` (padding excluded)."""
        core = peft_base(extract_model_from_parallel(model))
        lengths = clips.inputs["attention_mask"].sum(-1)
        return encoder_output_lengths(core, lengths).clamp(max=steps)

    def forward(self, model: nn.Module, clips: ClipBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """THE model call of a pass: once per unique clip -> ``(log_probs [clips, T, V], frames [clips])``."""
        logits = model(**self.model_inputs(clips)).logits
        log_probs = frame_log_probs(logits, self.temperature)
        return log_probs, self.frames(model, clips, log_probs.shape[1])

    # ---- sampling --------------------------------------------------------------------------------

    def configure_sampling(self, generation_kwargs: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        """Temperature only: every frame is drawn from ``softmax(logits / temperature)``. Filters that change that
        distribution (top-k/p, min-p, repetition penalty) are refused: the samples would not come from the
        distribution the loss scores."""
        kwargs = {**generation_kwargs, **(overrides or {})}
        for name, neutral in _UNSUPPORTED_SAMPLING.items():
            if kwargs.get(name) not in neutral:
                raise ValueError(
                    f"{name}={kwargs[name]!r} is not supported for CTC policies: each frame is sampled from "
                    f"softmax(logits / temperature) and scored under the same distribution; {name} would sample "
                    f"from another one. Leave {name} at its default."
                )
        self.temperature = float(kwargs.get("temperature") or 1.0)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for CTC sampling, got {self.temperature}")
        self.generation_kwargs = kwargs

    def sample(self, model: nn.Module, clips: ClipBatch) -> list[list[int]]:
        log_probs, frames = self.forward(model, clips)  # one forward per unique clip ...
        paths = sample_paths(log_probs, frames, clips.clip_of_row, self.blank)  # ... G paths per clip
        return [labels + [self.blank] for labels in collapse_paths(paths, self.blank)]

    # ---- scoring ---------------------------------------------------------------------------------

    def completion_labels(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[list[int]]:
        """Label sequences of TRL's right-padded completions: the real tokens without the end blank. Rows with
        no real token (masked out by the trainer) are empty."""
        return labels_before_end(completion_ids, completion_mask, self.blank, "CTC")

    def chunk_scorer(self, model: nn.Module, batch: ScoringPass) -> ChunkScorer:
        """``log p(y|x)`` of each row's transcript, spread evenly over its completion tokens (see the class
        docstring); entropies: the clip's mean per-frame entropy at every token. One forward per unique clip of
        each chunk (chunks hold whole clips). Every completion's labels are checked first, before any forward."""
        keep = batch.logits_to_keep
        completion_mask = batch.attention_mask[:, -keep:]
        labels = self.completion_labels(batch.input_ids[:, -keep:], completion_mask)

        def score(rows: torch.Tensor, chunk: ClipBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
            log_probs, frames = self.forward(model, chunk)
            sequence = sequence_log_probs(log_probs, frames, chunk.clip_of_row, [labels[r] for r in rows], self.blank)
            per_token = spread_over_tokens(sequence, completion_mask[rows])
            entropy = None
            if batch.compute_entropy:
                entropy = frame_entropy(log_probs, frames).index_select(0, chunk.clip_of_row)
                entropy = entropy[:, None].expand(-1, keep)
            return per_token, entropy

        return score

    # ---- greedy decoding -------------------------------------------------------------------------

    def greedy_decoder(self, model: nn.Module, max_new_tokens: int | None) -> Callable[[ClipBatch], list[str]]:
        """Best-path transcripts (``max_new_tokens`` does not apply: a CTC transcript is bounded by its frames)."""

        def decode(clips: ClipBatch) -> list[str]:
            with torch.no_grad():
                logits = model(**self.model_inputs(clips)).logits
            frames = self.frames(model, clips, logits.shape[1])
            return decode_labels(self.tokenizer, greedy_labels(logits.float(), frames, self.blank))

        return decode


# --------------------------------------------------------------------------------------------------
# Supervised CTC fine-tuning (the warm start before RL): targets and batches
# --------------------------------------------------------------------------------------------------


def ctc_label_text(tokenizer: Any, text: str, normalizer: Any = "bambara") -> str:
    """``text`` as CTC targets: the rewards' normalisation (case, punctuation, tone marks), then only characters
    the tokenizer has (a character it lacks would become ``<unk>``, a label the model can never stop emitting)."""
    from rlnf.text import get_normalizer

    unk = getattr(tokenizer, "unk_token_id", None)
    normalized = get_normalizer(normalizer)(text)
    kept = "".join(c for c in normalized if c == " " or tokenizer.convert_tokens_to_ids(c) != unk)
    return " ".join(kept.split())


class CTCCollator:
    """Batches for supervised CTC fine-tuning with transformers' ``Trainer``: a ``*ForCTC`` model computes its own
    CTC loss from ``labels`` (padded with -100). Audio is decoded with `rlnf.audio.load_audio`; the model inputs
    are built as `CTCPolicy` builds them (attention mask only where the checkpoint expects one)."""

    def __init__(
        self,
        processor: Any,
        *,
        audio_column: str = "audio",
        text_column: str = "text",
        normalizer: Any = "bambara",
        main_input_name: str | None = None,
    ):
        self.tokenizer, self.feature_extractor = processor.tokenizer, processor.feature_extractor
        self.audio_column, self.text_column, self.normalizer = audio_column, text_column, normalizer
        self.rate = int(self.feature_extractor.sampling_rate)
        self.main_input = main_input_name or self.feature_extractor.model_input_names[0]
        self.pass_attention_mask = self.main_input != "input_values" or bool(
            getattr(self.feature_extractor, "return_attention_mask", True)
        )

    def labels(self, texts: Sequence[str]) -> torch.Tensor:
        ids = [
            self.tokenizer(ctc_label_text(self.tokenizer, t, self.normalizer), add_special_tokens=False).input_ids
            for t in texts
        ]
        width = max(1, max(len(i) for i in ids))
        return torch.tensor([i + [-100] * (width - len(i)) for i in ids], dtype=torch.long)

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from rlnf.audio import load_audio

        waveforms = [
            load_audio(row[self.audio_column], self.rate, index=i, target_sampling_rate=self.rate)
            for i, row in enumerate(rows)
        ]
        features = self.feature_extractor(
            waveforms, sampling_rate=self.rate, padding="longest", return_attention_mask=True, return_tensors="pt"
        )
        batch = {self.main_input: features[self.main_input]}
        if self.pass_attention_mask:
            batch["attention_mask"] = features["attention_mask"]
        batch["labels"] = self.labels([row[self.text_column] for row in rows])
        return batch


__all__ = [
    "CTCCollator",
    "CTCPolicy",
    "check_ctc_model",
    "collapse_paths",
    "ctc_head_size",
    "ctc_label_text",
    "decode_labels",
    "frame_entropy",
    "frame_log_probs",
    "greedy_labels",
    "label_text_tokenizer",
    "min_clip_samples",
    "sample_paths",
    "sequence_log_probs",
]
