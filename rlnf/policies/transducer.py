"""Token-and-duration transducer policies (transformers' ``ParakeetForTDT``): on-policy GRPO without beams.

A TDT decodes with a pointer ``t`` over the clip's ``T`` encoder frames and a label state ``u`` (the LSTM
prediction network after the ``u`` labels emitted so far; it moves on labels only, never on blanks). At each
step the joint ``head(relu(encoder_projector(enc_t) + decoder_u))`` gives token logits (the vocabulary, blank
LAST) and duration logits (``config.durations``, e.g. ``[0, 1, 2, 3, 4]``): a token is emitted and ``t``
advances by the duration.

Only the temperature shapes sampling (top-k/p, min-p and repetition penalty are refused). The distribution this
family samples from and scores, exactly (one step at frame ``t < T``, label state ``u``,
``k`` labels already emitted with duration 0 at this frame; ``tau`` = the sampling temperature):

1. token ~ ``softmax(token_logits / tau)`` over the whole vocabulary, except when ``u`` already is the label cap
   ``L = max_completion_length - 1`` (the completion is the labels plus one end token): then the token is blank
   with probability 1 (no cap when ``max_completion_length`` is None).
2. duration ~ ``softmax(duration_logits / tau)`` RENORMALISED over the valid durations: ``t + d <= T`` (the path
   lands exactly on ``T``, never past it); ``d >= 1`` for a blank; ``d >= 1`` for a label once ``k`` reached
   ``config.max_symbols_per_step`` = M (so a frame holds at most M zero-duration labels, i.e. at most M + 1
   labels counting the one that moves on, and decoding ends).
   Durations must contain 1, so every step has a valid duration (``t < T``) and no state is a dead end.
3. ``t += d``; a label appends to the transcript (``u += 1``) and feeds the prediction network; ``k`` becomes
   ``k + 1`` after a zero-duration label and 0 after any move. The path ends when ``t == T`` (after a blank or a
   label). The completion is the labels followed by ONE blank as the end token (as in the CTC family: TRL
   needs a non-empty completion ending with an EOS id; ``eos_token_ids = [blank]``).

This is not the distribution of the model's TDT loss (``transformers/loss/loss_tdt.py``): that lattice drops
blank-with-duration-0 and overshooting arcs without renormalising, only counts paths ending in a blank on the
last frame, and leaks probability (summed over every transcript it is below 1). Here every step is a proper
distribution, so ``sum_y p(y|x) = 1`` (``tests/test_transducer.py`` checks it by enumeration). The loss's
training-time regularisers (``sigma``, ``omega``) never enter: they are not log-likelihoods.

* sampling: the encoder and ``encoder_projector`` run ONCE per unique clip (``get_audio_features``); the G rows
  of every clip then step together, one joint call per step over the active rows, and the prediction network
  (``model.decoder`` with transformers' ``ParakeetRNNTDecoderCache``, the way ``generate`` runs it) is advanced
  only for rows that emitted a label.
* scoring: TRL hands back the completion ids, not the alignment, so a completion is scored by ``log p(y|x)``,
  the sum over ALL alignments (token/duration paths with ``y`` as labels) under the same renormalised
  distribution: a forward algorithm over states ``(t, u, k)`` with exactly the masks above. The model runs ONE
  ordinary forward per chunk (``model(input_features, attention_mask, decoder_input_ids)``: encoder once per
  clip, prediction network once per row, inside the trainer's autograd, so DDP sees one forward; FSDP is
  untested); a pre-hook on the joint takes its two inputs and computes, row by row, the joint lattice
  ``[T, U+1, V+D]`` reduced to what the forward algorithm reads (blank and next-label log-probs, duration
  logits), a few frames at a time (`lattice_terms`). Memory: one chunk of one row's lattice at a time while the
  joint runs, plus, per row, the reduced terms and the forward algorithm's states kept for backward (a few dozen
  floats per ``(t, u)`` cell with ``D = 5``, ``M = 10``); what autograd keeps of the lattices themselves is
  bounded per pass (`JointCapture`: rows past 256 MB are checkpointed and recomputed in backward, one row at a
  time), where a TDT-loss style pass holds ``[rows, T, U+1, V+D]`` logits and their log-softmax for the whole
  chunk. Measured on CPU for one 30 s clip (``T = 375``, ``U = 100``, 1,024 tokens + blank, ``D = 5``,
  decoder_hidden 640, tiny encoder; ``python benchmarks/bench_ctc_step.py --score-memory --threads 1``): peak
  0.05 GiB above the model for 8 rows forward only and 0.50 GiB with backward (1 row: 0.02 / 0.38 GiB); the full
  lattice's logits alone are 0.145 GiB per row.
  Cost: the joint lattice is ``T x (U+1) x H x (V+D)`` multiply-adds per row and pass, which G multiplies (each
  sample has its own label states); it is most of a TDT step's G-proportional time.
  ``log p(y|x)`` is spread evenly over the completion's tokens, as the CTC family does, so sequence-level
  ratios are GSPO's length-normalised ones.
* greedy evaluation: transformers' own ``generate`` (greedy, durations by argmax) on a COPY of the model's
  generation config that holds the blank as decoder start and the duration ids in ``suppress_tokens``
  (``generate`` takes the argmax over the joint's whole output, tokens and durations; without the suppression a
  duration index is taken as a token and the prediction network's embedding fails). The model's own config is
  not changed; `TDTPolicy.finish_saved_folder` writes the same two fields into a saved folder.

``ParakeetForRNNT`` (a transducer without durations) is refused with the reason: its loss wraps
``torchaudio.functional.rnnt_loss``, and torchaudio does not import with the CPU torch build rlnf is developed
with, so its supervised warm start and checks against transformers could not run.

`TDTPolicy` is the `SpeechPolicy` of this family (see ``rlnf/policies/base.py`` for the contract).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import (
    AutoModelForTDT,
    GenerationConfig,
    ParakeetFeatureExtractor,
    ParakeetForRNNT,
    ParakeetForTDT,
    ParakeetProcessor,
    ParakeetTDTConfig,
    ParakeetTokenizer,
)
from transformers.models.parakeet.generation_parakeet import ParakeetRNNTDecoderCache

from ..compat import encoder_output_lengths
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
from .ctc import CTCCollator, decode_labels, label_text_tokenizer, min_clip_samples

NEG = -1.0e9  # log of an impossible event: finite, so gradients through masked arcs are 0, never NaN
_IMPOSSIBLE = NEG / 2  # a forward-algorithm result below this is no path at all: reported as -inf

_RNNT_REFUSED = (
    "is an RNN-T without durations: rlnf's transducer family supports ParakeetForTDT only. ParakeetForRNNT's own "
    "loss wraps torchaudio.functional.rnnt_loss, and torchaudio does not import with the CPU torch build rlnf is "
    "developed and tested with (libc10_cuda.so), so its supervised warm start and its checks against "
    "transformers could not run. Convert a TDT checkpoint instead (convert_nemo_to_hf.py --model_type tdt)."
)


# --------------------------------------------------------------------------------------------------
# The step distribution (shared by the sampler and the forward algorithm)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TDTRules:
    """What fixes the renormalised step distribution (see the module docstring)."""

    vocab_size: int  # tokens, blank included (the joint's first outputs)
    blank: int
    durations: tuple[int, ...]
    max_symbols_per_step: int  # zero-duration labels allowed at one frame
    max_labels: int | None = None  # label cap (max_completion_length - 1); None: none
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.durations or any(int(d) != d or d < 0 for d in self.durations):
            raise ValueError(f"TDT durations must be non-negative integers, got {list(self.durations)}")
        if len(set(self.durations)) != len(self.durations):
            raise ValueError(f"TDT durations must be distinct, got {list(self.durations)}")
        if 1 not in self.durations:
            raise ValueError(
                f"TDT durations {list(self.durations)} do not contain 1: a step one frame before the end could then "
                "have no valid duration (rlnf's sampler never overshoots the last frame)"
            )
        if self.max_symbols_per_step < 0:
            raise ValueError(f"max_symbols_per_step must be >= 0, got {self.max_symbols_per_step}")
        if self.max_labels is not None and self.max_labels < 0:
            raise ValueError(f"the label cap must be >= 0, got {self.max_labels}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 for transducer sampling, got {self.temperature}")
        if not 0 <= self.blank < self.vocab_size:
            raise ValueError(f"blank {self.blank} is outside the {self.vocab_size} tokens")

    @property
    def zero_index(self) -> int | None:
        return self.durations.index(0) if 0 in self.durations else None


def masked_log_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the ``valid`` entries of the last dim; invalid entries are `NEG` (probability 0)."""
    masked = logits.masked_fill(~valid, NEG)  # (x - logsumexp: 1.5x faster than log_softmax over a last dim of ~5)
    return (masked - torch.logsumexp(masked, dim=-1, keepdim=True)).masked_fill(~valid, NEG)


