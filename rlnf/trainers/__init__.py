"""Trainers: GRPO for speech-to-text policies (a TRL plugin), and reward-model training."""

from .asr_eval import error_rates, evaluate_asr
from .grpo_config import ASRGRPOConfig
from .grpo_trainer import ASRGRPOTrainer
from .speech import RewardFunctionError, SpeechTrainerMixin, UndecodableAudioError
from .speech_config import SpeechConfigMixin

__all__ = [
    "ASRGRPOConfig",
    "ASRGRPOTrainer",
    "RewardFunctionError",
    "SpeechConfigMixin",
    "SpeechTrainerMixin",
    "UndecodableAudioError",
    "error_rates",
    "evaluate_asr",
]
