"""Whisper (encoder-decoder) policy helpers: decoder prefix, suppressed tokens, feature windows, generation.

The trainer and a recipe share these so the numbers agree: the same decoder prefix (Whisper has no Bambara
token, so by default none), the same feature padding, the same suppressed tokens, and plain
``GenerationMixin.generate`` fed with precomputed encoder states (Whisper's own ``generate`` strips the
prefix from its output and re-runs the encoder for every returned sequence).

"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import AutoModelForSpeechSeq2Seq, GenerationConfig, GenerationMixin, WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from ..audio import load_audio
from .base import (
    ChunkScorer,
    ClipBatch,
    PolicyOptions,
    ScoringPass,
    SpeechPolicy,
    clip_chunks,
    has_adapters,
    peft_base,
    register_policy,
    transcribe,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


# --------------------------------------------------------------------------------------------------
# Decoder prefix and suppressed tokens
# --------------------------------------------------------------------------------------------------


def _token_id(tokenizer: Any, token: str, what: str) -> int:
    if token not in tokenizer.get_vocab():
        raise ValueError(
            f"the tokenizer has no {what} token {token!r}; its special tokens: {tokenizer.all_special_tokens}"
        )
    return int(tokenizer.convert_tokens_to_ids(token))


def _language_token(language: str) -> str:
    """``"bm"``, ``"french"`` or a literal ``"<|fr|>"`` -> the token string."""
    if language.startswith("<|") and language.endswith("|>"):
        return language
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    code = TO_LANGUAGE_CODE.get(language.lower(), language.lower())
    return f"<|{code}|>"


def decoder_prefix_ids(
    tokenizer: Any, language: str | None = None, task: str | None = "transcribe", predict_timestamps: bool = False
) -> list[int]:
    """Whisper's forced decoder prefix: ``<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>]``.

    ``language=None`` (the default) leaves the language token out: Whisper has no Bambara token, and forcing a
    wrong one (e.g. ``<|fr|>``) biases the decoder. A language token that is missing from the vocabulary
    (for example ``"bm"`` on a pretrained checkpoint) is an error, not a silent ``<|endoftext|>``.
    """
    ids = [_token_id(tokenizer, "<|startoftranscript|>", "start")]
    if language is not None:
        ids.append(_token_id(tokenizer, _language_token(language), "language"))
    if task is not None:
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe', 'translate' or None, got {task!r}")
        ids.append(_token_id(tokenizer, f"<|{task}|>", "task"))
    if not predict_timestamps:
        ids.append(_token_id(tokenizer, "<|notimestamps|>", "no-timestamps"))
    return ids


def timestamp_token_ids(tokenizer: Any) -> list[int]:
    """Ids of ``<|0.00|>`` ... ``<|30.00|>`` that the vocabulary has (none for the tiny policies)."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in (f"<|{i * 0.02:.2f}|>" for i in range(1501)) if t in vocab]