def valid_durations(
    durations: torch.Tensor, frames_left: torch.Tensor, allow_zero: torch.Tensor | bool
) -> torch.Tensor:
    """``[..., D]`` bool: durations that do not pass the last frame (``d <= frames_left``), 0 only where
    ``allow_zero``."""
    fits = durations <= frames_left.unsqueeze(-1)
    if isinstance(allow_zero, bool):
        return fits & (durations > 0) if not allow_zero else fits
    return fits & ((durations > 0) | allow_zero.unsqueeze(-1))


def token_log_probs(token_logits: torch.Tensor, rules: TDTRules, at_cap: torch.Tensor | None = None) -> torch.Tensor:
    """Step token log-probs ``[..., V]``: ``log_softmax(logits / tau)``; rows ``at_cap`` (the label cap reached)
    are blank with probability 1."""
    log_probs = torch.log_softmax(token_logits.float() / rules.temperature, dim=-1)
    if at_cap is None:
        return log_probs
    forced = torch.full_like(log_probs, NEG)
    forced[..., rules.blank] = 0.0
    return torch.where(at_cap.unsqueeze(-1), forced, log_probs)


def duration_log_probs(
    duration_logits: torch.Tensor, rules: TDTRules, frames_left: torch.Tensor, allow_zero: torch.Tensor | bool
) -> torch.Tensor:
    """Step duration log-probs ``[..., D]``: ``softmax(logits / tau)`` renormalised over `valid_durations`."""
    durations = torch.tensor(rules.durations, device=duration_logits.device)
    valid = valid_durations(durations, frames_left, allow_zero)
    return masked_log_softmax(duration_logits.float() / rules.temperature, valid)


# --------------------------------------------------------------------------------------------------
# The forward algorithm: log p(y|x) summed over alignments, under the same step distribution
# --------------------------------------------------------------------------------------------------


def _shift_up(values: torch.Tensor) -> torch.Tensor:
    """``out[:, u + 1] = values[:, u]`` (a label moves u -> u + 1); ``out[:, 0]`` is impossible."""
    return torch.cat([values.new_full((values.shape[0], 1), NEG), values[:, :-1]], dim=1)


def _logsumexp(terms: Sequence[torch.Tensor]) -> torch.Tensor:
    return terms[0] if len(terms) == 1 else torch.logsumexp(torch.stack(list(terms)), dim=0)


