"""Trainers: GRPO for speech-to-text policies (a TRL plugin), and reward-model training."""

from .asr_eval import error_rates, evaluate_asr
from .grpo_config import ASRGRPOConfig
from .grpo_trainer import ASRGRPOTrainer
from .ppo_config import ASRPPOConfig
from .ppo_trainer import ASRPPOTrainer
from .rloo_config import ASRRLOOConfig
from .rloo_trainer import ASRRLOOTrainer
from .speech import RewardFunctionError, SpeechTrainerMixin, UndecodableAudioError
from .speech_config import SpeechConfigMixin

__all__ = [
    "ASRGRPOConfig",
    "ASRGRPOTrainer",
    "ASRPPOConfig",
    "ASRPPOTrainer",
    "ASRRLOOConfig",
    "ASRRLOOTrainer",
    "RewardFunctionError",
    "SpeechConfigMixin",
    "SpeechTrainerMixin",
    "UndecodableAudioError",
    "error_rates",
    "evaluate_asr",
]
