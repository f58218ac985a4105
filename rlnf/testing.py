"""Offline builders of tiny checkpoints, for tests, benchmarks and examples (no hub access needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

BAMBARA_SAMPLE = [
    "i ni ce",
    "i ni sɔgɔma",
    "a bɛ so kɔnɔ",
    "ne tɔgɔ ye Fanta ye",
    "an bɛ taa sugu la",
    "muso ni cɛ bɛ baara la",
    "ɲɔ ni malo sɔngɔ ka gɛlɛn",
    "sanji bɛ na bi",
    "tile ka kalan kosɛbɛ",
    "den fila bɛ yen",
    "i ka kɛnɛ wa",
    "n bɛ taa foro la sini",
    "jiri ka jan",
    "kɔgɔ ni tulu bɛ feere yan",
    "ŋaniya ka ɲi",
    "bamanankan ka di n ye",
]


def sine_clip(seconds: float = 1.0, freq: float = 220.0, sampling_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A deterministic test clip: a tone plus a little noise."""
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def original_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights laid out exactly like the published `model.safetensors`, built without rlnf's classes."""
    torch.manual_seed(seed)
    c = config
    convs: list[nn.Module] = []
    channels = c["n_mel"]
    for _ in range(c["audio_conv_layers"]):
        bn = nn.BatchNorm1d(c["audio_conv_channels"])
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
        bn.num_batches_tracked.fill_(100)
        convs += [nn.Conv1d(channels, c["audio_conv_channels"], c["kernel_size"], 1, c["padding"]), bn, nn.ReLU()]
        channels = c["audio_conv_channels"]
    modules = nn.ModuleDict(
        {
            "audio_encoder": nn.Sequential(*convs),
            "embedding": nn.Embedding(c["vocab_size"], c["embed_dim"], padding_idx=c["pad_token_id"]),
            "lstm": nn.LSTM(c["embed_dim"], c["lstm_hidden"], batch_first=True, bidirectional=True),
            "head": nn.Sequential(
                nn.Linear(c["audio_conv_channels"] + 2 * c["lstm_hidden"], c["head_hidden"]),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(c["head_hidden"], c["head_hidden"]),
                nn.ReLU(),
                nn.Linear(c["head_hidden"], 1),
                nn.Sigmoid(),
            ),
        }
    )
    with torch.no_grad():  # spread the random scores over [0, 1] so comparisons are not all near 0.5
        for name, param in modules.named_parameters():
            if name.startswith(("head", "audio_encoder")) and param.dim() > 1:
                param.mul_(3.0)
    return {k: v.detach().clone().contiguous() for k, v in modules.state_dict().items()}


def write_published_layout(folder: str | Path, texts: list[str] | None = None, piece_count: int = 120) -> Path:
    """A folder shaped like `RobotsMali/reward-model`: original nested config, original weight names,
    T5-style tokenizer files and a `preprocessor_config.json` naming `RewardFeatureExtractor`."""
    import sentencepiece as spm
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join((texts or BAMBARA_SAMPLE) * 3) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "spiece"),
        vocab_size=piece_count,
        model_type="bpe",
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "spiece.vocab").unlink()
    # The original's code defaults, a saved nested config with the published values, and an override.
    saved = {
        "n_mel": 80,
        "vocab_size": 2048,
        "sample_rate": 16000,
        "n_fft": 1024,
        "hop_length": 256,
        "embed_dim": 128,
        "lstm_hidden": 128,
        "lstm_layers": 1,
        "audio_conv_channels": 128,
        "audio_conv_layers": 3,
        "kernel_size": 5,
        "stride": 1,
        "padding": 2,
        "head_hidden": 256,
        "dropout": 0.1,
        "pad_token_id": 1,
        "chunk_length": 30,
        "padding_value": 0,
        "dither": 0.0,
        "return_attention_mask": True,
    }
    config = {
        "architectures": ["RewardModel"],
        "model_type": "reward-model",
        "pretrained_config": saved,
        "override": {"dropout": 0.3},
        "tokenizer_path": "spiece.model",
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(original_state_dict(saved), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "T5Tokenizer",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "extra_ids": 100,
                "model_max_length": 512,
                "legacy": True,
            }
        )
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    )
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "RewardFeatureExtractor",
                "processor_class": "RewardModelProcessor",
                "feature_size": 80,
                "sampling_rate": 16000,
                "hop_length": 256,
                "n_fft": 1024,
                "chunk_length": 30,
                "padding_value": 0.0,
                "padding_side": "right",
                "return_attention_mask": True,
                "dither": 0.0,
            }
        )
    )
    return folder


def tiny_reward_model(folder: str | Path, *, fusion_type: str = "late", vocab_pieces: int = 80, seed: int = 0):
    """A small random `RewardModel` + processor saved to ``folder`` (tokenizer trained on a Bambara sample)."""
    from .reward_model import RewardConfig, RewardModel, train_tokenizer

    processor = train_tokenizer(BAMBARA_SAMPLE * 3, folder, vocab_size=vocab_pieces)
    torch.manual_seed(seed)
    config = RewardConfig(
        vocab_size=len(processor.tokenizer),
        embed_dim=16,
        lstm_hidden=16,
        audio_conv_channels=16,
        head_hidden=32,
        fusion_type=fusion_type,
        num_attention_heads=2,
    )
    model = RewardModel(config).eval()
    model.save_pretrained(folder)
    return model, processor