def forward_log_probs(
    blank_lp: torch.Tensor,
    label_lp: torch.Tensor,
    duration_logits: torch.Tensor,
    frames: torch.Tensor,
    lengths: torch.Tensor,
    rules: TDTRules,
) -> torch.Tensor:
    """``log p(y_r | x_r)`` ``[rows]``: the sum over every alignment of each row's labels.

    ``blank_lp[r, t, u]``: log-prob of blank at frame ``t`` in label state ``u`` (already 0 at the label cap);
    ``label_lp[r, t, u]``: log-prob of the NEXT label ``y_{u+1}`` there (`NEG` for ``u >= len(y_r)``);
    ``duration_logits[r, t, u]``: raw duration logits (divided by the temperature here, as in sampling);
    all padded to ``[rows, T_max, U_max + 1]``. ``frames[r]`` = T_r, ``lengths[r]`` = len(y_r).

    The states are ``(t, u, k)`` (``k`` zero-duration labels at frame ``t``): a frame's mass arrives with
    ``k = 0`` (every arc into a later frame has ``d >= 1``), zero-duration labels climb ``k`` within the frame up to
    ``max_symbols_per_step``, and every arc out of the frame uses the duration distribution renormalised over the
    set valid for its token and ``k``, as `sample_transcripts` does. Memory: ``O(T x (U+1) x (D + M))`` floats per
    row (about 35 per cell with ``D = 5``, ``M = 10``). A transcript no alignment produces (longer than the cap or than the frames allow) is ``-inf``.
    """
    rows, steps, states = blank_lp.shape
    device = blank_lp.device
    durations = torch.tensor(rules.durations, device=device)
    frames = frames.to(device).long()
    lengths = lengths.to(device).long()
    frames_left = frames[:, None] - torch.arange(steps, device=device)[None, :]  # [rows, T]
    scaled = duration_logits.float() / rules.temperature
    # blank, and a label whose frame already holds max_symbols_per_step zero-duration labels: d >= 1
    log_advance = masked_log_softmax(scaled, valid_durations(durations, frames_left, False)[:, :, None, :])
    # a label below that count: 0 allowed too
    log_any = masked_log_softmax(scaled, valid_durations(durations, frames_left, True)[:, :, None, :])
    zero = rules.zero_index
    chain_length = rules.max_symbols_per_step if zero is not None else 0
    moves = [i for i, d in enumerate(rules.durations) if d > 0]  # the arcs into later frames
    lag = {rules.durations[i]: j for j, i in enumerate(moves)}
    # Per-frame views cut ONCE (unbind's backward is one stack; indexing ``x[:, t]`` inside the loop would cost a
    # zero tensor of x's full size per use in backward: quadratic in T). The arcs of all moving durations are
    # computed together, ``[rows, U+1, len(moves)]`` per frame.
    blank_at, label_at = blank_lp.unbind(1), label_lp.unbind(1)
    advance_at = log_advance[..., moves].unbind(1)
    any_at = log_any[..., moves].unbind(1)
    climb_at = (label_lp + log_any[..., zero]).unbind(1) if chain_length else None

    impossible = blank_lp.new_full((rows, states), NEG)
    start = torch.cat([blank_lp.new_zeros((rows, 1)), blank_lp.new_full((rows, states - 1), NEG)], dim=1)
    leaving: list[tuple[torch.Tensor, ...]] = []  # leaving[t][j]: mass leaving frame t by duration moves[j]
    totals: list[torch.Tensor] = []  # mass arriving at each frame (k = 0), t = 0..T
    for t in range(steps + 1):
        incoming = [leaving[t - d][j] for d, j in lag.items() if t - d >= 0]  # every arc in has d >= 1
        here = start if t == 0 else _logsumexp(incoming)
        totals.append(here)
        if t == steps:
            break
        chain = [here]  # chain[k]: k zero-duration labels emitted at this frame
        for _ in range(chain_length):
            chain.append(_shift_up(chain[-1] + climb_at[t]))
        at_cap = chain[-1]
        below_cap = _logsumexp(chain[:-1]) if chain_length else impossible
        every = torch.logaddexp(below_cap, at_cap) if chain_length else here
        blank_arcs = (every + blank_at[t])[..., None] + advance_at[t]
        label_arcs = label_at[t][..., None] + torch.logaddexp(
            below_cap[..., None] + any_at[t], at_cap[..., None] + advance_at[t]
        )
        shifted = torch.cat([label_arcs.new_full((rows, 1, len(moves)), NEG), label_arcs[:, :-1]], dim=1)
        leaving.append(torch.logaddexp(blank_arcs, shifted).unbind(-1))
    final = torch.stack(totals, dim=1)  # [rows, T + 1, U + 1]
    result = final[torch.arange(rows, device=device), frames.clamp(max=steps), lengths.clamp(max=states - 1)]
    impossible_rows = (result < _IMPOSSIBLE) | (lengths > states - 1)
    if rules.max_labels is not None:
        impossible_rows = impossible_rows | (lengths > rules.max_labels)
    return result.masked_fill(impossible_rows, float("-inf"))


JOINT_CHUNK_FLOATS = 2**18  # joint activations per frame chunk (1 MB): the add, ReLU and head stay in cache