def suppressed_tokens(model: Any, tokenizer: Any, predict_timestamps: bool = False) -> tuple[list[int], list[int]]:
    """``(suppress_tokens, begin_suppress_tokens)`` of the checkpoint, plus timestamps when not predicted."""
    generation_config = getattr(model, "generation_config", None)

    def read(name: str) -> list[int]:
        value = getattr(generation_config, name, None)
        if value is None:
            value = getattr(model.config, name, None)
        return [int(v) for v in value or []]

    suppress = read("suppress_tokens")
    if not predict_timestamps:
        suppress = sorted(set(suppress) | set(timestamp_token_ids(tokenizer)))
    return suppress, read("begin_suppress_tokens")


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def feature_frames(model_config: Any, feature_extractor: Any, pad_features_to: str) -> int | None:
    """Frames to pad/trim features to, or ``None`` for "pad to the longest clip of the batch".

    ``"model"``: what the encoder expects (Whisper: exactly ``2 * max_source_positions`` frames, 3000 = 30 s
    for pretrained checkpoints; encoders without a fixed window: the longest clip). ``"longest"``: the longest
    clip. ``"<seconds>s"`` (e.g. ``"30s"``): a fixed window. Whisper rejects any other length, so a window
    that disagrees with the checkpoint is an error here rather than a shape error at the first step.
    """
    hop = int(getattr(feature_extractor, "hop_length", 160))
    rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    positions = getattr(model_config, "max_source_positions", None)
    fixed = 2 * int(positions) if getattr(model_config, "model_type", None) == "whisper" and positions else None
    if pad_features_to == "model":
        return fixed
    if pad_features_to == "longest":
        frames = None
    else:
        match = _DURATION.match(str(pad_features_to))
        if not match:
            raise ValueError(
                f"pad_features_to must be 'model', 'longest' or a duration like '30s', got {pad_features_to!r}"
            )
        frames = int(round(float(match.group(1)) * rate / hop))
    if fixed is not None and frames != fixed:
        raise ValueError(
            f"pad_features_to={pad_features_to!r} gives {frames or 'variable'} frames, but this Whisper encoder takes "
            f"exactly {fixed} frames ({fixed * hop / rate:g} s, 2 x max_source_positions={positions}); use "
            "pad_features_to='model'"
        )
    return frames


def extract_features(feature_extractor: Any, waveforms: Sequence[np.ndarray], frames: int | None) -> torch.Tensor:
    """Log-mel features ``[clips, n_mels, frames]``; clips longer than the window are cut (with a warning)."""
    hop = int(getattr(feature_extractor, "hop_length", 160))
    rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    kwargs: dict[str, Any] = {"padding": "longest"}
    if frames is not None:
        kwargs = {"padding": "max_length", "max_length": frames * hop, "truncation": True}
        longest = max(len(w) for w in waveforms)
        if longest > frames * hop:
            warnings.warn(
                f"a clip of {longest / rate:.1f} s is longer than the encoder window ({frames * hop / rate:g} s) and is cut",
                stacklevel=2,
            )
    out = feature_extractor(list(waveforms), sampling_rate=rate, return_tensors="pt", **kwargs)
    return out["input_features"]


# --------------------------------------------------------------------------------------------------
# Generation from encoder states
# --------------------------------------------------------------------------------------------------


def generate_from_encoder(
    model: Any,
    encoder_hidden: torch.Tensor,
    prefix_ids: Sequence[int],
    generation_config: GenerationConfig,
    **overrides: Any,
) -> torch.Tensor:
    """``[rows, len(prefix) + new]`` token ids, prefix included, for precomputed encoder states ``[rows, T, D]``.

    Plain ``GenerationMixin.generate``: the encoder is not run again (the caller ran it once per clip and
    expanded the states to the rows) and the forced prefix stays in the output.
    """
    rows = encoder_hidden.size(0)
    prefix = torch.tensor([list(prefix_ids)], dtype=torch.long, device=encoder_hidden.device).expand(rows, -1)
    return GenerationMixin.generate(
        peft_base(model),  # under a PEFT wrapper: its LoRA layers stay active
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
        # every encoder frame is valid; saying so stops transformers' pad == eos warning
        attention_mask=torch.ones(encoder_hidden.shape[:2], dtype=torch.long, device=encoder_hidden.device),
        decoder_input_ids=prefix,
        decoder_attention_mask=torch.ones_like(prefix),
        generation_config=generation_config,
        **overrides,
    )


def completion_ids(sequences: torch.Tensor, prefix_length: int, eos_token_ids: Sequence[int]) -> list[list[int]]:
    """Cut the prefix, keep tokens up to and including the first EOS (TRL's convention)."""
    completions = sequences[:, prefix_length:].cpu()
    is_eos = torch.isin(completions, torch.tensor(list(eos_token_ids)))
    out = []
    for row, eos in zip(completions, is_eos, strict=True):
        end = int(eos.int().argmax()) + 1 if eos.any() else row.numel()
        out.append(row[:end].tolist())
    return out


