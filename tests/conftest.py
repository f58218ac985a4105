"""Shared test setup: no network, and tiny synthetic audio datasets (tones + noise, 1-2 s, 16 kHz)."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: an accidental hub call would otherwise retry for ~47 s.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
}.items():
    os.environ.setdefault(_name, _value)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SAMPLING_RATE = 16_000
TEXTS = ["i ni ce", "an bɛ taa sugu la", "sanji bɛ na bi", "den fila bɛ yen"]


def synthetic_clip(seconds: float, freq: float, seed: int = 0, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A deterministic clip: a tone plus a little noise, float32 mono."""
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    noise = np.random.default_rng(seed).standard_normal(t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32)


@pytest.fixture
def audio_rows() -> list[dict]:
    """Four rows ``{"audio": {"array", "sampling_rate"}, "text"}`` of 1.0, 1.3, 1.6 and 1.9 s."""
    return [
        {
            "audio": {"array": synthetic_clip(1.0 + 0.3 * i, 180.0 + 70 * i, seed=i), "sampling_rate": SAMPLING_RATE},
            "text": text,
        }
        for i, text in enumerate(TEXTS)
    ]


@pytest.fixture
def audio_dataset(audio_rows):
    """``audio_rows`` as a ``datasets.Dataset`` (audio stored as array dicts, no decoder needed)."""
    from datasets import Dataset

    return Dataset.from_list(audio_rows)


@pytest.fixture
def wav_dataset(tmp_path, audio_rows):
    """The same clips as 16-bit WAV files; the audio column holds their paths."""
    import soundfile as sf
    from datasets import Dataset

    paths = []
    for i, row in enumerate(audio_rows):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, row["audio"]["array"], SAMPLING_RATE, subtype="PCM_16")
        paths.append(str(path))
    return Dataset.from_dict({"audio": paths, "text": [row["text"] for row in audio_rows]})


# ------------------------------------------------------------------------------------------------ GRPO tests
def clip_dataset(clips: int = 4):
    """``clips`` rows of 0.8, 1.0, 1.2 ... s tones with the `TEXTS` transcripts (repeated past 4)."""
    from datasets import Dataset

    rows = [
        {"audio": {"array": synthetic_clip(0.8 + 0.2 * i, 180.0 + 70 * i, seed=i), "sampling_rate": SAMPLING_RATE},
         "text": text}
        for i, text in enumerate((TEXTS * clips)[:clips])
    ]  # fmt: skip
    return Dataset.from_list(rows)


def grpo_args(tmp_path, **overrides):
    """A tiny `ASRGRPOConfig` for CPU tests: 2 clips x G = 4 per step, 2 steps, lr 1e-2, sequence-level ratios
    (``loss_type="grpo"``) and KL to a reference (beta 0.04); ``overrides`` win."""
    from rlnf.trainers import ASRGRPOConfig

    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        eval_normalizer="none",
        importance_sampling_level="sequence",
        loss_type="grpo",
        beta=0.04,
    )
    values.update(overrides)
    return ASRGRPOConfig(**values)


def length_reward(completions, text, **kwargs):
    """Closeness of the transcript's length to the reference's (varies even for a random policy)."""
    return [-abs(len(hyp) - len(ref)) / len(ref) for hyp, ref in zip(completions, text, strict=True)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict:
    """What the recipe tests run on: 8 clips as ``data.csv`` (= ``labelled.csv``: audio, text) and
    ``audio_only.csv`` (audio), paths relative to the CSV; a tiny Whisper policy and a tiny reward model."""
    import soundfile as sf

    from rlnf.policies.tiny_whisper import build_tiny_whisper
    from rlnf.testing import tiny_reward_model

    root = tmp_path_factory.mktemp("recipe_assets")
    (root / "clips").mkdir()
    labelled, audio_only = ["audio,text"], ["audio"]
    for i in range(8):
        sf.write(root / "clips" / f"c{i}.wav", synthetic_clip(0.6 + 0.1 * i, 150.0 + 40 * i, seed=i), SAMPLING_RATE)
        labelled.append(f"clips/c{i}.wav,{TEXTS[i % len(TEXTS)]}")
        audio_only.append(f"clips/c{i}.wav")
    for name, lines in (("data.csv", labelled), ("labelled.csv", labelled), ("audio_only.csv", audio_only)):
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_tiny_whisper(TEXTS * 4, root / "policy", d_model=32, layers=1, heads=2, vocab_size=300,
                       max_source_positions=50, max_target_positions=32)  # fmt: skip
    tiny_reward_model(root / "reward")
    return {"csv": root / "data.csv", "policy": root / "policy", "reward": root / "reward", "root": root}
