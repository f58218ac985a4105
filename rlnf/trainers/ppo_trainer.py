"""``ASRPPOTrainer``: PPO with a value model for speech-to-text policies (TRL 1.16 has no PPO trainer any more).

The design of TRL's former PPO trainer and of standard RLHF PPO, on a ``transformers.Trainer`` (so checkpoints,
resume, schedulers, logging and accelerate's DDP come from it), with the audio through the same seam as the
GRPO and RLOO trainers (`rlnf.trainers.speech.SpeechTrainerMixin`, `rlnf.policies.base.SpeechPolicy`):

1. rollout (``_rollout``): the batch's unique clips once, ``num_generations`` samples per clip from the policy
   (encoder once per clip), the rewards (``reward_funcs`` x ``reward_weights``: `AudioTextReward`, ``wer``, ...),
   log-probs of the sampling policy and of the frozen reference, the critic's values;
2. advantages: per-token rewards = the score on the last completion token minus ``kl_coef`` x per-token KL
   (fixed or adaptive coefficient), GAE(gamma, lambda), whitened over the rollout batch (all processes). With
   the ``"audio"`` critic (one value per clip) the advantage is sequence level: score - KL - value;
3. ``num_ppo_epochs`` passes over the rollout batch, each in ``num_mini_batches`` shuffled mini-batches (one
   Trainer step each): clipped policy loss + ``vf_coef`` x clipped value loss. The arithmetic lives in
   `rlnf.trainers.ppo_math` (tested against hand computations).

The critic is `rlnf.policies.value_heads`' ``separate`` / ``shared`` / ``audio`` model. It is trained by the
same optimizer (its own parameter group), saved next to the policy as ``value_model.safetensors`` (with the KL
coefficient in ``ppo_state.json``) and restored on resume.

Scope: one process or DDP. DeepSpeed and FSDP are refused (the critic is a second trained module they would
have to shard); generation is transformers-only.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import PreTrainedModel, Trainer, set_seed
from trl import GRPOTrainer

from ..policies.base import CLIPS_KEY, ClipBatch, clip_chunks
from ..policies.value_heads import (
    SequenceValueModel,
    TokenValueModel,
    ValueHead,
    build_value_model,
    capture_decoder_hidden,
)
from ..policies.value_heads import completion_values as head_values
from . import ppo_math
from .ppo_config import ASRPPOConfig
from .speech import SpeechTrainerMixin, resolve_reward_names
from .trl_compat import (
    BORROWED_FROM_GRPO,
    DistributedBackend,
    add_fused_lm_head,
    check_trl_internals,
    get_callable_name,
    shuffle_sequence_dict,
    split_tensor_dict,
)

VALUE_WEIGHTS = "value_model.safetensors"
PPO_STATE = "ppo_state.json"


def _identity(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return features


class ASRPPOTrainer(SpeechTrainerMixin, Trainer):
    """PPO with a value model for speech-to-text policies (Whisper; CTC families through the ``audio`` critic).

    Args:
        model: a speech policy or a path / hub id (loaded with ``args.model_init_kwargs``).
        reward_funcs: TRL-style reward functions (``completions`` + every dataset column, the audio decoded once
            per clip) or names from ``rlnf.rewards.registry``; weighted by ``args.reward_weights``.
        args: an `ASRPPOConfig`.
        train_dataset / eval_dataset: rows with ``args.audio_column`` (+ ``reference_column`` for reference
            rewards / ``eval_reference_column`` for the greedy eval WER/CER).
        processing_class: the policy's processor (feature extractor + tokenizer).
        value_model: a critic to train instead of the one ``args.value_model`` builds (same interface).
        peft_config: a ``peft.LoraConfig`` (no ``task_type`` for Whisper); the reference is then the base model.
    """

    _tag_names = ["rlnf", "ppo", "asr"]

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: Any,
        args: ASRPPOConfig | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | dict[str, Dataset | IterableDataset] | None = None,
        processing_class: Any = None,
        value_model: nn.Module | None = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        peft_config: Any = None,
    ):
        check_trl_internals()
        args = self._default_args(model, args, ASRPPOConfig, "PPO")
        if train_dataset is None:
            raise ValueError("ASRPPOTrainer needs a train_dataset with an audio column")
        model, processing_class, train_dataset, eval_dataset = self._speech_datasets(
            model, processing_class, args, peft_config, train_dataset, eval_dataset
        )
        funcs = resolve_reward_names(reward_funcs, args)
        self.reward_funcs = list(funcs) if isinstance(funcs, (list, tuple)) else [funcs]
        for func in self.reward_funcs:
            if isinstance(func, nn.Module) or not callable(func):
                raise TypeError(
                    f"reward {func!r}: ASRPPOTrainer takes reward callables (wrap an audio+text model in "
                    "rlnf.AudioTextReward; TRL's text classifiers are not supported)"
                )
        self.reward_func_names = [get_callable_name(f) for f in self.reward_funcs]
        weights = args.reward_weights or [1.0] * len(self.reward_funcs)
        if len(weights) != len(self.reward_funcs):
            raise ValueError(f"{len(weights)} reward_weights for {len(self.reward_funcs)} reward functions")
        self.reward_weights = torch.tensor(weights, dtype=torch.float32)

        # The critic and the reference are copies of the policy as given (before any wrapping or patching).
        if args.value_model != "audio" and not self.policy.token_critic:
            raise ValueError(
                f"value_model={args.value_model!r} needs a decoder; a {self.policy.family} policy takes "
                "value_model='audio' (one value per clip from pooled encoder states)"
            )
        set_seed(args.seed)  # the critic's head is initialised at random: the same seed, the same critic
        self.value_model = (
            value_model
            if value_model is not None
            else build_value_model(args.value_model, model, encoder_of=self.policy.critic_encoder)
        )
        if args.freeze_encoder and isinstance(self.value_model, TokenValueModel):
            # the critic's encoder copy stays equal to the frozen policy encoder: it reuses its states
            self.value_model.trunk.get_encoder().requires_grad_(False)
        needs_reference = args.kl_coef > 0 or args.adaptive_kl
        self.ref_model = None
        if needs_reference and peft_config is None:
            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval()
        # Log-probs in chunks without the full logits (TRL's fused head, at the sampling temperature). It keeps a
        # bound forward of the model it patches, so copies are made above, before patching, and patched apart.
        add_fused_lm_head(model, temperature=args.temperature, outputs=("log_probs", "entropy"))
        if self.ref_model is not None:
            add_fused_lm_head(self.ref_model, temperature=args.temperature)
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)

        init_kwargs, args.model_init_kwargs = args.model_init_kwargs, None
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=_identity,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=self.policy.tokenizer,
                callbacks=callbacks,
                optimizers=optimizers,
            )
        finally:
            args.model_init_kwargs = init_kwargs
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise NotImplementedError(
                "ASRPPOTrainer runs on one process or DDP; DeepSpeed/FSDP would have to shard the critic too. "
                "Use ASRGRPOTrainer or ASRRLOOTrainer (no critic) for sharded training."
            )
        self.model_accepts_loss_kwargs = False  # the loss is a mean per mini-batch: Trainer divides by accumulation
        self._dist = DistributedBackend(self.accelerator)
        self.num_generations = args.num_generations
        self.num_iterations = args.num_ppo_epochs  # names read by the repeat sampler reused from GRPOTrainer
        self.shuffle_dataset = True
        device = self.accelerator.device
        self.value_model.to(device)
        if self.ref_model is not None:
            self.ref_model.to(device)
        if self.accelerator.num_processes > 1:
            self.value_model = self.accelerator.prepare_model(self.value_model)
        if args.adaptive_kl:
            self.kl_ctl = ppo_math.AdaptiveKLController(args.kl_coef, args.kl_target, args.kl_horizon)
        else:
            self.kl_ctl = ppo_math.FixedKLController(args.kl_coef)
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._step = 0
        self._rollout_batch: dict[str, Any] | None = None
        self._buffered_inputs: list[dict[str, Any]] | None = None
        self._finish_speech_setup(processing_class)
        self.policy.configure_sampling(
            {
                "do_sample": True,
                "temperature": args.temperature,
                "top_p": args.top_p,
                "top_k": args.top_k or None,
                "pad_token_id": self.policy.pad_token_id if hasattr(self.policy, "pad_token_id") else None,
                "eos_token_id": self.policy.eos_token_ids,
                "max_new_tokens": args.max_completion_length,
            },
            args.generation_kwargs,
        )
        self.generation_kwargs = getattr(self.policy, "generation_kwargs", None)

    # ---- data: one rollout batch per num_mini_batches x num_ppo_epochs steps (TRL's repeat sampler) -----

    get_train_dataloader, _get_train_sampler = (getattr(GRPOTrainer, name) for name in BORROWED_FROM_GRPO)

    @property
    def value_module(self) -> nn.Module:
        """The critic without its DDP wrapper."""
        return self.accelerator.unwrap_model(self.value_model)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer for the policy plus parameter groups for the critic (same lr and decay rules)."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        critic = self.value_module
        decay = set(self.get_decay_parameter_names(critic))
        params = [(n, p) for n, p in critic.named_parameters() if p.requires_grad]
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for names_decay, weight_decay in ((True, self.args.weight_decay), (False, 0.0)):
            group = [p for n, p in params if (n in decay) == names_decay and id(p) not in known]
            if group:
                optimizer.add_param_group({"params": group, "weight_decay": weight_decay})
        return optimizer

    def training_step(self, model: nn.Module, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        if self._step % self.args.gradient_accumulation_steps == 0:
            self.value_model.zero_grad(set_to_none=True)  # Trainer zeroes the policy's gradients only
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step += 1
        if self._step % self.args.gradient_accumulation_steps == 0 and self.args.max_grad_norm:
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.value_model.parameters() if p.grad is not None], self.args.max_grad_norm
            )
            self._metrics["train"]["val/grad_norm"].append(float(grad_norm))
        return loss

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        """Training: a new rollout every ``num_mini_batches x num_ppo_epochs`` steps, reshuffled into mini-batches
        at the start of every PPO epoch. (A resume that lands inside a rollout cycle draws a fresh rollout.)"""
        if not self.model.training:
            raise RuntimeError("ASRPPOTrainer evaluates by greedy WER/CER only (no sampled evaluation batches)")
        minis = self.args.num_mini_batches
        cycle = minis * self.args.num_ppo_epochs
        if self._step % cycle == 0 or self._rollout_batch is None:
            self._rollout_batch = self._rollout(generation_batch)
            self._buffered_inputs = None
        if self._step % minis == 0 or self._buffered_inputs is None:
            self._buffered_inputs = split_tensor_dict(shuffle_sequence_dict(self._rollout_batch), minis)
        return self._buffered_inputs[self._step % minis]

    # ---- rollout -----------------------------------------------------------------------------------

    def _reference_context(self) -> Any:
        if self.ref_model is not None:
            return nullcontext(self.ref_model)
        return _adapters_disabled(self.accelerator.unwrap_model(self.model))

    def _policy_pass(
        self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, keep: int, entropy: bool, values: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(logps, entropies, values)`` of the completions; with the shared critic the values come from the
        same decoder pass (its last hidden states, captured by a hook)."""
        shared = values and isinstance(self.value_module, ValueHead)
        with capture_decoder_hidden(model) if shared else nullcontext([]) as hidden:
            logps, entropies = self._clip_log_probs(model, ids, mask, keep, None, entropy)
        if not values:
            return logps, entropies, None
        if shared:
            order = torch.cat(clip_chunks(self._clip_batch.clip_of_row, ids.size(0))).argsort()
            states = torch.cat(hidden)[order.to(ids.device)]
            with self.accelerator.autocast():
                return logps, entropies, head_values(self.value_model, states, mask, keep)
        return logps, entropies, self._critic_values(self._clip_batch, ids, mask, keep)

    def _critic_values(self, clips: ClipBatch, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
        """Token values ``[rows, keep]`` of a separate critic, or sequence values ``[rows]`` of an audio critic."""
        with self.accelerator.autocast():
            if isinstance(self.value_module, SequenceValueModel):
                return self.value_model(clips).index_select(0, clips.clip_of_row)
            return self.value_model(clips, ids, mask, keep)

    @property
    def sequence_level(self) -> bool:
        return isinstance(self.value_module, SequenceValueModel)

    def _rollout(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        device = self.accelerator.device
        rows, clips, bad_rows = self._collect_clips(inputs)
        self._clip_batch, self._bad_rows = clips, bad_rows
        try:
            completions = self._sample_completions(clips, bad_rows)
            prompt_ids = torch.tensor([self.policy.prompt_ids] * len(rows), dtype=torch.long, device=device)
            width = max(1, max(len(c) for c in completions))
            pad = int(getattr(self.policy, "pad_token_id", self.policy.eos_token_ids[0]))
            completion_ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
            completion_mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
            for i, ids in enumerate(completions):
                completion_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long, device=device)
                completion_mask[i, : len(ids)] = 1
            ids = torch.cat([prompt_ids, completion_ids], 1)
            mask = torch.cat([torch.ones_like(prompt_ids), completion_mask], 1)
            with torch.no_grad():
                old_logps, entropies, values = self._policy_pass(self.model, ids, mask, width, True, True)
                ref_logps = None
                if self.args.kl_coef > 0 or self.args.adaptive_kl:
                    with self._reference_context() as reference:
                        ref_logps, _, _ = self._policy_pass(reference, ids, mask, width, False, False)
            texts = self.policy.tokenizer.batch_decode(completions, skip_special_tokens=True)
            per_func = self._score(rows, texts, completions)
        finally:
            self._clip_batch = self._bad_rows = None

        # Rows that carry no learning signal: skipped clips, unscorable completions, empty completions.
        valid = ~torch.tensor(bad_rows, device=device) & ~torch.isnan(per_func).all(1) & (completion_mask.sum(1) > 0)
        scores = torch.nan_to_num((per_func * self.reward_weights.to(device)).nansum(1) * valid, nan=0.0)
        loss_mask = completion_mask * valid.unsqueeze(1).long()
        score_mask = completion_mask.clone()
        score_mask[completion_mask.sum(1) == 0, 0] = 1  # an empty row still has a slot for its (zero) score
        if ref_logps is not None:
            kl = ppo_math.per_token_kl(old_logps, ref_logps, self.args.kl_estimator) * loss_mask
        else:
            kl = torch.zeros_like(old_logps)
        rewards, non_score = ppo_math.per_token_rewards(scores, kl, score_mask, self.kl_ctl.value)
        rewards = rewards * loss_mask
        reduce = self.accelerator.reduce if self.accelerator.num_processes > 1 else None
        if self.args.whiten_rewards:
            rewards = ppo_math.masked_whiten(rewards, loss_mask, shift_mean=False, reduce=reduce)
        if self.sequence_level:
            sequence_return = rewards.sum(1)
            advantages, returns = ppo_math.sequence_advantages(sequence_return, values.float())
            advantages = ppo_math.masked_whiten(advantages, valid, reduce=reduce)
            token_advantages = advantages.unsqueeze(1) * loss_mask
            value_mask, explained = valid, ppo_math.explained_variance(values, returns, valid, reduce)
        else:
            advantages, returns = ppo_math.gae(rewards, values.float(), loss_mask, self.args.gamma, self.args.lam)
            token_advantages = ppo_math.masked_whiten(advantages, loss_mask, reduce=reduce)
            value_mask, explained = loss_mask, ppo_math.explained_variance(values, returns, loss_mask, reduce)

        sequence_kl = (kl * loss_mask).sum(1)
        self._log_rollout(per_func, scores, sequence_kl, non_score.sum(1), entropies, loss_mask, valid, explained)
        n_samples = int(self.accelerator.reduce(valid.sum(), reduction="sum")) if reduce else int(valid.sum())
        mean_kl = float(ppo_math.masked_mean(sequence_kl, valid, reduce))
        self.kl_ctl.update(mean_kl, n_samples)
        return {
            "prompt_ids": prompt_ids,
            "prompt_mask": torch.ones_like(prompt_ids),
            "completion_ids": completion_ids,
            "completion_mask": loss_mask,
            "value_mask": value_mask.long(),
            "old_logps": old_logps,
            "old_values": values.float(),
            "advantages": token_advantages,
            "returns": returns,
            CLIPS_KEY: clips.row_views(),
        }

    def _score(self, rows: list[dict[str, Any]], texts: list[str], completion_ids: list[list[int]]) -> torch.Tensor:
        """``[rows, functions]`` rewards (NaN where a function returned None), TRL's keyword contract."""
        n = len(rows)
        columns = {k: [row[k] for row in rows] for k in rows[0] if k != "prompt"}
        prompts = [row["prompt"] for row in rows]
        out = torch.full((n, len(self.reward_funcs)), math.nan)
        with self._guarded_rewards(n):
            for i, (func, name) in enumerate(zip(self.reward_funcs, self.reward_func_names, strict=True)):
                values = func(
                    prompts=prompts,
                    completions=texts,
                    completion_ids=completion_ids,
                    trainer_state=self.state,
                    log_metric=self._log_metric,
                    log_extra=lambda column, values: None,
                    **columns,
                )
                if inspect.isawaitable(values):
                    values = asyncio.run(_awaited(values))
                values = list(values)
                if len(values) != n:
                    raise ValueError(f"reward function {name!r} returned {len(values)} rewards for {n} completions")
                out[:, i] = torch.tensor([math.nan if v is None else float(v) for v in values])
        return out.to(self.accelerator.device)

    def _log_metric(self, name: str, value: float) -> None:
        self._metrics["train"][name].append(float(value))

    def _log_rollout(
        self,
        per_func: torch.Tensor,
        scores: torch.Tensor,
        sequence_kl: torch.Tensor,
        non_score: torch.Tensor,
        entropies: torch.Tensor,
        loss_mask: torch.Tensor,
        valid: torch.Tensor,
        explained: float,
    ) -> None:
        reduce = self.accelerator.reduce if self.accelerator.num_processes > 1 else None
        metrics = self._metrics["train"]

        def mean(x: torch.Tensor, m: torch.Tensor) -> float:
            return float(ppo_math.masked_mean(x.float(), m, reduce))

        metrics["objective/kl"].append(mean(sequence_kl, valid))
        metrics["objective/kl_coef"].append(float(self.kl_ctl.value))
        metrics["objective/entropy"].append(mean(entropies, loss_mask))
        metrics["objective/non_score_reward"].append(mean(non_score, valid))
        metrics["objective/scores"].append(mean(scores, valid))
        metrics["objective/rlhf_reward"].append(mean(scores + non_score, valid))
        metrics["val/explained_variance"].append(explained)
        metrics["completions/mean_length"].append(mean(loss_mask.sum(1), valid))
        gathered = self.accelerator.gather(per_func) if reduce else per_func
        for i, name in enumerate(self.reward_func_names):
            metrics[f"rewards/{name}/mean"].append(float(torch.nanmean(gathered[:, i])))

    # ---- loss --------------------------------------------------------------------------------------

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        if return_outputs:
            raise ValueError("ASRPPOTrainer does not return outputs")
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([inputs["prompt_mask"], _sampled_mask(inputs)], 1)
        width = inputs["completion_ids"].size(1)
        with self._clips_from(inputs):
            logps, _, values = self._policy_pass(model, ids, mask, width, False, True)
        loss_mask, value_mask = inputs["completion_mask"], inputs["value_mask"]
        # Means over the mini-batch of ALL processes: each rank divides its sum by (global count / processes), so
        # DDP's gradient average is the one-process mean (per-rank means would weight ranks' tokens unequally).
        world = self.accelerator.num_processes
        counts = torch.stack([loss_mask.sum(), value_mask.sum()]).float()
        if world > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        policy_norm, value_norm = (counts.clamp(min=1.0) / world).unbind()
        pg_loss, pg_clipfrac, approx_kl = ppo_math.clipped_policy_loss(
            logps, inputs["old_logps"], inputs["advantages"], loss_mask, self.args.cliprange, policy_norm
        )
        vf_loss, vf_clipfrac = ppo_math.clipped_value_loss(
            values.float(), inputs["old_values"], inputs["returns"], value_mask, self.args.cliprange_value, value_norm
        )
        loss = pg_loss + self.args.vf_coef * vf_loss
        metrics = self._metrics["train"]
        for name, value in (
            ("loss/policy", pg_loss),
            ("loss/value", vf_loss),
            ("policy/clipfrac", pg_clipfrac),
            ("val/clipfrac", vf_clipfrac),
            ("policy/approxkl", approx_kl),
        ):
            metrics[name].append(float(self.accelerator.gather(value.detach()).mean()))
        return loss

    # ---- logging, saving, resuming -------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        averaged = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        if mode == "eval":
            averaged = {f"eval_{k}": v for k, v in averaged.items()}
        self._metrics[mode].clear()
        super().log({**logs, **averaged}, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            from safetensors.torch import save_model

            save_model(self.value_module, os.path.join(output_dir, VALUE_WEIGHTS))
            with open(os.path.join(output_dir, PPO_STATE), "w") as handle:
                json.dump({"kl_coef": self.kl_ctl.value, "value_model": self.args.value_model}, handle)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.load_value_model(resume_from_checkpoint)

    def load_value_model(self, folder: str) -> None:
        """Load the critic (and the KL coefficient) saved by this trainer in ``folder``."""
        from safetensors.torch import load_model

        path = os.path.join(folder, VALUE_WEIGHTS)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {VALUE_WEIGHTS}: it was not saved by ASRPPOTrainer")
        state_path = os.path.join(folder, PPO_STATE)
        state = {}
        if os.path.isfile(state_path):
            with open(state_path) as handle:
                state = json.load(handle)
            if state.get("value_model") != self.args.value_model:
                raise ValueError(
                    f"{folder} holds a {state.get('value_model')!r} critic but value_model={self.args.value_model!r}"
                )
        load_model(self.value_module, path, strict=True, device=str(self.accelerator.device))
        if "kl_coef" in state:
            self.kl_ctl.value = float(state["kl_coef"])


def _sampled_mask(inputs: dict[str, Any]) -> torch.Tensor:
    """Attention mask of the completions in the loss pass: the rollout's for rows that count; rows masked out of
    the losses (skipped clips, unscorable) keep one attended token so the forward stays well defined."""
    mask = inputs["completion_mask"].clone()
    empty = mask.sum(1) == 0
    mask[empty, 0] = 1
    return mask


async def _awaited(value: Any) -> Any:
    return await value


@contextmanager
def _adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """The PEFT base model (adapters off) as the reference."""
    with model.disable_adapter():
        yield model


__all__ = ["PPO_STATE", "VALUE_WEIGHTS", "ASRPPOTrainer"]
