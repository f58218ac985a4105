"""The RobotsMali reward model: configuration, model, processor and tokenizer."""

from .configuration import RewardConfig
from .modeling import RewardAudioEncoding, RewardModel, RewardTextEncoding
from .processing import RewardFeatureExtractor, RewardModelProcessor
from .tokenizer import RewardTokenizer, train_tokenizer

__all__ = [
    "RewardAudioEncoding",
    "RewardConfig",
    "RewardFeatureExtractor",
    "RewardModel",
    "RewardModelProcessor",
    "RewardTextEncoding",
    "RewardTokenizer",
    "train_tokenizer",
]
