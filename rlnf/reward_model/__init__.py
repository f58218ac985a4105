"""The RobotsMali reward model, transformers-style: configuration, model, processor and tokenizer (no TRL here)."""

from .checkpoint import CheckpointError
from .configuration import RewardConfig
from .modeling import RewardAudioEncoding, RewardModel, RewardTextEncoding
from .processing import RewardFeatureExtractor, RewardModelProcessor, train_tokenizer
from .tokenization import RewardTokenizer

__all__ = [
    "CheckpointError",
    "RewardAudioEncoding",
    "RewardConfig",
    "RewardFeatureExtractor",
    "RewardModel",
    "RewardModelProcessor",
    "RewardTextEncoding",
    "RewardTokenizer",
    "train_tokenizer",
]
