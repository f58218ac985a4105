"""Rewards by name, so a recipe or YAML file can choose them: ``reward_funcs: [reward_model, wer]``.

Stock TRL reads a string in ``reward_funcs`` as a hub id of a *text* classifier, so names must be resolved
here first. `resolve_reward_funcs` (alias `get_reward_funcs`) is the one resolver: every trainer and recipe
calls it, so a name means the same everywhere, and an unknown name is an error with a close-match
suggestion, never a hub lookup::

    funcs, weights = resolve_reward_funcs(["reward_model", "wer", "repetition_penalty"], [1.0, 0.5, 0.2],
                                          reward_model_path="demo",  # or a folder, or a hub id
                                          reference_column="text", repetition_penalty={"ngram_size": 4})
    trainer = GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(..., reward_weights=weights))
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

from .transcript_rewards import make_cer_reward, make_empty_penalty, make_repetition_penalty, make_wer_reward

RewardFunc = Callable[..., list]


def make_reward_model(reward_model_path: str | os.PathLike | None = None, **options: Any) -> RewardFunc:
    """`AudioTextReward` loaded from ``reward_model_path``: a local folder, a hub id, or ``"demo"`` (the shipped
    demo reward model)."""
    if reward_model_path is None:
        raise ValueError("the 'reward_model' reward needs reward_model_path=<a local folder, a hub id, or 'demo'>")
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


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'wer'?)`` for the closest of ``choices`` (difflib), or nothing."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_names(names: Sequence[Any]) -> None:
    seen: set[str] = set()
    for position, name in enumerate(names):
        if callable(name):
            continue
        if not isinstance(name, str):
            raise ValueError(f"reward {position} must be a reward name or a callable, got {type(name).__name__}")
        if name not in REWARD_FUNCS:
            raise ValueError(
                f"unknown reward {name!r}{_did_you_mean(name, sorted(REWARD_FUNCS))}; known rewards: "
                f"{sorted(REWARD_FUNCS)}. Names are never looked up on the hub: for a reward-model checkpoint use "
                "'reward_model' with reward_model_path=<folder, hub id or 'demo'>"
            )
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


def resolve_reward_funcs(
    names: str | RewardFunc | Sequence[str | RewardFunc],
    weights: Sequence[float] | None = None,
    *,
    reward_model_path: str | os.PathLike | None = None,
    **options: Any,
) -> tuple[list[RewardFunc], list[float]]:
    """Build reward callables by name, with their weights (for ``GRPOConfig.reward_weights``): the one resolver.

    Args:
        names: reward names from `REWARD_FUNCS` (callables are passed through unchanged); one name or callable
            is taken as a list of one, as TRL does.
        weights: one weight per reward; default 1.0 each.
        reward_model_path: folder, hub id or ``"demo"`` for ``"reward_model"`` (an error without one).
        options: shared keyword options, each given to every selected reward whose factory accepts it (e.g.
            ``reference_column``, ``audio_column``, ``normalizer``); an option named after a reward holds a
            dict of options for that reward only, and wins over shared ones. An option that no known
            reward accepts is an error, so typos do not pass silently.

    Returns:
        ``(reward_funcs, weights)``: lists of the same length as ``names``.

    Raises:
        ValueError: an unknown name (with a close match, if any), a name listed twice, a weight count that
            differs from the reward count, or an option no reward takes.
    """
    names = [names] if isinstance(names, str) or callable(names) else list(names)
    _check_names(names)
    if weights is None:
        weights = [1.0] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"got {len(weights)} weights for {len(names)} rewards {names}")
    shared, per_reward = _split_options(names, dict(options))
    if reward_model_path is not None and "reward_model" in names:  # ignored otherwise: recipes always pass it
        shared["reward_model_path"] = reward_model_path
    # Options some other known reward takes are fine (a recipe passes its columns whatever rewards it picks);
    # an option that no reward takes is a typo. Checked before anything is built (a reward model loads slowly).
    known = set().union(*(_accepted_options(name) for name in REWARD_FUNCS))
    unknown_options = set(shared) - known
    if unknown_options:
        first = sorted(unknown_options)[0]
        raise ValueError(
            f"no reward takes the options {sorted(unknown_options)}{_did_you_mean(first, sorted(known))} "
            f"(rewards: {names})"
        )
    chosen: dict[str, dict[str, Any]] = {}
    for name in names:
        if callable(name):
            continue
        accepted = _accepted_options(name)
        unknown = set(per_reward.get(name, {})) - accepted
        if unknown:
            raise ValueError(f"reward {name!r} takes no {sorted(unknown)}; it takes {sorted(accepted)}")
        chosen[name] = {**{k: v for k, v in shared.items() if k in accepted}, **per_reward.get(name, {})}
    funcs = [name if callable(name) else REWARD_FUNCS[name](**chosen[name]) for name in names]
    return funcs, [float(weight) for weight in weights]


get_reward_funcs = resolve_reward_funcs  # the name recipes and trainers have used

REFERENCE_REWARDS = ("wer", "cer")  # rewards that only exist against a reference transcript


def check_reference_free(names: Sequence[Any], reference_column: str | None) -> None:
    """One rule for recipes and trainers: in a reference-free run (``reference_column=None``) a reward that needs
    a reference would score None on every completion, a reward listed (and shown in cards) that never applies;
    refuse it, naming the rewards that do work without transcripts."""
    needing = [name for name in names if isinstance(name, str) and name in REFERENCE_REWARDS]
    if reference_column is None and needing:
        free = sorted(set(REWARD_FUNCS) - set(REFERENCE_REWARDS))
        raise ValueError(
            f"reward(s) {needing} compare with a reference transcript, but reference_column is None "
            f"(reference-free run): remove them from reward_funcs (rewards that need no transcript: {free}) "
            "or set reference_column. The recipes' --reference_free does this for you (the reward model with the "
            "repetition and empty penalties)"
        )


# A learned reward alone can be gamed by degenerate transcripts; these guard against the known ones (the
# benchmark's reference-free setting, rm_only, uses them at weight 1).
REFERENCE_FREE_GUARDS = ("repetition_penalty", "empty_penalty")


def reference_free_rewards(
    names: Sequence[str], weights: Sequence[float] | None = None
) -> tuple[list[str], list[float], list[str]]:
    """The rewards of a reference-free run made from a reward list meant for labelled data (the recipes'
    ``--reference_free``): ``(names, weights, dropped)``, the rewards that need a transcript dropped with their
    weights, and `REFERENCE_FREE_GUARDS` added at weight 1 unless listed. Refused when nothing that scores the
    transcript is left (the penalties alone only punish)."""
    names = list(names)
    weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
    if len(weights) != len(names):
        raise ValueError(f"got {len(weights)} reward_weights for {len(names)} rewards {names}")
    kept = [(n, w) for n, w in zip(names, weights) if not (isinstance(n, str) and n in REFERENCE_REWARDS)]
    dropped = [n for n in names if isinstance(n, str) and n in REFERENCE_REWARDS]
    if not [n for n, _ in kept if n not in REFERENCE_FREE_GUARDS]:
        raise ValueError(
            f"--reference_free leaves no reward that scores a transcript: {names} are all reference-based or "
            "penalties. Add the learned reward: --reward_funcs reward_model (with --reward_model_path)"
        )
    kept += [(guard, 1.0) for guard in REFERENCE_FREE_GUARDS if guard not in names]
    return [n for n, _ in kept], [w for _, w in kept], dropped
