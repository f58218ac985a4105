"""RewardConfig / RewardModel / RewardModelProcessor: published-checkpoint compatibility and correctness."""

import json

import numpy as np
import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor, WhisperFeatureExtractor

from rlnf import RewardConfig, RewardModel, RewardModelProcessor
from rlnf.cli import main as cli_main
from rlnf.testing import sine_clip, tiny_reward_model, write_published_layout

TEXTS = ["i ni ce", "a bɛ so kɔnɔ", "muso ni cɛ bɛ baara la sisan", ""]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return write_published_layout(tmp_path_factory.mktemp("published"))


@pytest.fixture(scope="module")
def loaded(published):
    return RewardModel.from_pretrained(published).eval(), RewardModelProcessor.from_pretrained(published)


def clips():
    return [sine_clip(1.0, 220, seed=0), sine_clip(2.3, 330, seed=1), sine_clip(0.6, 150, seed=2), sine_clip(1.7, 500, seed=3)]


def original_score(folder, waveform: np.ndarray, text: str) -> float:
    """An independent re-implementation of the original computation for ONE unpadded pair."""
    saved = json.loads((folder / "config.json").read_text())
    c = {**saved["pretrained_config"], **saved["override"]}
    features = WhisperFeatureExtractor(
        feature_size=c["n_mel"], sampling_rate=c["sample_rate"], hop_length=c["hop_length"], n_fft=c["n_fft"]
    )([waveform], sampling_rate=16000, padding="longest", do_normalize=True, return_tensors="pt")["input_features"]
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    ids = torch.tensor([sp.encode(text) + [sp.get_piece_size() + 100]])
    weights = load_file(str(folder / "model.safetensors"))
    layers = []
    for i in range(c["audio_conv_layers"]):
        layers += [nn.Conv1d(c["n_mel"] if i == 0 else 128, 128, 5, 1, 2), nn.BatchNorm1d(128), nn.ReLU()]
    audio_encoder = nn.Sequential(*layers)
    audio_encoder.load_state_dict({k[len("audio_encoder."):]: v for k, v in weights.items() if k.startswith("audio_encoder.")})
    embedding = nn.Embedding(c["vocab_size"], 128)
    embedding.weight.data = weights["embedding.weight"]
    lstm = nn.LSTM(128, 128, batch_first=True, bidirectional=True)
    lstm.load_state_dict({k[len("lstm."):]: v for k, v in weights.items() if k.startswith("lstm.")})
    head = nn.Sequential(nn.Linear(384, 256), nn.ReLU(), nn.Dropout(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1), nn.Sigmoid())
    head.load_state_dict({k[len("head."):]: v for k, v in weights.items() if k.startswith("head.")})
    for module in (audio_encoder, lstm, head):
        module.eval()
    with torch.no_grad():
        audio = audio_encoder(features).mean(-1)
        text_states, _ = lstm(embedding(ids))
        return float(head(torch.cat([audio, text_states.mean(1)], -1)))


