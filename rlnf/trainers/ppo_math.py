"""The arithmetic of PPO with a value model, as pure tensor functions (no trainer, no model).

Kept apart from ``ppo_trainer.py`` so each formula is tested against hand computations. They follow TRL's former
PPO trainer (``trl/trainer/ppo_trainer.py`` up to v0.19) and standard RLHF PPO (Ziegler et al. 2019, Ouyang et
al. 2022): per-token rewards are the sequence score on the last completion token minus a per-token KL penalty,
advantages come from GAE(gamma, lambda) and are whitened, the policy and value losses are clipped.

Conventions: ``mask`` is ``[rows, T]`` with 1 on completion tokens (up to and including EOS) and 0 on padding;
completions are right-padded (TRL's layout), so a row's tokens are contiguous from position 0. Every reduction
counts masked positions only. ``reduce`` (optional) sums a tensor over processes (``accelerator.reduce``), so a
mean or a whitening over a rollout batch split across ranks equals the one-process value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Reduce = Callable[[torch.Tensor], torch.Tensor] | None


def _sum(x: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    return reduce(x) if reduce is not None else x


def masked_mean(x: torch.Tensor, mask: torch.Tensor, reduce: Reduce = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (0 when nothing is masked in)."""
    mask = mask.to(x.dtype)
    totals = _sum(torch.stack([(x * mask).sum(), mask.sum()]), reduce)
    return totals[0] / totals[1].clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> torch.Tensor:
    """Variance of ``x`` over masked positions (Bessel-corrected when ``unbiased``, as TRL's ``masked_var``)."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask, reduce)
    totals = _sum(torch.stack([(((x - mean) ** 2) * mask).sum(), mask.sum()]), reduce)
    count = totals[1]
    if unbiased:
        if count <= 1:
            raise ValueError(f"unbiased variance needs at least 2 masked values, got {int(count)}")
        return totals[0] / (count - 1)
    return totals[0] / count.clamp(min=1.0)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, reduce: Reduce = None, eps: float = 1e-8
) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over masked positions; padding stays 0. ``shift_mean=False`` adds the mean
    back (TRL whitens rewards that way: scale only)."""
    mean = masked_mean(x, mask, reduce)
    var = masked_var(x, mask, reduce=reduce)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# ----------------------------------------------------------------------------------------------------
# KL penalty and per-token rewards
# ----------------------------------------------------------------------------------------------------


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL estimate of the sampled tokens, policy vs reference.

    ``"k1"``: ``log pi - log pi_ref`` (TRL's former PPO default; unbiased, can be negative per token).
    ``"k3"``: ``(r - 1) - log r`` with ``r = pi_ref / pi`` (Schulman's estimator, always >= 0, lower variance).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {estimator!r}")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last completion token (``-1`` for an empty row)."""
    return mask.long().sum(-1) - 1


def per_token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rewards, non_score_rewards)``, both ``[rows, T]``: ``-kl_coef * kl`` on every completion token, plus the
    sequence score ``scores[row]`` on the row's last completion token; 0 on padding.

    A row with no completion token cannot carry its score: that is an error, not a silently dropped reward.
    """
    if scores.shape != (kl.shape[0],):
        raise ValueError(f"scores must have shape [{kl.shape[0]}] (one per row), got {tuple(scores.shape)}")
    maskf = mask.to(kl.dtype)
    non_score = -kl_coef * kl * maskf
    last = last_token_index(mask)
    if (last < 0).any():
        raise ValueError(f"rows {torch.nonzero(last < 0).flatten().tolist()} have no completion token for the score")
    rewards = non_score.clone()
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards, non_score


@dataclass
class FixedKLController:
    """A constant KL coefficient."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""
        return None


@dataclass
class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. (2019), as in TRL's former PPO trainer: move ``value`` so the
    observed KL approaches ``target``, by at most 20 % of the error per ``horizon`` samples."""

    value: float
    target: float
    horizon: int

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"adaptive KL needs target > 0 and horizon > 0, got {self.target} and {self.horizon}")

    def update(self, current_kl: float, n_steps: int) -> None:
        """``value *= 1 + clip(current/target - 1, -0.2, 0.2) * n_steps / horizon``."""
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


# ----------------------------------------------------------------------------------------------------
# Advantages
# ----------------------------------------------------------------------------------------------------


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)`` ``[rows, T]`` by generalised advantage estimation over masked sequences.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V`` = 0 after the last completion token (the episode ends
    there), ``A_t = delta_t + gamma * lam * A_{t+1}``, ``returns = A + V``. Padding positions are 0 in both.
    """
    maskf = mask.to(values.dtype)
    rewards, values = rewards * maskf, values * maskf
    length = rewards.shape[1]
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = (delta + gamma * lam * last) * maskf[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * maskf


def sequence_advantages(scores: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence-level ``(advantages, returns)`` ``[rows]`` for a sequence critic (one value per clip and
    transcript, e.g. pooled encoder states): ``A = score - V``, ``returns = score`` (one-step episode)."""
    if scores.shape != values.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and values {tuple(values.shape)} must have the same shape")
    return scores - values, scores.clone()


# ----------------------------------------------------------------------------------------------------
# Losses and diagnostics
# ----------------------------------------------------------------------------------------------------


def _mean(x: torch.Tensor, mask: torch.Tensor, normalizer: float | torch.Tensor | None) -> torch.Tensor:
    """Masked mean, or the masked sum over ``normalizer`` (a mini-batch split over processes: the global count
    of masked positions divided by the number of processes, so DDP's gradient average is the global mean)."""
    if normalizer is None:
        return masked_mean(x, mask)
    return (x * mask.to(x.dtype)).sum() / normalizer


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, clipfrac, approx_kl)`` of PPO's clipped surrogate, averaged over masked tokens.

    ``loss = mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps)))`` with ``r = exp(logp - old_logp)``; ``clipfrac``
    is the share of tokens where the clipped term is the larger one; ``approx_kl = 0.5 * mean((logp - old)^2)``.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = _mean(torch.max(unclipped, clipped), mask, normalizer)
    clipfrac = _mean((clipped > unclipped).to(logprobs.dtype), mask, normalizer)
    approx_kl = 0.5 * _mean(log_ratio.detach() ** 2, mask, normalizer)
    return loss, clipfrac.detach(), approx_kl


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, clipfrac)``: ``0.5 * mean(max((V - R)^2, (clip(V, V_old +- eps) - R)^2))`` over masked positions."""
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * _mean(torch.max(unclipped, clipped), mask, normalizer)
    clipfrac = _mean((clipped > unclipped).to(values.dtype), mask, normalizer)
    return loss, clipfrac.detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, reduce: Reduce = None) -> float:
    """``1 - Var[returns - values] / Var[returns]`` over masked positions (1: perfect critic, 0: no better than
    the mean, negative: worse); NaN when the returns do not vary."""
    var_returns = masked_var(returns, mask, unbiased=False, reduce=reduce)
    if var_returns <= 0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask, unbiased=False, reduce=reduce) / var_returns)


__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "clipped_policy_loss",
    "clipped_value_loss",
    "explained_variance",
    "gae",
    "last_token_index",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "per_token_kl",
    "per_token_rewards",
    "sequence_advantages",
]