# --------------------------------------------------------------------------------------------------
# Clip-only work once per clip inside a decoder pass over G rows per clip
# --------------------------------------------------------------------------------------------------


class ClipHooks:
    """Forward hooks that make a decoder pass over G rows per clip do the clip-only work once per clip.

    * encoder (``encoder=True``): the model's own forward runs the encoder on the unique clips; a hook expands
      its output to the rows, so gradients still reach a trainable encoder and DDP/FSDP see one forward.
    * cross-attention keys/values: they depend on the clip only, yet the decoder projects the encoder states
      of every row. A pre-hook on each ``encoder_attn.k_proj``/``v_proj`` keeps one row per clip and a hook
      expands the projection back: the projections (2 x layers matmuls over every encoder frame) cost 1/G
      when G = 8. Inactive when every row is its own clip.
    """

    def __init__(self, model: nn.Module, clip_of_row: torch.Tensor, *, encoder: bool):
        self.clip_of_row = clip_of_row
        self.rows = clip_of_row.numel()
        first: dict[int, int] = {}
        for row, clip in enumerate(clip_of_row.tolist()):
            first.setdefault(clip, row)
        self.first_rows = torch.tensor(list(first.values()), dtype=torch.long, device=clip_of_row.device)
        position = {clip: i for i, clip in enumerate(first)}  # clip -> its row among the kept rows
        self.kept_of_row = torch.tensor([position[c] for c in clip_of_row.tolist()], device=clip_of_row.device)
        self.handles: list[Any] = []
        self._active: set[int] = set()
        if encoder:
            self.handles.append(model.get_encoder().register_forward_hook(self._expand_encoder))
        if len(first) < self.rows:
            for name, module in model.get_decoder().named_modules():
                if name.endswith(("encoder_attn.k_proj", "encoder_attn.v_proj")):
                    self.handles.append(module.register_forward_pre_hook(self._keep_one_row_per_clip))
                    self.handles.append(module.register_forward_hook(self._expand_projection))

    def _expand_encoder(self, _module: nn.Module, _args: Any, output: Any) -> BaseModelOutput:
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        return BaseModelOutput(last_hidden_state=hidden.index_select(0, self.clip_of_row.to(hidden.device)))

    def _keep_one_row_per_clip(self, module: nn.Module, args: tuple) -> tuple | None:
        states = args[0]
        if states.shape[0] != self.rows:  # not this pass's rows: leave it alone
            return None
        self._active.add(id(module))
        return (states.index_select(0, self.first_rows.to(states.device)), *args[1:])

    def _expand_projection(self, module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if id(module) not in self._active:
            return None
        self._active.discard(id(module))
        return output.index_select(0, self.kept_of_row.to(output.device))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


# --------------------------------------------------------------------------------------------------
# The Whisper policy family
# --------------------------------------------------------------------------------------------------


@register_policy
class WhisperPolicy(SpeechPolicy):
    """Speech encoder-decoder policies (Whisper first): decoder prefix as the prompt, G samples per clip from
    one encoder pass, decoder log-probs with the encoder and cross-attention K/V once per clip.

    Built once: the decoder prefix, the feature window, the suppressed tokens and the greedy generation config
    (``__init__``), the sampling config (``configure_sampling``). Each option is validated here, once.
    """

    family = "whisper"
    token_critic = True  # decoder states per token: PPO's 'separate' and 'shared' critics
    lora_target_modules = ("q_proj", "k_proj", "v_proj", "out_proj")  # encoder, decoder and cross attention
    description = "Whisper (WhisperForConditionalGeneration)"
    auto_model_class = AutoModelForSpeechSeq2Seq

    def __init__(self, model: nn.Module, processor: Any, options: PolicyOptions):
        super().__init__(model, processor, options)
        base = peft_base(model)
        self.config = base.config
        self.prompt_ids = decoder_prefix_ids(self.tokenizer, options.language, options.task, options.predict_timestamps)
        self.eos_token_ids = [int(self.tokenizer.eos_token_id)]
        self.frames = feature_frames(self.config, self.feature_extractor, options.pad_features_to)
        self.decoder_positions = getattr(self.config, "max_target_positions", None)
        if (
            self.decoder_positions is not None
            and options.max_completion_length is not None
            and len(self.prompt_ids) + options.max_completion_length > self.decoder_positions
        ):
            raise ValueError(
                f"max_completion_length={options.max_completion_length} plus the {len(self.prompt_ids)}-token decoder "
                f"prefix exceeds the decoder's max_target_positions={self.decoder_positions}; set "
                f"max_completion_length <= {self.decoder_positions - len(self.prompt_ids)}"
            )
        self.suppress_tokens, self.begin_suppress_tokens = suppressed_tokens(
            base, self.tokenizer, options.predict_timestamps
        )
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.eos_token_ids[0])
        self.greedy_config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_length=self._max_length(options.max_completion_length or 128),  # not max_new_tokens: clashes
            eos_token_id=self.eos_token_ids,  # with the checkpoint's max_length
            pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.prompt_ids[0],
            suppress_tokens=self.suppress_tokens or None,
            begin_suppress_tokens=self.begin_suppress_tokens or None,
            disable_compile=True,
        )
        self._greedy_configs: dict[int, GenerationConfig] = {}
        self.sampling_config: GenerationConfig | None = None

    # ---- family selection ----------------------------------------------------------------------

    @classmethod
    def accepts(cls, model: Any) -> bool:
        # By class, not by duck typing: other encoder-decoders with `input_features` (a ParakeetForTDT says
        # is_encoder_decoder and has get_encoder) are not Whisper and must not be trained as if they were.
        return isinstance(peft_base(model), WhisperForConditionalGeneration)

    @classmethod
    def accepts_config(cls, config: Any) -> bool:
        return getattr(config, "model_type", None) == "whisper"

    def sft_collator(self, audio_column: str = "audio", text_column: str = "text") -> SpeechSeq2SeqCollator:
        return SpeechSeq2SeqCollator(
            self.processor,
            frames=self.frames,
            audio_column=audio_column,
            text_column=text_column,
        )

    def finish_saved_folder(self, folder: Any) -> None:
        """Token order and decoder prefix the ASR pipeline reads (`rlnf.policies.asr_pipeline.convert_folder`)."""
        from .asr_pipeline import convert_folder

        convert_folder(folder, language=self.options.language, task=self.options.task)

    # ---- checks --------------------------------------------------------------------------------

    def check_args(self, args: Any) -> None:
        if getattr(args, "cast_lm_head_to_fp32", False):
            raise ValueError(
                "cast_lm_head_to_fp32=True is not supported for Whisper policies: TRL casts a module named "
                "'lm_head', and Whisper's output projection is 'proj_out', tied to the decoder's token embeddings. "
                "Set cast_lm_head_to_fp32=False (the log-probs are computed in chunks by TRL's fused head)."
            )
        spec = self.config
        if getattr(spec, "apply_spec_augment", False) and (
            getattr(spec, "mask_time_prob", 0) > 0 or getattr(spec, "mask_feature_prob", 0) > 0
        ):
            raise ValueError(
                "the policy's config has apply_spec_augment=True: SpecAugment masks the input features at random "
                "in training mode, so the loss pass would score each transcript under other audio than it was "
                "sampled from (wrong ratios and KL). Set model.config.apply_spec_augment = False for RL."
            )

    def check_peft_config(self, peft_config: Any) -> None:
        if peft_config is None:
            return
        if getattr(peft_config, "task_type", None) is not None:
            raise ValueError(
                f"peft_config.task_type={peft_config.task_type!r}: PEFT's task wrappers break the Whisper forward "
                "(duplicate input_ids). Use a LoraConfig without task_type."
            )
        targets = getattr(peft_config, "target_modules", None) or []
        if "proj_out" in (targets if not isinstance(targets, str) else [targets]):
            raise ValueError(
                "LoRA on proj_out is not supported: the log-probs read proj_out.weight directly, so the "
                "adapter would never train. Remove 'proj_out' from target_modules."
            )

    def prepare_model(self, model: nn.Module) -> None:
        encoder = peft_base(model).get_encoder()
        if self.options.freeze_encoder:
            encoder.requires_grad_(False)
        # A frozen encoder without adapters gives the same states for policy, old policy and reference:
        # compute them once per clip at generation time and reuse them in every pass.
        self.share_encoder_states = self.options.freeze_encoder and not has_adapters(encoder)

    # ---- audio -----------------------------------------------------------------------------------

    def clip_inputs(self, waveforms: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> dict:
        features = extract_features(self.feature_extractor, waveforms, self.frames)
        return {"input_features": features.to(device, dtype)}

    def input_dtype(self, model: nn.Module) -> torch.dtype:
        return next(peft_base(model).get_encoder().parameters()).dtype

    def _max_length(self, new_tokens: int) -> int:
        """Prefix + ``new_tokens``, never more positions than the decoder has (tiny policies have 64)."""
        length = len(self.prompt_ids) + int(new_tokens)
        return min(length, int(self.decoder_positions)) if self.decoder_positions is not None else length

    # ---- sampling --------------------------------------------------------------------------------

    def configure_sampling(self, generation_kwargs: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        """TRL's sampling settings plus what Whisper needs: the decoder start and the checkpoint's suppressed
        tokens (timestamps too, unless predicted); ``overrides`` (``args.generation_kwargs``) still win."""
        extra = {
            "decoder_start_token_id": self.prompt_ids[0],
            "suppress_tokens": self.suppress_tokens or None,
            "begin_suppress_tokens": self.begin_suppress_tokens or None,
            # The prefix has a fixed length: a total length says the same as max_new_tokens without clashing
            # with the checkpoint's own max_length (transformers warns on every call otherwise).
            "max_new_tokens": None,
            "max_length": len(self.prompt_ids) + (self.options.max_completion_length or 128),
        }
        self.generation_kwargs = {**generation_kwargs, **extra, **(overrides or {})}
        self.sampling_config = GenerationConfig(**self.generation_kwargs, disable_compile=True)

    def encode(self, model: nn.Module, clips: ClipBatch) -> torch.Tensor:
        """THE encoder call of generation: once per unique clip."""
        return peft_base(model).get_encoder()(**clips.inputs).last_hidden_state

    def sample(self, model: nn.Module, clips: ClipBatch) -> list[list[int]]:
        if self.sampling_config is None:
            raise RuntimeError("configure_sampling() must be called before sample()")
        states = self.encode(model, clips)  # encoder: once per unique clip ...
        if self.share_encoder_states:
            clips.encoder_states = states
        hidden = states.index_select(0, clips.clip_of_row)  # ... expanded to its G samples
        hooks = ClipHooks(peft_base(model), clips.clip_of_row, encoder=False)  # cross-attention K/V per clip
        try:
            sequences = generate_from_encoder(model, hidden, self.prompt_ids, self.sampling_config)
        finally:
            hooks.remove()
        return completion_ids(sequences, len(self.prompt_ids), self.eos_token_ids)

    # ---- scoring ---------------------------------------------------------------------------------

    def chunk_scorer(self, model: nn.Module, batch: ScoringPass) -> ChunkScorer:
        """Decoder log-probs of the completions given the audio; encoder once per unique clip per pass.

        The prefix may be left-padded (TRL's ``pad_to_multiple_of``): decoder positions count real tokens only,
        as at sampling time (Whisper's positions are learned, so a shift changes every log-prob).
        """
        core = peft_base(extract_model_from_parallel(model))
        keep = batch.logits_to_keep

        def score(rows: torch.Tensor, chunk: ClipBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
            ids, mask = batch.input_ids[rows], batch.attention_mask[rows]
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-keep] = -100
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            kwargs: dict[str, Any] = {
                "decoder_input_ids": ids,
                "decoder_attention_mask": mask,
                "decoder_position_ids": positions,
                "labels": labels,
                "fused_lm_head": True,
            }
            shared = chunk.encoder_states is not None  # frozen encoder: reuse the states from generation
            hooks = ClipHooks(core, chunk.clip_of_row, encoder=not shared)
            try:
                if shared:
                    hidden = chunk.encoder_states.index_select(0, chunk.clip_of_row)
                    outputs = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), **kwargs)
                else:  # the encoder runs once per unique clip inside the forward; ClipHooks expands its output
                    outputs = model(**chunk.inputs, **kwargs)
            finally:
                if batch.hook_sink is not None and torch.is_grad_enabled():
                    batch.hook_sink.append(hooks)  # backward may recompute checkpointed layers: keep the hooks
                else:
                    hooks.remove()
            entropy = outputs.entropy[:, -keep:] if batch.compute_entropy else None
            return outputs.log_probs[:, -keep:], entropy

        return score

    # ---- greedy decoding -------------------------------------------------------------------------

    def _greedy_config(self, max_new_tokens: int | None) -> GenerationConfig:
        """The greedy config for a token budget: built once per budget (the default one in ``__init__``)."""
        if max_new_tokens is None or self._max_length(max_new_tokens) == self.greedy_config.max_length:
            return self.greedy_config
        if max_new_tokens not in self._greedy_configs:
            config = copy.deepcopy(self.greedy_config)
            config.max_length = self._max_length(max_new_tokens)
            self._greedy_configs[max_new_tokens] = config
        return self._greedy_configs[max_new_tokens]

    def greedy_decoder(self, model: nn.Module, max_new_tokens: int | None) -> Callable[[ClipBatch], list[str]]:
        """Greedy decoding from the clips' encoder states after the decoder prefix, within the token budget."""
        config = self._greedy_config(max_new_tokens)

        def decode(clips: ClipBatch) -> list[str]:
            with torch.no_grad():
                sequences = generate_from_encoder(model, self.encode(model, clips), self.prompt_ids, config)
            ids = completion_ids(sequences, len(self.prompt_ids), self.eos_token_ids)
            return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

        return decode


