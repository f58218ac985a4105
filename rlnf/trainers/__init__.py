"""GRPO for speech-to-text policies, as a TRL plugin: ``ASRGRPOConfig`` and ``ASRGRPOTrainer``."""

from .asr_metrics import error_rates, evaluate_asr, transcribe
from .grpo import ASRGRPOTrainer, RewardFunctionError, UndecodableAudioError
from .grpo_config import ASRGRPOConfig

__all__ = [
    "ASRGRPOConfig",
    "ASRGRPOTrainer",
    "RewardFunctionError",
    "UndecodableAudioError",
    "error_rates",
    "evaluate_asr",
    "transcribe",
]