def test_published_layout_loads_with_no_missing_or_unexpected_keys(published):
    model, info = RewardModel.from_pretrained(published, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sum(p.numel() for p in model.parameters()) == 907_137  # the card's "908k parameters"


def test_nested_config_saved_values_count_and_override_wins(published):
    saved = json.loads((published / "config.json").read_text())
    saved["pretrained_config"]["head_hidden"] = 64
    saved["override"] = {"dropout": 0.25, "lstm_hidden": 32}
    config = RewardConfig.from_dict(saved)
    assert (config.head_hidden, config.dropout, config.lstm_hidden, config.n_mel) == (64, 0.25, 32, 80)
    assert RewardConfig().dropout == 0.3 and RewardConfig().pad_token_id == 1


def test_single_unpadded_pair_equals_the_original_computation(published, loaded):
    model, processor = loaded
    for waveform, text in zip(clips(), TEXTS):
        with torch.no_grad():
            ours = float(model(**processor(audios=[waveform], texts=[text])).logits[0])
        assert ours == pytest.approx(original_score(published, waveform, text), abs=1e-5)


def test_tokenizer_ids_equal_sentencepiece_plus_eos(published, loaded):
    _, processor = loaded
    sp = spm.SentencePieceProcessor(model_file=str(published / "spiece.model"))
    eos = sp.get_piece_size() + 100
    assert processor.tokenizer.eos_token_id == eos and processor.tokenizer.pad_token_id == eos + 1
    batch = processor.tokenize(TEXTS)
    for row, text in enumerate(TEXTS):
        n = int(batch["text_attention_mask"][row].sum())
        assert batch["text"][row, :n].tolist() == sp.encode(text) + [eos]
        assert (batch["text"][row, n:] == eos + 1).all()
        assert processor.tokenizer(text)["input_ids"] == sp.encode(text) + [eos]


def test_scores_are_batch_invariant(loaded):
    model, processor = loaded
    audios = clips()
    with torch.no_grad():
        batched = model(**processor(audios=audios, texts=TEXTS)).logits
        alone = torch.stack([model(**processor(audios=[a], texts=[t])).logits[0] for a, t in zip(audios, TEXTS)])
        reversed_ = model(**processor(audios=audios[::-1], texts=TEXTS[::-1])).logits.flip(0)
    assert batched.shape == (4,) and ((batched >= 0) & (batched <= 1)).all()
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(reversed_, alone, atol=1e-5, rtol=0)


def test_encode_once_score_many_equals_forward(loaded):
    model, processor = loaded
    audio = processor.extract_audio([clips()[1]])
    with torch.no_grad():
        audio_enc = model.encode_audio(**audio)
        text_enc = model.encode_text(**processor.tokenize(TEXTS))
        reused = model.score(audio_enc.select(torch.zeros(len(TEXTS), dtype=torch.long)), text_enc)
        direct = model(**processor(audios=[clips()[1]] * len(TEXTS), texts=TEXTS)).logits
    torch.testing.assert_close(reused, direct, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fusion_type", ["late", "cross_attention"])
def test_save_load_round_trip_gives_identical_scores(tmp_path, fusion_type):
    model, processor = tiny_reward_model(tmp_path / "a", fusion_type=fusion_type)
    model.save_pretrained(tmp_path / "b")
    processor.save_pretrained(tmp_path / "b")
    again = RewardModel.from_pretrained(tmp_path / "b").eval()
    again_processor = RewardModelProcessor.from_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "model.safetensors").exists()
    with torch.no_grad():
        first = model(**processor(audios=clips(), texts=TEXTS)).logits
        second = again(**again_processor(audios=clips(), texts=TEXTS)).logits
    assert torch.equal(first, second)
    assert again.config.fusion_type == fusion_type


def test_cross_attention_fusion_is_batch_invariant_too(tmp_path):
    model, processor = tiny_reward_model(tmp_path, fusion_type="cross_attention")
    with torch.no_grad():
        batched = model(**processor(audios=clips(), texts=TEXTS)).logits
        alone = torch.stack([model(**processor(audios=[a], texts=[t])).logits[0] for a, t in zip(clips(), TEXTS)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_masked_batchnorm_training_statistics_ignore_padding(tmp_path):
    model, processor = tiny_reward_model(tmp_path)
    model.train()
    audio = processor.extract_audio([clips()[0]])
    padded = processor.extract_audio([clips()[0], clips()[1]])
    bn = model.audio_encoder[1]
    bn.reset_running_stats()
    model.encode_audio(**audio)
    alone_mean = bn.running_mean.clone()
    bn.reset_running_stats()
    both = {k: v[:1] for k, v in padded.items()}  # clip 0 padded to clip 1's length
    model.encode_audio(**both)
    torch.testing.assert_close(bn.running_mean, alone_mean, atol=1e-6, rtol=0)


def test_loss_is_mse_when_labels_given(loaded):
    model, processor = loaded
    labels = torch.tensor([0.1, 0.9, 0.5, 0.0])
    with torch.no_grad():
        out = model(**processor(audios=clips(), texts=TEXTS), labels=labels)
    assert float(out.loss) == pytest.approx(float(((out.logits - labels) ** 2).mean()), rel=1e-6)


def test_auto_classes_resolve_reward_model(published):
    assert type(AutoConfig.from_pretrained(published)) is RewardConfig
    assert type(AutoModel.from_pretrained(published)) is RewardModel
    assert type(AutoFeatureExtractor.from_pretrained(published)).__name__ == "RewardFeatureExtractor"
    assert type(AutoProcessor.from_pretrained(published)) is RewardModelProcessor


def test_processor_round_trip_keeps_features_and_ids(tmp_path, loaded):
    _, processor = loaded
    processor.save_pretrained(tmp_path)
    again = RewardModelProcessor.from_pretrained(tmp_path)
    first, second = processor(audios=clips(), texts=TEXTS), again(audios=clips(), texts=TEXTS)
    for key in first:
        assert torch.equal(first[key], second[key])


def test_frame_mask_comes_from_true_lengths(loaded):
    _, processor = loaded
    audios = clips()
    batch = processor.extract_audio(audios)
    assert batch["audio_attention_mask"].sum(1).tolist() == [len(a) // 256 for a in audios]


# ---- bad input -------------------------------------------------------------------------------------------


def test_bad_pairs_and_texts(loaded):
    _, processor = loaded
    with pytest.raises(ValueError, match="2 audios but 3 texts"):
        processor(audios=clips()[:2], texts=TEXTS[:3])
    with pytest.raises(ValueError, match="text item 1: expected a string"):
        processor(audios=clips()[:2], texts=["ok", 5])
    with pytest.raises(ValueError, match="audio item 1: .*too short"):
        processor(audios=[clips()[0], np.zeros(300, np.float32)], texts=["a", "b"])
    with pytest.raises(ValueError, match="audio item 0: .*NaN"):
        processor(audios=[np.full(4000, np.nan, np.float32)], texts=["a"])


def test_long_audio_is_truncated_with_a_warning_or_rejected(loaded, caplog):
    _, processor = loaded
    long_clip = sine_clip(31.0)
    with caplog.at_level("WARNING"):
        batch = processor.extract_audio([long_clip])
    assert batch["audio"].shape[-1] == 30 * 16000 // 256 and "truncated" in caplog.text
    processor.feature_extractor.truncate_long_audio = False
    try:
        with pytest.raises(ValueError, match="audio item 0: 31.0 s is longer than 30.0 s"):
            processor.extract_audio([long_clip])
    finally:
        processor.feature_extractor.truncate_long_audio = True


def test_empty_text_gets_a_finite_score(loaded):
    model, processor = loaded
    with torch.no_grad():
        score = model(**processor(audios=[clips()[0]], texts=[""])).logits
    assert torch.isfinite(score).all()


def test_checkpoint_whose_weights_do_not_fit_its_config(published, tmp_path):
    config = json.loads((published / "config.json").read_text())
    config["override"] = {"lstm_hidden": 64}
    for name in ("model.safetensors", "spiece.model", "tokenizer_config.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((published / name).read_bytes())
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="(?i)size mismatch|mismatch"):
        RewardModel.from_pretrained(tmp_path)


def test_ids_beyond_the_embedding_are_rejected(loaded):
    model, _ = loaded
    with pytest.raises(ValueError, match="tokenizer does not match"):
        model.encode_text(torch.tensor([[5000]]), torch.ones(1, 1, dtype=torch.long))


@pytest.mark.parametrize("field, value", [("n_mel", 0), ("dropout", 1.5), ("fusion_type", "concat"), ("padding", 1)])
def test_invalid_config_values(field, value):
    with pytest.raises(ValueError, match=field if field != "padding" else "padding"):
        RewardConfig(**{field: value})


# ---- CLI ---------------------------------------------------------------------------------------------------


def test_cli_score_prints_the_model_score(published, loaded, tmp_path, capsys):
    import soundfile as sf

    model, processor = loaded
    path = tmp_path / "clip.wav"
    sf.write(path, clips()[0], 16000, subtype="FLOAT")
    assert cli_main(["score", str(path), TEXTS[1], "--model", str(published)]) == 0
    printed = float(capsys.readouterr().out.strip())
    with torch.no_grad():
        expected = float(model(**processor(audios=[str(path)], texts=[TEXTS[1]])).logits[0])
    assert printed == pytest.approx(expected, abs=1e-4)
    assert cli_main(["score", str(tmp_path / "missing.wav"), "x", "--model", str(published)]) == 2
    assert "not found" in capsys.readouterr().err
