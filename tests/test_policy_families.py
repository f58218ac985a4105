"""Which family takes which model (by class, never by duck typing), and `rlnf transcribe` for every family."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import synthetic_clip
from transformers import AutoProcessor, ParakeetForTDT, ParakeetTDTConfig

from rlnf.assets import resolve_demo_path
from rlnf.cli import main
from rlnf.policies.base import load_policy_model, policy_families, policy_for, transcribe
from rlnf.policies.ctc import CTCPolicy
from rlnf.policies.transducer import TDTPolicy
from rlnf.policies.whisper import WhisperPolicy


def tiny_tdt() -> ParakeetForTDT:
    encoder = {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "intermediate_size": 32,
        "num_mel_bins": 16,
        "subsampling_conv_channels": 4,
        "subsampling_factor": 8,
        "conv_kernel_size": 9,
    }
    config = ParakeetTDTConfig(
        vocab_size=12, blank_token_id=11, pad_token_id=1, decoder_hidden_size=16, encoder_config=encoder
    )
    torch.manual_seed(0)
    return ParakeetForTDT(config)


def test_a_transducer_is_taken_by_the_tdt_family_only():
    model = tiny_tdt()
    assert model.config.is_encoder_decoder and hasattr(model, "get_encoder")  # what fooled the duck typing
    assert [f for f in policy_families() if f.accepts(model)] == [TDTPolicy]


def test_a_model_no_family_takes_is_refused_with_the_known_families():
    encoder = tiny_tdt().encoder  # a ParakeetEncoder: audio in, no head
    with pytest.raises(TypeError, match=r"no rlnf policy family handles ParakeetEncoder\. Known families: .*tdt"):
        policy_for(encoder, processor=None)


@pytest.mark.parametrize(
    ("name", "family"), [("demo", WhisperPolicy), ("demo-ctc", CTCPolicy), ("demo-tdt", TDTPolicy)]
)
def test_each_demo_policy_is_taken_by_its_own_family_only(name, family):
    model = load_policy_model(resolve_demo_path(name, "policy"))
    assert [f for f in policy_families() if f.accepts(model)] == [family]


@pytest.mark.parametrize("name", ["demo", "demo-ctc", "demo-tdt"])
def test_rlnf_transcribe_works_for_every_family(name, tmp_path, capsys):
    files = []
    for i, seconds in enumerate((1.1, 1.6)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, synthetic_clip(seconds, 180.0 + 90 * i, seed=i), 16000, subtype="FLOAT")
        files.append(str(path))
    assert main(["transcribe", *files, "--model", name, "--device", "cpu", "--max_new_tokens", "20"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    path = resolve_demo_path(name, "policy")
    model = load_policy_model(path).eval()
    waveforms = [synthetic_clip(s, 180.0 + 90 * i, seed=i) for i, s in enumerate((1.1, 1.6))]
    expected = transcribe(model, AutoProcessor.from_pretrained(path), [np.asarray(w) for w in waveforms],
                          max_new_tokens=20)  # fmt: skip
    assert lines == [f"{f}\t{t}" for f, t in zip(files, expected, strict=True)]


def test_a_new_family_is_one_class_registered_from_its_own_module():
    """The seam takes a third family without edits: registering is all it takes for policy_for to pick it."""
    from rlnf.policies import base

    class ToyModel(torch.nn.Module):
        pass

    @base.register_policy
    class ToyPolicy(base.SpeechPolicy):
        family = "toy"
        description = "ToyModel (tests only)"

        def __init__(self, model, processor, options):
            self.options = options

        @classmethod
        def accepts(cls, model):
            return isinstance(model, ToyModel)

        clip_inputs = configure_sampling = sample = chunk_scorer = greedy_decoder = None

    try:
        chosen = policy_for(ToyModel(), processor=None)
        assert isinstance(chosen, ToyPolicy) and chosen.options.sampling_rate == 16000
        assert not ToyPolicy.accepts(tiny_tdt())
        with pytest.raises(TypeError, match=r"Known families: .*toy: ToyModel \(tests only\)"):
            policy_for(torch.nn.Linear(1, 1), processor=None)
    finally:
        base._FAMILIES.remove(ToyPolicy)


def _tiny(name):
    from rlnf.policies.tiny_ctc import tiny_parakeet_ctc, tiny_wav2vec2_ctc
    from rlnf.policies.tiny_whisper import build_tiny_whisper

    if name == "whisper":
        texts = ["i ni ce", "an bɛ taa sugu la", "sanji bɛ na bi", "den fila bɛ yen"] * 3
        return build_tiny_whisper(texts, d_model=32, layers=1, heads=2, max_source_positions=100,
                                  max_target_positions=32, vocab_size=120)  # fmt: skip
    return {"wav2vec2": tiny_wav2vec2_ctc, "parakeet": tiny_parakeet_ctc}[name]()


@pytest.mark.parametrize("name", ["whisper", "wav2vec2", "parakeet"])
def test_lora_without_targets_gets_the_familys_attention_projections(name, tmp_path):
    """`--use_peft` alone: peft would refuse a LoRA config without target_modules."""
    from datasets import Dataset
    from peft import LoraConfig

    from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer

    model, processor = _tiny(name)
    rows = [{"audio": {"array": synthetic_clip(1.0, 200.0), "sampling_rate": 16000}, "text": "i ni ce"}] * 2
    args = ASRGRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2,
                         max_completion_length=8, report_to=[], use_cpu=True)  # fmt: skip
    trainer = ASRGRPOTrainer(model, [lambda completions, **kw: [0.0] * len(completions)], args=args,
                             train_dataset=Dataset.from_list(rows), processing_class=processor,
                             peft_config=LoraConfig(r=4, lora_alpha=8))  # fmt: skip
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    projections = {re.search(r"\.(\w+_proj)\.lora_", n).group(1) for n in trainable}
    assert projections <= {"q_proj", "k_proj", "v_proj", "out_proj", "o_proj"} and {"q_proj", "v_proj"} <= projections
    assert not any("proj_out" in n for n in trainable)  # Whisper's tied output projection is never a target