def lattice_terms(
    joint: nn.Module,
    encoder_states: torch.Tensor,
    decoder_states: torch.Tensor,
    labels: torch.Tensor,
    rules: TDTRules,
    entropy: bool = False,
) -> tuple[torch.Tensor, ...]:
    """One row's joint lattice reduced to what `forward_log_probs` reads.

    ``encoder_states`` ``[T, H]`` (projected), ``decoder_states`` ``[U + 1, H]`` (the prediction network after
    blank, y_1 .. y_U), ``labels`` ``[U]``. Returns ``(blank_lp [T, U+1], label_lp [T, U+1], duration_logits
    [T, U+1, D])`` and, with ``entropy``, the token entropy ``[T, U+1]`` (no gradient). The joint module is called
    as the model's forward calls it (broadcast ``[frames, 1, H] + [1, U + 1, H]``), on a few frames at a time
    (`JOINT_CHUNK_FLOATS`): the ``[T, U+1, V+D]`` logits never exist at once, and on CPU the chunks stay in
    cache (8 rows of a 30 s clip with 1,024 tokens: 5.5 s instead of 8.6 s forward, peak 0.05 instead of
    0.31 GiB). The token log-probs are those of `token_log_probs` (``x - logsumexp(x)``,
    ``x = logits / tau``; blank forced at the label cap), taken at the two entries the forward algorithm reads
    only, and every output is a fresh tensor: none keeps a chunk's logits alive."""
    steps, states = encoder_states.shape[0], decoder_states.shape[0]
    frames = max(1, JOINT_CHUNK_FLOATS // (states * encoder_states.shape[-1]))
    next_labels = labels.to(decoder_states.device)
    chunks = [
        _lattice_chunk(joint, encoder_states[start : start + frames], decoder_states, next_labels, rules, entropy)
        for start in range(0, steps, frames)
    ]
    return tuple(torch.cat(parts) for parts in zip(*chunks, strict=True))


def _lattice_chunk(
    joint: nn.Module,
    encoder_states: torch.Tensor,
    decoder_states: torch.Tensor,
    labels: torch.Tensor,
    rules: TDTRules,
    entropy: bool,
) -> tuple[torch.Tensor, ...]:
    """`lattice_terms` of a few frames."""
    vocab = rules.vocab_size
    logits = joint(decoder_hidden_states=decoder_states[None], encoder_hidden_states=encoder_states[:, None])
    steps, states = logits.shape[:2]
    scaled = logits[..., :vocab].float()
    if rules.temperature != 1.0:
        scaled = scaled / rules.temperature
    normaliser = torch.logsumexp(scaled, dim=-1)  # [frames, U+1]
    blank_lp = scaled[..., rules.blank] - normaliser
    label_lp = torch.full_like(blank_lp, NEG)
    if states > 1:
        index = labels[None, :, None].expand(steps, -1, 1)
        next_label = scaled[:, :-1].gather(-1, index).squeeze(-1) - normaliser[:, :-1]
        label_lp = torch.cat([next_label, label_lp[:, -1:]], dim=1)
    at_cap = None
    if rules.max_labels is not None:
        at_cap = (torch.arange(states, device=logits.device) >= rules.max_labels)[None, :].expand(steps, -1)
        blank_lp = blank_lp.masked_fill(at_cap, 0.0)
        label_lp = label_lp.masked_fill(at_cap, NEG)
    outputs = (blank_lp, label_lp, logits[..., vocab:].float().contiguous())
    if entropy:
        with torch.no_grad():
            spread = normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1)
            outputs = (*outputs, spread if at_cap is None else spread.masked_fill(at_cap, 0.0))
    return outputs


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_transcripts(
    model: nn.Module,
    encoder_states: torch.Tensor,
    frames: torch.Tensor,
    clip_of_row: torch.Tensor,
    rules: TDTRules,
    generator: torch.Generator | None = None,
    draw: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[list[int]]:
    """One label sequence per row, drawn step by step from the distribution of the module docstring.

    ``model`` is the plain ``ParakeetForTDT`` (its ``decoder`` and ``joint`` are called as ``generate`` calls them);
    ``encoder_states`` ``[clips, T, H]`` are the PROJECTED encoder states (``pooler_output``), computed once per
    clip; ``frames[c]`` = T_c. All rows step together; finished rows drop out. ``draw(log_probs [n, K], rows [n])
    -> [n]`` picks one entry per active row, each step's token then its duration (default: ``torch.multinomial``
    with ``generator``; the distributed test keys it by row, so that a row's draws do not depend on its batch)."""
    if draw is None:

        def draw(log_probs: torch.Tensor, _rows: torch.Tensor) -> torch.Tensor:
            return torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)

    device = encoder_states.device
    rows = clip_of_row.numel()
    clip_of_row = clip_of_row.to(device)
    durations = torch.tensor(rules.durations, device=device)
    frames_of_row = frames.to(device).long().index_select(0, clip_of_row)
    t = torch.zeros(rows, dtype=torch.long, device=device)
    u = torch.zeros_like(t)
    k = torch.zeros_like(t)
    cache = ParakeetRNNTDecoderCache(model.config)
    blanks = torch.full((rows, 1), rules.blank, dtype=torch.long, device=device)
    decoder_states = model.decoder(blanks, cache=cache)  # [rows, 1, H]: the state before any label
    labels: list[list[int]] = [[] for _ in range(rows)]
    done = t >= frames_of_row
    while not bool(done.all()):
        active = (~done).nonzero().squeeze(1)
        encoder_now = encoder_states[clip_of_row[active], t[active]]
        logits = model.joint(decoder_hidden_states=decoder_states[active, 0], encoder_hidden_states=encoder_now)
        at_cap = u[active] >= rules.max_labels if rules.max_labels is not None else None
        token_lp = token_log_probs(logits[:, : rules.vocab_size], rules, at_cap)
        token = draw(token_lp, active)
        label = token != rules.blank
        allow_zero = label & (k[active] < rules.max_symbols_per_step)
        frames_left = frames_of_row[active] - t[active]
        duration_lp = duration_log_probs(logits[:, rules.vocab_size :], rules, frames_left, allow_zero)
        step = durations[draw(duration_lp, active)]
        for row, value in zip(active[label].tolist(), token[label].tolist(), strict=True):
            labels[row].append(value)
        u[active] += label.long()
        k[active] = torch.where(step == 0, k[active] + 1, torch.zeros_like(step))
        t[active] += step
        done = t >= frames_of_row
        if bool(label.any()):  # the prediction network moves on labels only (the cache keeps the blanks' rows)
            inputs = blanks.clone()
            inputs[active[label], 0] = token[label]
            decoder_states = model.decoder(inputs, cache=cache)
    return labels


# --------------------------------------------------------------------------------------------------
# Greedy decoding output
# --------------------------------------------------------------------------------------------------


def greedy_labels(
    sequences: torch.Tensor, durations: torch.Tensor, frames: torch.Tensor, blank: int, vocab_size: int
) -> list[list[int]]:
    """The labels of ``generate``'s output: steps taken before the frame pointer reached the clip's end
    (later positions are padding), the decoder start and blanks dropped."""
    before = durations.cumsum(-1) - durations  # frame pointer when each step's token was chosen
    keep = before < frames.to(before.device)[:, None]
    keep[:, 0] = False  # the decoder start token
    keep &= (sequences != blank) & (sequences < vocab_size)
    return [row[mask].tolist() for row, mask in zip(sequences.cpu(), keep.cpu(), strict=True)]


def greedy_generation_config(model: nn.Module) -> GenerationConfig:
    """A COPY of the model's generation config that transformers' TDT ``generate`` can run greedily with: blank as
    decoder start, the duration ids suppressed (``generate`` takes the argmax over tokens AND durations), no EOS
    (decoding ends when the frames are used up), no length of its own (``generate`` sizes its buffer as
    ``max_symbols_per_step x frames``)."""
    config = model.config
    generation = copy.deepcopy(getattr(model, "generation_config", None) or GenerationConfig())
    vocab, blank = int(config.vocab_size), int(config.blank_token_id)
    duration_ids = list(range(vocab, vocab + len(config.durations)))
    if generation.decoder_start_token_id is None:
        generation.decoder_start_token_id = blank
    generation.suppress_tokens = sorted(set(generation.suppress_tokens or []) | set(duration_ids))
    if generation.pad_token_id is None:
        generation.pad_token_id = blank
    generation.eos_token_id = None
    generation.do_sample, generation.num_beams = False, 1
    generation.max_length, generation.max_new_tokens = None, None
    generation.disable_compile = True
    return generation


