"""The seam between speech trainers and policy families: how a policy meets audio.

A speech trainer (GRPO, RLOO, PPO) knows nothing about Whisper or CTC. It hands a `SpeechPolicy` the decoded
clips of a batch and asks it for four things; the policy family (``whisper.py``, ``ctc.py`` ...) answers them.

Contract of a `SpeechPolicy` (every family implements it; ``rlnf/trainers/speech.py`` is the only caller):

* ``clip_inputs(waveforms, device, dtype) -> dict[str, Tensor]``: model inputs for each UNIQUE clip of the batch
  (``{"input_features": [clips, n_mels, frames]}`` for Whisper, ``{"input_values", "attention_mask"}`` for a
  wav2vec2 CTC model), float inputs cast to ``dtype = input_dtype(model)``. The trainer wraps them in a
  `ClipBatch` with ``clip_of_row`` (which clip each row is).
* ``prompt_ids``: the token ids TRL sees as every row's prompt (Whisper's decoder prefix; ``[]`` for CTC).
* ``configure_sampling(generation_kwargs, overrides)``: called ONCE after TRL built its sampling settings
  (temperature, top-k/p...; ``overrides`` = the user's ``args.generation_kwargs``, which win); the family builds
  its own sampling config from them and validates it there.
* ``sample(model, clips) -> list[list[int]]``: one completion (token ids, no prompt, up to and including EOS)
  per ROW of ``clips`` (G rows per clip). The encoder runs ONCE per unique clip; the trainer calls it under
  ``torch.no_grad()``, the accelerator's autocast and the unwrapped model. A family whose clip-only states are
  reusable (frozen encoder, no adapters: ``share_encoder_states``) stores them in ``clips.encoder_states``.
* ``log_probs(model, clips, input_ids, attention_mask, logits_to_keep, *, batch_size, compute_entropy,
  hook_sink) -> (logps [rows, logits_to_keep], entropies | None)``: per-token log-probs of the given
  prompt+completion ids (TRL's layout: prompt left-padded, completion right-padded) under ``model`` (policy,
  old policy or reference). The encoder runs ONCE per clip for all its rows, inside the model's own forward so
  gradients and DDP/FSDP hooks see one ordinary forward. A sequence-level family (CTC: log p(y|x) by the
  forward algorithm) spreads its sequence log-prob over the completion tokens and says so in its docstring.
  Forward hooks the pass registers go to ``hook_sink`` when it is a list (the trainer removes them after
  backward, which may recompute checkpointed layers); otherwise they are removed before returning.
  `SpeechPolicy.log_probs` itself cuts the rows into chunks of whole clips and restores their order; a family
  implements ``chunk_scorer(model, ScoringPass) -> score(rows, chunk)`` for one chunk.
* ``transcribe(model, waveforms, *, batch_size, max_new_tokens) -> list[str]``: greedy transcripts (evaluation).
* ``check_args(args)`` / ``check_peft_config(peft_config)``: refuse, with a message naming the option, what
  the family cannot do correctly. ``prepare_model(model)``: called once with the model TRL will train (PEFT
  wrapped or not): apply ``freeze_encoder`` and decide ``share_encoder_states``.

* ``sft_collator(audio_column, text_column)``: the collator that trains the family with the model's own loss
  (``recipes/sft_asr.py``); ``critic_encoder(model)``: what PPO's audio critic copies; ``token_critic``: whether
  the family has per-token decoder states for PPO's ``separate``/``shared`` critics; ``finish_saved_folder``:
  what a saved folder needs before transformers' ASR pipeline can use it (Whisper: token order and prefix).

A new family is one module: it subclasses `SpeechPolicy` and decorates the class with `register_policy`;
`policy_families` imports every module of ``rlnf.policies`` (and the entry points of the ``rlnf.policy_families``
group, for families that live in other packages), and `policy_for` picks a family by ``accepts`` (by model
class, never by duck typing: no family takes another's models). No edit of this file, the trainers, the recipes
or the CLI.

`ClipBatch` is the per-batch audio every family works on: each unique clip once, and which clip each row is.
Its per-row views travel through TRL's batch dict (shuffled and split with the other per-row entries) as
shared `Clip` objects, so rows of one clip are recognised again by identity in the loss pass.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "rlnf.policy_families"  # families from other packages: `name = "package.module"`

_FAMILIES: list[type[SpeechPolicy]] = []
_DISCOVERED = False

CLIPS_KEY = "audio_clips"  # TRL batch-dict key of the per-row `Clip` views


# --------------------------------------------------------------------------------------------------
# Per-batch audio
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Clip:
    """One clip's model inputs (no batch dim) and, when shared, its encoder states; rows of the clip share it."""

    inputs: dict[str, torch.Tensor]
    encoder_states: torch.Tensor | None = None


