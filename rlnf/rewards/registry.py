"""Rewards by name, so a recipe or YAML file can choose them: ``reward_funcs: [reward_model, wer]``.

Stock TRL reads a string in ``reward_funcs`` as a hub id of a *text* classifier, so names must be resolved
here first::

    funcs, weights = get_reward_funcs(["reward_model", "wer", "repetition_penalty"],
                                      reward_model_path="RobotsMali/reward-model",
                                      weights=[1.0, 0.5, 0.2], reference_column="text",
                                      repetition_penalty={"ngram_size": 4})
    trainer = GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(..., reward_weights=weights))
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

from .transcript_rewards import make_cer_reward, make_empty_penalty, make_repetition_penalty, make_wer_reward

RewardFunc = Callable[..., list]


def make_reward_model(reward_model_path: str | os.PathLike | None = None, **options: Any) -> RewardFunc:
    """`AudioTextReward` loaded from ``reward_model_path`` (a local folder or hub id)."""
    if reward_model_path is None:
        raise ValueError("the 'reward_model' reward needs reward_model_path=<folder or hub id>")
    from .audio_text_reward import AudioTextReward

    return AudioTextReward.from_pretrained(reward_model_path, **options)


def _reward_model_options() -> set[str]:
    from .audio_text_reward import AudioTextReward

    accepted = set(inspect.signature(AudioTextReward.__init__).parameters) - {"self", "model", "processor"}
    return accepted | {"reward_model_path", "revision"}


# name -> factory returning the reward callable; every factory takes keyword options only.
REWARD_FUNCS: dict[str, Callable[..., RewardFunc]] = {
    "reward_model": make_reward_model,
    "wer": make_wer_reward,
    "cer": make_cer_reward,
    "repetition_penalty": make_repetition_penalty,
    "empty_penalty": make_empty_penalty,
}


def _accepted_options(name: str) -> set[str]:
    if name == "reward_model":
        return _reward_model_options()
    return set(inspect.signature(REWARD_FUNCS[name]).parameters)


def _check_names(names: Sequence[str | RewardFunc]) -> None:
    seen: set[str] = set()
    for name in names:
        if callable(name):
            continue
        if name not in REWARD_FUNCS:
            raise ValueError(f"unknown reward {name!r}; known rewards: {sorted(REWARD_FUNCS)}")
        if name in seen:
            raise ValueError(f"reward {name!r} is listed twice (TRL would log both under one name)")
        seen.add(name)


def _split_options(names: Sequence[str], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict]]:
    """Shared options vs. per-reward option dicts (an option named after a selected reward)."""
    per_reward = {name: dict(options.pop(name) or {}) for name in list(options) if name in REWARD_FUNCS}
    for name in per_reward:
        if name not in names:
            raise ValueError(f"options given for reward {name!r}, which is not in {list(names)}")
    return options, per_reward


def get_reward_funcs(
    names: Sequence[str | RewardFunc],
    *,
    weights: Sequence[float] | None = None,
    reward_model_path: str | os.PathLike | None = None,
    **options: Any,
) -> tuple[list[RewardFunc], list[float]]:
    """Build reward callables by name, with their weights (for ``GRPOConfig.reward_weights``).

    Args:
        names: reward names from `REWARD_FUNCS` (callables are passed through unchanged).
        weights: one weight per reward; default 1.0 each.
        reward_model_path: folder or hub id for ``"reward_model"``.
        options: shared keyword options, each given to every selected reward whose factory accepts it (e.g.
            ``reference_column``, ``audio_column``, ``normalizer``); an option named after a reward holds a
            dict of options for that reward only, and wins over shared ones. An option that no known
            reward accepts is an error, so typos do not pass silently.

    Returns:
        ``(reward_funcs, weights)``: lists of the same length as ``names``.
    """
    names = list(names)
    _check_names(names)
    if weights is None:
        weights = [1.0] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"got {len(weights)} weights for {len(names)} rewards {names}")
    shared, per_reward = _split_options(names, dict(options))
    if reward_model_path is not None and "reward_model" in names:  # ignored otherwise: recipes always pass it
        shared["reward_model_path"] = reward_model_path
    used: set[str] = set()
    funcs = []
    for name in names:
        if callable(name):
            funcs.append(name)
            continue
        accepted = _accepted_options(name)
        chosen = {key: value for key, value in shared.items() if key in accepted}
        used |= set(chosen)
        unknown = set(per_reward.get(name, {})) - accepted
        if unknown:
            raise ValueError(f"reward {name!r} takes no {sorted(unknown)}; it takes {sorted(accepted)}")
        funcs.append(REWARD_FUNCS[name](**{**chosen, **per_reward.get(name, {})}))
    # Options some other known reward takes are fine (a recipe passes its columns whatever rewards it picks);
    # an option that no reward takes is a typo.
    known = set().union(*(_accepted_options(name) for name in REWARD_FUNCS))
    unknown_options = set(shared) - used - known
    if unknown_options:
        raise ValueError(f"no reward takes the options {sorted(unknown_options)} (rewards: {names})")
    return funcs, [float(weight) for weight in weights]