# --------------------------------------------------------------------------------------------------
# Joint lattice of one scoring forward, taken from the model's own forward
# --------------------------------------------------------------------------------------------------


KEPT_LATTICE_BYTES = 256 * 2**20  # what one scoring pass may keep of its rows' lattices for backward


def kept_lattice_bytes(steps: int, states: int, hidden: int, joint: nn.Module) -> int:
    """About what autograd keeps of one row's ``[T, U+1]`` lattice without checkpointing (float32): the joint's
    activations ``[T, U+1, H]`` and the logits with the scaled token logits ``[T, U+1, V+D]``."""
    return 4 * steps * states * (hidden + 2 * int(joint.head.out_features))


class JointCapture:
    """A pre-hook on the joint network for ONE model forward (``model(input_features, attention_mask,
    decoder_input_ids)``).

    ``ParakeetForTDT.forward`` runs the encoder and ``encoder_projector`` on the clips (``[clips, T, H]``) and the
    prediction network on the rows (``[rows, U + 1, H]``), then would broadcast them into the full joint lattice.
    The hook takes the two inputs, computes each row's `lattice_terms` against its own clip, keeps the results,
    and hands the joint a ``[1, 1, 1, H]`` slice so the forward's own lattice is a single cell. It fires once (a
    row's own joint call, and a checkpoint's recomputation, pass 3-d inputs and go through).

    With gradients on, rows keep what autograd saves of their lattice (`kept_lattice_bytes`) while the pass's
    total stays within ``budget`` bytes; later rows run under activation checkpointing (one row's lattice in
    memory at a time, recomputed in backward: one more joint forward per row). Small lattices (the demo's) thus
    skip the recomputation; 30 s clips with a 1,024-token vocabulary (~0.4 GB per row) are all checkpointed."""

    def __init__(
        self,
        joint: nn.Module,
        clip_of_row: torch.Tensor,
        frames: torch.Tensor,
        labels: Sequence[Sequence[int]],
        rules: TDTRules,
        entropy: bool,
        budget: int = KEPT_LATTICE_BYTES,
    ):
        self.joint, self.clip_of_row, self.frames = joint, clip_of_row.tolist(), frames.tolist()
        self.labels, self.rules, self.entropy = labels, rules, entropy
        self.budget, self.kept_bytes, self.checkpointed = budget, 0, 0
        self.armed = True
        self.terms: list[tuple[torch.Tensor, ...]] | None = None
        self.handle = joint.register_forward_pre_hook(self._take, with_kwargs=True)

    def _row_terms(self, encoder_states: torch.Tensor, decoder_states: torch.Tensor, row: int) -> tuple:
        labels = torch.tensor(self.labels[row], dtype=torch.long, device=decoder_states.device)

        def terms(encoder: torch.Tensor, decoder: torch.Tensor) -> tuple:
            return lattice_terms(self.joint, encoder, decoder, labels, self.rules, self.entropy)

        if not torch.is_grad_enabled():
            return terms(encoder_states, decoder_states)
        cost = kept_lattice_bytes(len(encoder_states), len(decoder_states), encoder_states.shape[-1], self.joint)
        if self.kept_bytes + cost <= self.budget:
            self.kept_bytes += cost
            return terms(encoder_states, decoder_states)
        self.checkpointed += 1
        return checkpoint(terms, encoder_states, decoder_states, use_reentrant=False)

    def _take(self, _module: nn.Module, args: tuple, kwargs: dict) -> tuple | None:
        encoder = kwargs.get("encoder_hidden_states")
        decoder = kwargs.get("decoder_hidden_states")
        if not self.armed or args or encoder is None or decoder is None or encoder.dim() != 4:
            return None
        self.armed = False
        if decoder.shape[0] != len(self.clip_of_row) or encoder.shape[0] != max(self.clip_of_row) + 1:
            raise RuntimeError(
                f"the joint got encoder states for {encoder.shape[0]} clips and decoder states for "
                f"{decoder.shape[0]} rows; this pass has {max(self.clip_of_row) + 1} clips and "
                f"{len(self.clip_of_row)} rows"
            )
        self.terms = [
            self._row_terms(encoder[clip, : self.frames[clip], 0], decoder[row, 0, : len(self.labels[row]) + 1], row)
            for row, clip in enumerate(self.clip_of_row)
        ]
        return (), {"encoder_hidden_states": encoder[:1, :1], "decoder_hidden_states": decoder[:1, :, :1]}

    def padded(self, steps: int, states: int) -> list[torch.Tensor]:
        """The rows' terms padded to ``[rows, steps, states, ...]`` (padding: impossible)."""
        if self.terms is None:
            raise RuntimeError("the model's forward never called its joint network")
        columns = []
        for parts in zip(*self.terms, strict=True):
            padded = []
            for part in parts:
                pad = [0, 0] * (part.dim() - 2) + [0, states - part.shape[1], 0, steps - part.shape[0]]
                padded.append(F.pad(part, pad, value=NEG))
            columns.append(torch.stack(padded))
        return columns

    def remove(self) -> None:
        self.handle.remove()


# --------------------------------------------------------------------------------------------------
# The TDT policy family
# --------------------------------------------------------------------------------------------------


_UNSUPPORTED_SAMPLING = {
    "top_k": (None, 0),
    "top_p": (None, 1.0),
    "min_p": (None, 0.0),
    "repetition_penalty": (None, 1.0),
}