class SpeechSeq2SeqCollator:
    """Rows ``{audio, text}`` -> ``input_features`` and ``labels`` for an encoder-decoder speech policy.

    Labels are the tokenizer's decoder prefix + text + end-of-text, without the decoder start token (the
    model prepends it when it shifts labels right); padding is -100 so the loss ignores it.
    """

    def __init__(
        self, processor: Any, *, frames: int | None = None, audio_column: str = "audio", text_column: str = "text"
    ) -> None:
        self.frames = frames  # the encoder's window (rlnf.policies.whisper.feature_frames); None: longest clip
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.audio_column = audio_column
        self.text_column = text_column

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rate = self.feature_extractor.sampling_rate
        waveforms = [
            load_audio(row[self.audio_column], index=i, target_sampling_rate=rate) for i, row in enumerate(rows)
        ]
        features = extract_features(self.feature_extractor, waveforms, self.frames)
        labels = self.tokenizer([row[self.text_column] for row in rows], padding=True, return_tensors="pt")
        ids = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        start = self.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        if bool((ids[:, 0] == start).all()):
            ids = ids[:, 1:]
        return {"input_features": features, "labels": ids}


__all__ = [
    "SpeechSeq2SeqCollator",
    "ClipHooks",
    "WhisperPolicy",
    "clip_chunks",
    "completion_ids",
    "decoder_prefix_ids",
    "extract_features",
    "feature_frames",
    "generate_from_encoder",
    "suppressed_tokens",
    "timestamp_token_ids",
    "transcribe",
]
