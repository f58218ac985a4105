"""Trainers: GRPO for speech-to-text policies (a TRL plugin), and reward-model training."""

from .asr_eval import error_rates, evaluate_asr
from .grpo_config import ASRGRPOConfig
from .grpo_trainer import ASRGRPOTrainer, RewardFunctionError, UndecodableAudioError

__all__ = [
    "ASRGRPOConfig",
    "ASRGRPOTrainer",
    "RewardFunctionError",
    "UndecodableAudioError",
    "error_rates",
    "evaluate_asr",
]