def check_tdt_model(model: nn.Module, tokenizer: Any) -> int:
    """The blank id of ``model``, after checking that the model and tokenizer agree on the vocabulary."""
    config = model.config
    vocab, blank = int(config.vocab_size), int(config.blank_token_id)
    if blank != vocab - 1:
        raise ValueError(
            f"the TDT model's blank_token_id is {blank} but its vocabulary has {vocab} tokens: transformers' "
            "Parakeet TDT puts the blank LAST (vocab_size - 1)"
        )
    head = model.joint.head.out_features
    if head != vocab + len(config.durations):
        raise ValueError(
            f"the TDT joint outputs {head} logits, not vocab_size + len(durations) = {vocab} + {len(config.durations)}"
        )
    if len(tokenizer) != vocab:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has {len(tokenizer)} tokens but the TDT model outputs "
            f"{vocab} (config.vocab_size, blank included): they are not the same vocabulary. Use the processor saved "
            "with the model."
        )
    named = tokenizer.convert_tokens_to_ids("<blank>") if "<blank>" in tokenizer.get_vocab() else None
    if named is not None and named != blank:
        raise ValueError(f"the tokenizer's <blank> is id {named} but the TDT model's blank_token_id is {blank}")
    # What matters is that decoding drops it (transformers' own converter adds it with add_tokens(special=True),
    # which decode skips although it is not in all_special_ids).
    if tokenizer.decode([blank], skip_special_tokens=True).strip():
        raise ValueError(
            f"the blank (id {blank}) is not a special token of the tokenizer: decoded completions (which end with "
            "it) would show it. Add it with tokenizer.add_special_tokens."
        )
    return blank


