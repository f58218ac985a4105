"""rlnf: reinforcement learning from a learned reward for speech recognition, as a plugin for TRL.

Importing rlnf registers the "reward-model" type with the transformers Auto classes. The heavier pieces
(reward functions, trainers) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor, AutoTokenizer

from .reward_model import (
    RewardConfig,
    RewardFeatureExtractor,
    RewardModel,
    RewardModelProcessor,
    RewardTokenizer,
    train_tokenizer,
)

__version__ = "0.1.0"

AutoConfig.register(RewardConfig.model_type, RewardConfig, exist_ok=True)
AutoModel.register(RewardConfig, RewardModel, exist_ok=True)
AutoFeatureExtractor.register(RewardConfig, RewardFeatureExtractor, exist_ok=True)
AutoTokenizer.register(RewardConfig, slow_tokenizer_class=RewardTokenizer, exist_ok=True)
AutoProcessor.register(RewardConfig, RewardModelProcessor, exist_ok=True)

_LAZY = {
    "AudioTextReward": "rlnf.rewards.audio_text_reward",
    "get_reward_funcs": "rlnf.rewards.registry",
    "ASRGRPOConfig": "rlnf.trainers",
    "ASRGRPOTrainer": "rlnf.trainers",
    "ASRPPOConfig": "rlnf.trainers",
    "ASRPPOTrainer": "rlnf.trainers",
    "ASRRLOOConfig": "rlnf.trainers",
    "ASRRLOOTrainer": "rlnf.trainers",
    "load_audio": "rlnf.audio",
    "wer": "rlnf.rewards.transcript_rewards",
    "cer": "rlnf.rewards.transcript_rewards",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlnf' has no attribute {name!r}")


__all__ = [
    "ASRGRPOConfig",
    "ASRGRPOTrainer",
    "ASRPPOConfig",
    "ASRPPOTrainer",
    "ASRRLOOConfig",
    "ASRRLOOTrainer",
    "AudioTextReward",
    "RewardConfig",
    "RewardFeatureExtractor",
    "RewardModel",
    "RewardModelProcessor",
    "RewardTokenizer",
    "cer",
    "get_reward_funcs",
    "load_audio",
    "train_tokenizer",
    "wer",
]
