"""Drop-in check: TRL's stock, unmodified GRPOTrainer and RLOOTrainer train with rlnf's reward functions.

A tiny causal LM and tokenizer are built offline; the dataset carries ``prompt``, ``audio`` (wav paths) and
``text`` (reference) columns. Two optimizer steps each, on CPU.
"""

from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from rlnf.rewards.audio_text_reward import AudioTextReward
from rlnf.rewards.transcript_rewards import wer
from rlnf.testing import BAMBARA_SAMPLE, sine_clip, tiny_reward_model

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


class SpyReward(AudioTextReward):
    """Records what TRL passes, then scores as usual."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []

    def __call__(self, prompts=None, completions=None, **kwargs):
        self.calls.append({"columns": sorted(kwargs), "audio": list(kwargs.get("audio") or [])})
        return super().__call__(prompts=prompts, completions=completions, **kwargs)


def tiny_causal_lm() -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A 1-layer Llama with a word-level tokenizer trained on a few Bambara sentences (no hub)."""
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(BAMBARA_SAMPLE, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i, seconds in enumerate([0.6, 0.9, 0.7, 1.1]):
        path = folder / f"clip{i}.wav"
        sf.write(path, sine_clip(seconds, 180 + 70 * i, seed=i), 16000)
        paths.append(str(path))
    return Dataset.from_dict({"prompt": ["i ni"] * 4, "audio": paths, "text": BAMBARA_SAMPLE[:4]})


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    return tiny_reward_model(tmp_path_factory.mktemp("reward"))


def common_args(tmp_path) -> dict:
    return dict(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        activation_checkpointing=False,
        beta=0.0,
        seed=0,
        disable_tqdm=True,
    )


@pytest.mark.parametrize(
    ("trainer_class", "config_class"),
    [(GRPOTrainer, GRPOConfig), (RLOOTrainer, RLOOConfig)],
    ids=["grpo", "rloo"],
)
def test_stock_trainer_with_rlnf_rewards(trainer_class, config_class, dataset, reward_model, tmp_path):
    model, processor = reward_model
    policy, tokenizer = tiny_causal_lm()
    reward = SpyReward(model, processor)
    trainer = trainer_class(
        model=policy,
        processing_class=tokenizer,
        reward_funcs=[reward, wer],
        train_dataset=dataset,
        args=config_class(**common_args(tmp_path)),
    )
    trainer.train()

    # The reward callable saw the audio column (each clip repeated once per generation) and the reference.
    assert reward.calls
    for call in reward.calls:
        assert {"audio", "text", "trainer_state", "log_metric", "log_extra"} <= set(call["columns"])
        assert len(call["audio"]) == 8 and set(call["audio"]) <= set(dataset["audio"])
        assert all(call["audio"].count(path) == 4 for path in set(call["audio"]))

    # The references went to TRL's completions table through log_extra, aligned with the completions.
    assert len(trainer._logs["extra"]["reference"]) == len(trainer._logs["completion"])

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert math.isfinite(entry["loss"])
        assert 0.0 <= entry["rewards/reward_model/mean"] <= 1.0
        assert 0.0 <= entry["rewards/wer/mean"] <= 1.0
        assert entry["reward_model/unique_clips"] == 2.0  # 8 completions = 2 clips x 4 generations