@register_policy
class TDTPolicy(SpeechPolicy):
    """Token-and-duration transducers (``ParakeetForTDT``): G transcripts per clip from one encoder pass, each
    drawn from the renormalised step distribution and scored by ``log p(y|x)`` over all its alignments (module
    docstring).

    Completions: the label ids followed by ONE blank as the end token; the prompt is empty. ``log_probs``
    spreads ``log p(y|x)`` evenly over the completion's L + 1 tokens (as `rlnf.policies.ctc.CTCPolicy` does):
    ``importance_sampling_level="sequence"`` gives GSPO's length-normalised ratio; ``"token"`` the same ratios;
    ``loss_type="grpo"`` averages per transcript. ``max_completion_length`` caps the labels at
    ``max_completion_length - 1`` inside the distribution (blank is forced once the cap is reached), so no
    completion is ever cut.

    Trainable parameters: everything, with Parakeet's conv subsampling frozen by default
    (``freeze_feature_encoder``); ``freeze_encoder=True`` trains ``encoder_projector``, the prediction network and
    the joint only; a ``peft_config`` trains LoRA.
    """

    family = "tdt"
    description = (
        "token-and-duration transducers (ParakeetForTDT; ParakeetForRNNT is refused: its loss needs torchaudio)"
    )
    auto_model_class = AutoModelForTDT

    def __init__(self, model: nn.Module, processor: Any, options: PolicyOptions):
        base = peft_base(model)
        if not isinstance(base, ParakeetForTDT):
            raise TypeError(f"{type(base).__name__} {_RNNT_REFUSED}")
        super().__init__(model, processor, options)
        self.config = base.config
        self.blank = check_tdt_model(base, self.tokenizer)
        self.vocab_size = int(self.config.vocab_size)
        self.durations = tuple(int(d) for d in self.config.durations)
        if options.max_completion_length is not None and options.max_completion_length < 1:
            raise ValueError(
                f"max_completion_length={options.max_completion_length}: a TDT completion holds at least its end token"
            )
        self.max_labels = None if options.max_completion_length is None else int(options.max_completion_length) - 1
        self.tokenizer = label_text_tokenizer(self.tokenizer)  # what TRL and the rewards decode with (no grouping)
        self.prompt_ids = []
        self.eos_token_ids = [self.blank]
        self.main_input = base.main_input_name
        self.min_samples = min_clip_samples(base, self.feature_extractor)
        self.temperature = 1.0
        self.rules = self._rules(1.0)  # validates the durations now
        self.generation_kwargs: dict[str, Any] = {}
        self.greedy_config = greedy_generation_config(base)
        self.generator: torch.Generator | None = None  # tests may fix one; TRL seeds the global generator
        self.lattice_budget = KEPT_LATTICE_BYTES  # per scoring pass, see JointCapture (0: checkpoint every row)

    def _rules(self, temperature: float) -> TDTRules:
        return TDTRules(
            vocab_size=self.vocab_size,
            blank=self.blank,
            durations=self.durations,
            max_symbols_per_step=int(self.config.max_symbols_per_step),
            max_labels=self.max_labels,
            temperature=temperature,
        )

    # ---- family selection ----------------------------------------------------------------------

    @classmethod
    def accepts(cls, model: Any) -> bool:
        # By class: ParakeetForTDT subclasses ParakeetForRNNT; a plain RNN-T is taken here to be refused by name.
        return isinstance(peft_base(model), ParakeetForRNNT)

    @classmethod
    def accepts_config(cls, config: Any) -> bool:
        architectures = getattr(config, "architectures", None) or []
        return getattr(config, "model_type", None) == "parakeet_tdt" and (
            not architectures or "ParakeetForTDT" in architectures
        )

    def sft_collator(self, audio_column: str = "audio", text_column: str = "text") -> TDTCollator:
        return TDTCollator(
            self.processor,
            pad_token_id=int(self.config.pad_token_id),
            blank_token_id=self.blank,
            audio_column=audio_column,
            text_column=text_column,
        )

    def finish_saved_folder(self, folder: Any) -> None:
        """Write the blank as decoder start and the suppressed duration ids into the folder's generation config,
        so that transformers' ``generate`` (and a pipeline) decodes a saved policy greedily."""
        path = Path(folder) / "generation_config.json"
        if not path.parent.is_dir():
            return
        values = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        duration_ids = range(self.vocab_size, self.vocab_size + len(self.durations))
        if values.get("decoder_start_token_id") is None:
            values["decoder_start_token_id"] = self.blank
        values["suppress_tokens"] = sorted(set(values.get("suppress_tokens") or []) | set(duration_ids))
        path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    # ---- checks --------------------------------------------------------------------------------

    def check_args(self, args: Any) -> None:
        check_sequence_level_args(args, self.config, "TDT")

    def check_peft_config(self, peft_config: Any) -> None:
        check_sequence_level_peft(
            peft_config, self.options, "transducer", "encoder projector, prediction network and joint"
        )

    def prepare_model(self, model: nn.Module) -> None:
        apply_freezing(
            model,
            self.options,
            lambda base: base.encoder.requires_grad_(False),  # the FastConformer; projector, decoder and joint train
            lambda base: base.encoder.subsampling.requires_grad_(False),
        )
        self.share_encoder_states = False  # the scoring forward runs the encoder on its clips (once per clip)

    @staticmethod
    def input_dtype(model: nn.Module) -> torch.dtype:
        return next(p for p in peft_base(model).parameters() if p.is_floating_point()).dtype

    # ---- audio -----------------------------------------------------------------------------------

    def clip_inputs(self, waveforms: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> dict:
        """``{input_features, attention_mask}`` per clip; a clip too short for one encoder frame is an error."""
        for index, waveform in enumerate(waveforms):
            if len(waveform) < self.min_samples:
                rate = self.options.sampling_rate
                raise ValueError(
                    f"clip {index} of the batch has {len(waveform)} samples ({1000 * len(waveform) / rate:.1f} ms), "
                    f"fewer than the {self.min_samples} samples ({1000 * self.min_samples / rate:.1f} ms) the TDT "
                    "model needs for one encoder frame. Drop or pad such clips."
                )
        out = self.feature_extractor(
            list(waveforms),
            sampling_rate=self.options.sampling_rate,
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {
            self.main_input: out[self.main_input].to(device, dtype),
            "attention_mask": out["attention_mask"].long().to(device),
        }

    def frames(self, model: nn.Module, clips: ClipBatch, steps: int | None = None) -> torch.Tensor:
        """Real encoder frames of each clip ``[clips]`` (padding excluded), by the model's length formula."""
        core = peft_base(extract_model_from_parallel(model))
        frames = encoder_output_lengths(core, clips.inputs["attention_mask"].sum(-1)).long()
        return frames if steps is None else frames.clamp(max=steps)

    # ---- sampling --------------------------------------------------------------------------------

    def configure_sampling(self, generation_kwargs: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        """Temperature only (tokens and durations alike); filters that would sample from another distribution than
        the one scored (top-k/p, min-p, repetition penalty) are refused."""
        kwargs = {**generation_kwargs, **(overrides or {})}
        for name, neutral in _UNSUPPORTED_SAMPLING.items():
            if kwargs.get(name) not in neutral:
                raise ValueError(
                    f"{name}={kwargs[name]!r} is not supported for TDT policies: each token and duration is sampled "
                    f"from softmax(logits / temperature) (renormalised over the valid durations) and scored under the "
                    f"same distribution; {name} would sample from another one. Leave {name} at its default."
                )
        self.temperature = float(kwargs.get("temperature") or 1.0)
        self.rules = self._rules(self.temperature)
        self.generation_kwargs = kwargs

    def encode(self, model: nn.Module, clips: ClipBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """THE encoder call of sampling, once per unique clip: ``(projected states [clips, T, H], frames)``."""
        core = peft_base(model)
        states = core.get_audio_features(
            input_features=clips.inputs[self.main_input], attention_mask=clips.inputs["attention_mask"]
        ).pooler_output
        return states, self.frames(core, clips, states.shape[1])

    def sample(self, model: nn.Module, clips: ClipBatch) -> list[list[int]]:
        core = peft_base(model)
        states, frames = self.encode(core, clips)  # encoder: once per unique clip ...
        labels = sample_transcripts(core, states, frames, clips.clip_of_row, self.rules, self.generator)  # ... G rows
        return [y + [self.blank] for y in labels]

    # ---- scoring ---------------------------------------------------------------------------------

    def completion_labels(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[list[int]]:
        """Label sequences of TRL's right-padded completions: the real tokens without the end blank (rows with
        no real token, masked out by the trainer, are empty); a blank or an unknown id before the end is an error."""
        labels = labels_before_end(completion_ids.long(), completion_mask, self.blank, "TDT")
        for row, body in enumerate(labels):
            if any(t == self.blank or not 0 <= t < self.vocab_size for t in body):
                raise RuntimeError(f"completion {row} holds a blank or an id outside the vocabulary before its end")
        return labels

    def chunk_scorer(self, model: nn.Module, batch: ScoringPass) -> ChunkScorer:
        """``log p(y|x)`` of each row's transcript (all alignments, module docstring), spread evenly over its
        completion tokens; entropies: the mean token entropy over the row's lattice (``t < T``, ``u <= U``) at
        every token. One model forward per chunk: the encoder once per clip, the prediction network once per
        row. Every completion's labels are checked first, before any forward."""
        keep = batch.logits_to_keep
        completion_mask = batch.attention_mask[:, -keep:]
        labels = self.completion_labels(batch.input_ids[:, -keep:], completion_mask)
        core = peft_base(extract_model_from_parallel(model))
        rules = self.rules
        budget = [self.lattice_budget]  # for the whole pass: its chunks' kept lattices all wait for one backward

        def score(rows: torch.Tensor, chunk: ClipBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
            row_labels = [labels[r] for r in rows.tolist()]
            width = max(len(y) for y in row_labels)
            device = chunk.clip_of_row.device
            decoder_ids = torch.tensor(
                [[self.blank, *y] + [self.blank] * (width - len(y)) for y in row_labels], device=device
            )
            frames = self.frames(core, chunk)
            capture = JointCapture(
                core.joint, chunk.clip_of_row, frames, row_labels, rules, batch.compute_entropy, budget[0]
            )
            try:  # the hook is only needed during this forward (the checkpoint's recomputation bypasses it)
                model(
                    input_features=chunk.inputs[self.main_input],
                    attention_mask=chunk.inputs["attention_mask"],
                    decoder_input_ids=decoder_ids,
                )
            finally:
                capture.remove()
            budget[0] -= capture.kept_bytes
            frames_of_row = frames.index_select(0, chunk.clip_of_row)
            terms = capture.padded(int(frames.max()), width + 1)
            lengths = torch.tensor([len(y) for y in row_labels], device=device)
            sequence = forward_log_probs(terms[0], terms[1], terms[2], frames_of_row, lengths, rules)
            per_token = spread_over_tokens(sequence, completion_mask[rows])
            entropy = None
            if batch.compute_entropy:
                steps = torch.arange(terms[3].shape[1], device=device)[None, :, None] < frames_of_row[:, None, None]
                states = torch.arange(width + 1, device=device)[None, None, :] <= lengths[:, None, None]
                cells = (steps & states).to(terms[3].dtype)
                mean = (terms[3] * cells).sum((1, 2)) / cells.sum((1, 2)).clamp(min=1.0)
                entropy = mean[:, None].expand(-1, keep)
            return per_token, entropy

        return score

    # ---- greedy decoding -------------------------------------------------------------------------

    def greedy_decoder(self, model: nn.Module, max_new_tokens: int | None) -> Callable[[ClipBatch], list[str]]:
        """transformers' greedy TDT ``generate`` on the copy of the generation config made in ``__init__``.
        ``max_new_tokens`` does not apply (``generate`` counts blanks as steps; decoding ends with the frames): the
        step bound is ``max_symbols_per_step x`` the batch's longest clip in frames, the bound ``generate`` would
        derive itself (given explicitly, which also spares its default-length warning)."""
        core = peft_base(extract_model_from_parallel(model))

        def decode(clips: ClipBatch) -> list[str]:
            frames = self.frames(core, clips)
            config = copy.copy(self.greedy_config)  # the step bound transformers derives itself, said explicitly
            config.max_new_tokens = int(self.config.max_symbols_per_step) * int(frames.max())
            with torch.no_grad():
                out = core.generate(
                    input_features=clips.inputs[self.main_input],
                    attention_mask=clips.inputs["attention_mask"],
                    generation_config=config,
                )
            labels = greedy_labels(out.sequences, out.durations, frames, self.blank, self.vocab_size)
            return decode_labels(self.tokenizer, labels)

        return decode


# --------------------------------------------------------------------------------------------------
# A tiny random TDT policy built offline (tests, benchmarks)
# --------------------------------------------------------------------------------------------------


def tiny_parakeet_tdt(
    tokenizer: ParakeetTokenizer | None = None,
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    num_mel_bins: int = 16,
    subsampling_conv_channels: int = 8,
    subsampling_factor: int = 8,
    decoder_hidden_size: int = 32,
    num_decoder_layers: int = 1,
    durations: Sequence[int] = (0, 1, 2, 3, 4),
    max_symbols_per_step: int = 3,
    blank_bias: float = 2.0,
    seed: int = 0,
) -> tuple[ParakeetForTDT, ParakeetProcessor]:
    """A random ``ParakeetForTDT`` (FastConformer encoder, LSTM prediction network, TDT joint) and its processor,
    with the Bambara character tokenizer of `rlnf.policies.tiny_ctc.bambara_parakeet_tokenizer` (``<blank>`` last,
    also the pad token). The generation config is set as transformers' converter sets it (blank as decoder start,
    duration ids suppressed). ``blank_bias`` is added to the joint's blank logit so the random model emits mostly
    blanks (short transcripts), like a trained one. Dropout and LayerDrop are off."""
    from .tiny_ctc import PARAKEET_BLANK, bambara_parakeet_tokenizer, parakeet_encoder_config

    tokenizer = tokenizer or bambara_parakeet_tokenizer()
    vocab = len(tokenizer)
    encoder = parakeet_encoder_config(
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, num_mel_bins,
        subsampling_conv_channels, subsampling_factor,
    )  # fmt: skip
    config = ParakeetTDTConfig(
        vocab_size=vocab,
        blank_token_id=vocab - 1,
        pad_token_id=tokenizer.pad_token_id,
        decoder_hidden_size=decoder_hidden_size,
        num_decoder_layers=num_decoder_layers,
        durations=list(durations),
        max_symbols_per_step=max_symbols_per_step,
        encoder_config=encoder,
    )
    torch.manual_seed(seed)
    model = ParakeetForTDT(config)
    with torch.no_grad():
        model.joint.head.bias[vocab - 1] += blank_bias
    model.generation_config.decoder_start_token_id = vocab - 1
    model.generation_config.suppress_tokens = list(range(vocab, vocab + len(durations)))
    feature_extractor = ParakeetFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16000)
    processor = ParakeetProcessor(feature_extractor, tokenizer, blank_token=PARAKEET_BLANK, decoder_type="tdt")
    return model, processor


class TDTCollator(CTCCollator):
    """Batches for supervised TDT training with the model's own loss (``ParakeetForTDT(..., labels=...)``): the
    inputs and label ids as for CTC, labels padded with the model's ``pad_token_id`` (its loss counts a label's
    length as its non-pad ids) and ``decoder_input_ids`` = blank + labels (the prediction network's inputs)."""

    def __init__(self, processor: Any, *, pad_token_id: int, blank_token_id: int, **kwargs: Any) -> None:
        super().__init__(processor, main_input_name="input_features", **kwargs)
        self.pad_token_id, self.blank_token_id = pad_token_id, blank_token_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().__call__(rows)
        labels = batch["labels"]
        real = labels != -100
        if bool((labels[real] == self.pad_token_id).any()):
            raise ValueError(f"a transcript tokenises to the pad id {self.pad_token_id}: TDT labels cannot hold it")
        labels = labels.masked_fill(~real, self.pad_token_id)
        start = torch.full((labels.size(0), 1), self.blank_token_id, dtype=labels.dtype)
        batch["labels"], batch["decoder_input_ids"] = labels, torch.cat([start, labels], dim=1)
        return batch


def demo_parakeet_tdt(seed: int = 0) -> tuple[ParakeetForTDT, ParakeetProcessor]:
    """The demo TDT policy's architecture (random weights): the demo CTC policy's FastConformer (40 ms frames, 96
    wide, 3 layers; `rlnf.policies.tiny_ctc.demo_parakeet_ctc`) with a one-layer LSTM prediction network of 96
    and durations 0-4; no blank bias (SFT learns it)."""
    return tiny_parakeet_tdt(
        hidden_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        num_mel_bins=40,
        subsampling_conv_channels=32,
        subsampling_factor=4,
        decoder_hidden_size=96,
        max_symbols_per_step=5,
        blank_bias=0.0,
        seed=seed,
    )


__all__ = [
    "TDTCollator",
    "demo_parakeet_tdt",
    "JOINT_CHUNK_FLOATS",
    "KEPT_LATTICE_BYTES",
    "NEG",
    "JointCapture",
    "TDTPolicy",
    "TDTRules",
    "check_tdt_model",
    "duration_log_probs",
    "forward_log_probs",
    "greedy_generation_config",
    "greedy_labels",
    "kept_lattice_bytes",
    "lattice_terms",
    "masked_log_softmax",
    "sample_transcripts",
    "tiny_parakeet_tdt",
    "token_log_probs",
    "valid_durations",
]