@dataclass
class ClipBatch:
    """The audio of the rows being scored: each unique clip once, and which clip each row is."""

    inputs: dict[str, torch.Tensor]  # model inputs, each [clips, ...]
    clip_of_row: torch.Tensor  # [rows] long, index into the clips
    encoder_states: torch.Tensor | None = None  # [clips, T, D]: a frozen encoder's output, reusable

    @property
    def features(self) -> torch.Tensor:
        """The first (main) model input, e.g. Whisper's ``input_features``."""
        return next(iter(self.inputs.values()))

    @property
    def num_clips(self) -> int:
        return int(self.features.shape[0])

    def clip_inputs(self, clip_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Model inputs of the clips ``clip_ids`` (all clips when None)."""
        if clip_ids is None:
            return dict(self.inputs)
        return {name: value.index_select(0, clip_ids.to(value.device)) for name, value in self.inputs.items()}

    def subset(self, rows: torch.Tensor) -> tuple[ClipBatch, torch.Tensor]:
        """The batch of ``rows`` only, and the original index of each of its clips."""
        clip_ids, local = torch.unique(self.clip_of_row[rows], return_inverse=True)
        states = None if self.encoder_states is None else self.encoder_states.index_select(0, clip_ids)
        return ClipBatch(self.clip_inputs(clip_ids), local, states), clip_ids

    def row_views(self) -> list[Clip]:
        """One `Clip` per row (rows of a clip share the object; no copies) for TRL's batch dict."""
        names = list(self.inputs)
        per_clip = [
            dict(zip(names, values, strict=True))
            for values in zip(*(self.inputs[n].unbind(0) for n in names), strict=True)
        ]
        states = self.encoder_states.unbind(0) if self.encoder_states is not None else [None] * len(per_clip)
        clips = [Clip(inputs, state) for inputs, state in zip(per_clip, states, strict=True)]
        return [clips[c] for c in self.clip_of_row.tolist()]

    @classmethod
    def from_row_views(cls, views: Sequence[Clip], device: torch.device) -> ClipBatch:
        """Rebuild the clips of a (shuffled, split) batch: rows that hold the same `Clip` are one clip."""
        order: dict[int, int] = {}
        unique: list[Clip] = []
        clip_of_row = []
        for view in views:
            if not isinstance(view, Clip):
                raise RuntimeError(
                    f"the batch's audio entries are {type(view).__name__}, not Clip: it was not built "
                    "by an rlnf speech trainer"
                )
            if id(view) not in order:
                order[id(view)] = len(unique)
                unique.append(view)
            clip_of_row.append(order[id(view)])
        inputs = {name: torch.stack([u.inputs[name] for u in unique]).to(device) for name in unique[0].inputs}
        has_states = all(u.encoder_states is not None for u in unique)
        return cls(
            inputs=inputs,
            clip_of_row=torch.tensor(clip_of_row, dtype=torch.long, device=device),
            encoder_states=torch.stack([u.encoder_states for u in unique]).to(device) if has_states else None,
        )


def clip_chunks(clip_of_row: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Row indices in chunks of whole clips (at most ``batch_size`` rows unless one clip has more), so no
    clip's encoder runs twice in one pass."""
    rows_of: dict[int, list[int]] = {}
    for row, clip in enumerate(clip_of_row.tolist()):
        rows_of.setdefault(clip, []).append(row)
    chunks: list[list[int]] = []
    chunk: list[int] = []
    for rows in rows_of.values():
        if chunk and len(chunk) + len(rows) > batch_size:
            chunks.append(chunk)
            chunk = []
        chunk.extend(rows)
    if chunk:
        chunks.append(chunk)
    return [torch.tensor(c, dtype=torch.long, device=clip_of_row.device) for c in chunks]


@dataclass
class ScoringPass:
    """One log-prob pass (TRL's layout: prompt left-padded, completion right-padded); see ``log_probs``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logits_to_keep: int
    compute_entropy: bool = False
    hook_sink: list | None = None  # forward hooks go here when it is a list (removed by the trainer)


ChunkScorer = Callable[[torch.Tensor, ClipBatch], tuple[torch.Tensor, torch.Tensor | None]]


# --------------------------------------------------------------------------------------------------
# Options every family reads
# --------------------------------------------------------------------------------------------------


@dataclass
class PolicyOptions:
    """What a policy family reads from a trainer config (every speech config has these fields)."""

    sampling_rate: int = 16000
    language: str | None = None
    task: str | None = "transcribe"
    predict_timestamps: bool = False
    pad_features_to: str = "model"
    max_completion_length: int | None = 128
    freeze_encoder: bool = False
    freeze_feature_encoder: bool = True  # CTC: keep the conv front end frozen (as CTC fine-tuning does)

    @classmethod
    def from_args(cls, args: Any = None, **overrides: Any) -> PolicyOptions:
        """Options from a config object (missing attributes keep their defaults), then ``overrides``."""
        if isinstance(args, PolicyOptions):
            values = {f.name: getattr(args, f.name) for f in fields(cls)}
        else:
            values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        values.update(overrides)
        return cls(**values)


# --------------------------------------------------------------------------------------------------
# The policy family interface
# --------------------------------------------------------------------------------------------------


class SpeechPolicy(ABC):
    """How one policy family turns audio into features, samples, log-probs and greedy transcripts.

    Built once per trainer (``policy_for``); it holds the tokenizer, feature extractor and validated options,
    never the model (the trainer passes the model it wants scored: policy, old policy, reference, unwrapped).
    """

    family: ClassVar[str] = ""
    description: ClassVar[str] = ""  # for the "no family accepts this model" error
    auto_model_class: ClassVar[Any] = None  # how a path or hub id is loaded

    token_critic: ClassVar[bool] = False  # per-token decoder states for PPO's 'separate' / 'shared' critics
    lora_target_modules: ClassVar[tuple[str, ...]] = ()  # LoRA targets when a peft_config names none

    prompt_ids: list[int]
    eos_token_ids: list[int]
    share_encoder_states: bool = False

    def __init__(self, model: nn.Module, processor: Any, options: PolicyOptions):
        self.tokenizer, self.feature_extractor = split_processor(processor)
        self.processor = processor
        self.options = options
        rate = getattr(self.feature_extractor, "sampling_rate", None)
        if rate is not None and int(rate) != options.sampling_rate:
            raise ValueError(f"the feature extractor works at {rate} Hz but sampling_rate is {options.sampling_rate}")

    @classmethod
    @abstractmethod
    def accepts(cls, model: Any) -> bool:
        """Whether this family handles ``model`` (an instance)."""

    @classmethod
    def accepts_config(cls, config: Any) -> bool:
        """Whether this family handles a model with this config (to load a path); default: no."""
        return False

    def check_args(self, args: Any) -> None:
        """Refuse trainer options this family cannot honour (default: none)."""
        return None

    def check_peft_config(self, peft_config: Any) -> None:
        """Refuse PEFT configs that would break this family's forward (default: none)."""
        return None

    def complete_peft_config(self, peft_config: Any) -> None:
        """A LoRA config without ``target_modules`` (``--use_peft`` alone) gets the family's attention
        projections, where peft itself would refuse it; an explicit choice is left alone."""
        if peft_config is None or not self.lora_target_modules:
            return
        if hasattr(peft_config, "target_modules") and peft_config.target_modules is None:
            peft_config.target_modules = set(self.lora_target_modules)
            logger.info("LoRA on the %s family's default targets %s", self.family, sorted(self.lora_target_modules))

    def prepare_model(self, model: nn.Module) -> None:
        """Called once with the model that will be trained (after PEFT wrapping)."""
        return None

    def critic_encoder(self, model: nn.Module) -> nn.Module:
        """The part of ``model`` (a plain transformers model) that takes `clip_inputs` and returns
        ``last_hidden_state``: what PPO's audio critic copies (default: `speech_encoder`)."""
        return speech_encoder(model)

    def sft_collator(self, audio_column: str = "audio", text_column: str = "text") -> Callable:
        """``collate(rows) -> model inputs with labels`` for supervised training with the model's own loss."""
        raise NotImplementedError(f"the {self.family} family has no supervised-training collator")

    def finish_saved_folder(self, folder: Any) -> None:
        """Make a saved model folder ready for transformers' ASR pipeline (default: nothing to do)."""
        return None

    def input_dtype(self, model: nn.Module) -> torch.dtype:
        """The dtype the float model inputs are cast to (default: the model's first float parameter's)."""
        return next(p.dtype for p in model.parameters() if p.is_floating_point())

    @abstractmethod
    def clip_inputs(self, waveforms: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> dict:
        """Model inputs ``{name: [clips, ...]}`` for mono float32 waveforms at ``options.sampling_rate``."""

    @abstractmethod
    def configure_sampling(self, generation_kwargs: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        """Build the sampling configuration once from TRL's generation settings; ``overrides`` (the user's
        ``args.generation_kwargs``) win over what the family adds."""

    @abstractmethod
    def sample(self, model: nn.Module, clips: ClipBatch) -> list[list[int]]:
        """One sampled completion per row of ``clips``; the encoder once per unique clip."""

    def log_probs(
        self,
        model: nn.Module,
        clips: ClipBatch,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        *,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        hook_sink: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs ``[rows, logits_to_keep]`` (and entropies) of the completions: the family's
        `chunk_scorer` on each chunk of whole clips (`clip_chunks`: no clip's encoder runs twice in one pass),
        the rows put back in their order."""
        batch = ScoringPass(input_ids, attention_mask, logits_to_keep, compute_entropy, hook_sink)
        score = self.chunk_scorer(model, batch)
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        for rows in clip_chunks(clips.clip_of_row, batch_size or input_ids.size(0)):
            chunk, _ = clips.subset(rows)
            parts.append((rows, *score(rows, chunk)))
        order = torch.cat([rows for rows, _, _ in parts]).argsort()
        logps = torch.cat([p for _, p, _ in parts])[order]
        entropies = torch.cat([e for _, _, e in parts])[order] if compute_entropy else None
        return logps, entropies

    @abstractmethod
    def chunk_scorer(self, model: nn.Module, batch: ScoringPass) -> ChunkScorer:
        """``score(rows, chunk) -> (logps [len(rows), logits_to_keep], entropies | None)`` for the rows ``rows``
        of ``batch`` (their clips: ``chunk``); work for the whole pass (checks, unwrapping) is done here, once."""

    def transcribe(
        self,
        model: nn.Module,
        waveforms: Sequence[np.ndarray],
        *,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Greedy transcripts of decoded waveforms: the family's `greedy_decoder` on ``batch_size`` clips at a
        time, the model in eval mode meanwhile (its training flag restored after)."""
        decode = self.greedy_decoder(model, max_new_tokens)
        device = next(model.parameters()).device
        dtype = self.input_dtype(model)
        was_training = model.training
        model.eval()
        texts: list[str] = []
        try:
            for start in range(0, len(waveforms), batch_size):
                part = waveforms[start : start + batch_size]
                texts.extend(
                    decode(ClipBatch(self.clip_inputs(part, device, dtype), torch.arange(len(part), device=device)))
                )
        finally:
            model.train(was_training)
        return texts

    @abstractmethod
    def greedy_decoder(self, model: nn.Module, max_new_tokens: int | None) -> Callable[[ClipBatch], list[str]]:
        """``decode(clips) -> texts``: greedy transcripts of one batch of clips (one row per clip), under
        ``model`` in eval mode; settings for the whole call (the token budget) are resolved here, once."""


# --------------------------------------------------------------------------------------------------
# Sequence-level families (CTC, transducers): log p(y|x) per transcript, not per token
# --------------------------------------------------------------------------------------------------


def labels_before_end(
    completion_ids: torch.Tensor, completion_mask: torch.Tensor, end_token: int, family: str
) -> list[list[int]]:
    """Label sequences of TRL's right-padded completions: the real tokens without the end token the family's
    sampler appends. Rows with no real token (masked out by the trainer) are empty; a completion that does not
    end with ``end_token`` was not sampled by this family: an error naming it."""
    labels = []
    for row, (ids, mask) in enumerate(zip(completion_ids.tolist(), completion_mask.tolist(), strict=True)):
        real = [t for t, m in zip(ids, mask, strict=True) if m]
        if real and real[-1] != end_token:
            raise RuntimeError(
                f"completion {row} does not end with the {family} end token {end_token}: it was not sampled by "
                f"the {family} policy (last token {real[-1]})"
            )
        labels.append(real[:-1])
    return labels


def check_sequence_level_args(args: Any, config: Any, family: str) -> None:
    """Refusals every sequence-level family shares (CTC, TDT): TRL options that act on single tokens, and
    configuration randomness (SpecAugment, LayerDrop) that makes the loss pass another function than sampling."""
    if getattr(args, "cast_lm_head_to_fp32", False):
        raise ValueError(
            f"cast_lm_head_to_fp32=True is not supported for {family} policies: TRL casts a module named 'lm_head', "
            "and their log-probs are already computed in float32. Set cast_lm_head_to_fp32=False."
        )
    if getattr(args, "top_entropy_quantile", 1.0) < 1.0:
        raise ValueError(
            f"top_entropy_quantile < 1 selects tokens by entropy; a {family} policy scores whole transcripts (every "
            "token of a completion carries the same share of log p(y|x)), so set top_entropy_quantile=1.0"
        )
    encoder = getattr(config, "encoder_config", config)
    for part in (config, encoder):
        if getattr(part, "apply_spec_augment", False) and (
            getattr(part, "mask_time_prob", 0) > 0 or getattr(part, "mask_feature_prob", 0) > 0
        ):
            raise ValueError(
                f"the {family} policy's config has apply_spec_augment=True: SpecAugment masks frames at random in "
                "training mode, so the loss pass would score each transcript under other audio than it was "
                "sampled from (wrong ratios and KL). Load the model with it off for RL: "
                "from_pretrained(path, apply_spec_augment=False), or set it in the checkpoint's config.json (what "
                "the recipes load)."
            )
    if getattr(encoder, "layerdrop", 0.0) > 0:
        raise ValueError(
            f"the {family} policy's config has layerdrop={encoder.layerdrop}: LayerDrop skips whole layers at random "
            "in training mode, so the loss pass would score transcripts under another network than the one "
            "that sampled them. Load the model with it off for RL: wav2vec2-style models "
            "from_pretrained(path, layerdrop=0.0); Parakeet: encoder_config.layerdrop = 0.0 in the checkpoint's "
            "config.json (what the recipes load; transformers' Parakeet default is 0.1)."
        )


def check_sequence_level_peft(peft_config: Any, options: PolicyOptions, family: str, frozen_trains: str) -> None:
    """PEFT refusals the sequence-level families share: a ``task_type`` (PEFT has no CTC or transducer task, and
    its task wrappers rename the inputs) and ``freeze_encoder`` (it would freeze the LoRA weights too;
    ``frozen_trains`` says what it leaves trainable)."""
    if peft_config is None:
        return
    if getattr(peft_config, "task_type", None) is not None:
        raise ValueError(
            f"peft_config.task_type={peft_config.task_type!r}: PEFT has no {family} task and its task wrappers "
            "rename the inputs. Use a LoraConfig without task_type (e.g. target_modules=['q_proj', 'v_proj'])."
        )
    if options.freeze_encoder:
        raise ValueError(
            f"freeze_encoder=True together with a peft_config: freeze_encoder trains the {frozen_trains} only and "
            "would freeze the LoRA weights too. Use one or the other."
        )


def apply_freezing(
    model: nn.Module,
    options: PolicyOptions,
    freeze_encoder: Callable[[nn.Module], None],
    freeze_feature_encoder: Callable[[nn.Module], None],
) -> nn.Module:
    """``freeze_encoder`` / ``freeze_feature_encoder`` as the options ask, each done by the family's own function
    on the transformers model under ``model`` (returned); ``freeze_encoder`` over LoRA adapters is refused (it
    would freeze them)."""
    base = peft_base(model)
    if options.freeze_encoder:
        if has_adapters(model):
            raise ValueError("freeze_encoder=True would freeze the model's LoRA weights; use one or the other")
        freeze_encoder(base)
    if options.freeze_feature_encoder:
        freeze_feature_encoder(base)
    return base


def spread_over_tokens(sequence_log_probs: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """``[rows] -> [rows, tokens]``: each row's sequence log-prob spread evenly over its real completion tokens,
    so TRL's sums give log p(y|x) back and ``importance_sampling_level="sequence"`` (GSPO's mean) its
    length-normalised ratio; the KL term uses the same quantity against the reference."""
    mask = completion_mask.to(sequence_log_probs.dtype)
    return sequence_log_probs[:, None] * mask / mask.sum(-1, keepdim=True).clamp(min=1.0)


def speech_encoder(model: nn.Module) -> nn.Module:
    """The part of a speech model that takes its audio inputs and returns ``last_hidden_state``: the encoder of an
    encoder-decoder (Whisper); the base model under a CTC head (wav2vec2, HuBERT, MMS: ``model.wav2vec2``, whose
    own ``get_encoder()`` is the transformer stack, which does not take audio); else ``get_encoder()`` (Parakeet,
    whose head sits on the encoder)."""
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    if model.base_model is not model:
        return model.base_model
    return model.get_encoder()


def register_policy(cls: type[SpeechPolicy]) -> type[SpeechPolicy]:
    """Class decorator: make ``cls`` a family `policy_for` can pick."""
    if cls not in _FAMILIES:
        _FAMILIES.append(cls)
    return cls


def policy_families() -> list[type[SpeechPolicy]]:
    """Every registered family: the modules of ``rlnf.policies`` and the ``rlnf.policy_families`` entry points
    are imported once (importing a family's module registers it)."""
    global _DISCOVERED
    if not _DISCOVERED:
        import rlnf.policies

        for module in pkgutil.iter_modules(rlnf.policies.__path__):
            importlib.import_module(f"rlnf.policies.{module.name}")
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            entry_point.load()
        _DISCOVERED = True
    return list(_FAMILIES)


def _no_family(what: str) -> TypeError:
    known = "; ".join(f"{f.family}: {f.description}" for f in policy_families())
    return TypeError(
        f"no rlnf policy family handles {what}. Known families: {known}. For text policies use TRL's trainers."
    )


def policy_for(model: Any, processor: Any, args: Any = None) -> SpeechPolicy:
    """The `SpeechPolicy` of the family that accepts ``model``, built with ``processor`` and ``args``'s options."""
    for family in policy_families():
        if family.accepts(model):
            return family(model, processor, PolicyOptions.from_args(args))
    raise _no_family(type(model).__name__)


def load_policy_model(name_or_path: str, **kwargs: Any) -> nn.Module:
    """Load a path or hub id with the Auto class of the family its config belongs to."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=kwargs.get("trust_remote_code", False))
    for family in policy_families():
        if family.accepts_config(config):
            return family.auto_model_class.from_pretrained(name_or_path, **kwargs)
    raise _no_family(f"{name_or_path!r} (model_type {getattr(config, 'model_type', None)!r})")


def transcribe(
    model: Any,
    processor: Any,
    audios: Sequence[Any],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    sampling_rate: int | None = None,
    device: Any = None,
    **options: Any,
) -> list[str]:
    """Greedy transcripts of ``audios`` (anything ``rlnf.audio.load_audio`` reads) by any registered policy
    family; ``options`` are `PolicyOptions` fields (``language``, ``task``, ``predict_timestamps``,
    ``pad_features_to``). ``device``: move the model there first."""
    from rlnf.audio import load_audio

    rate = sampling_rate or int(processor.feature_extractor.sampling_rate)
    policy = policy_for(model, processor, PolicyOptions(sampling_rate=rate, max_completion_length=None, **options))
    if device is not None:
        model.to(device)
    waveforms = [load_audio(a, rate, index=i, target_sampling_rate=rate) for i, a in enumerate(audios)]
    return policy.transcribe(model, waveforms, batch_size=batch_size, max_new_tokens=max_new_tokens)


def split_processor(processor: Any) -> tuple[Any, Any]:
    """``(tokenizer, feature_extractor)`` of a speech processor; a clear error for anything else."""
    tokenizer = getattr(processor, "tokenizer", None)
    feature_extractor = getattr(processor, "feature_extractor", None)
    if tokenizer is None or feature_extractor is None:
        raise TypeError(
            f"processing_class must be the policy's processor with a feature extractor and a tokenizer (e.g. "
            f"WhisperProcessor, Wav2Vec2Processor), got {type(processor).__name__}"
        )
    return tokenizer, feature_extractor


def peft_base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (its adapter layers stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def has_adapters(module: nn.Module) -> bool:
    """Whether PEFT adapter layers sit anywhere in ``module``."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return any(isinstance(m, BaseTunerLayer) for m in module.modules())


__all__ = [
    "CLIPS_KEY",
    "ENTRY_POINT_GROUP",
    "ChunkScorer",
    "Clip",
    "ClipBatch",
    "PolicyOptions",
    "ScoringPass",
    "SpeechPolicy",
    "clip_chunks",
    "has_adapters",
    "load_policy_model",
    "peft_base",
    "policy_families",
    "policy_for",
    "register_policy",
    "apply_freezing",
    "check_sequence_level_args",
    "check_sequence_level_peft",
    "labels_before_end",
    "speech_encoder",
    "spread_over_tokens",
    "split_processor",
    "transcribe",
]
