"""RewardConfig / RewardModel / RewardModelProcessor: published-checkpoint compatibility and correctness."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor, WhisperFeatureExtractor

from rlnf import RewardConfig, RewardModel, RewardModelProcessor, train_tokenizer
from rlnf.assets import resolve_demo_path
from rlnf.cli import main as cli_main
from rlnf.reward_model.checkpoint import CheckpointError
from rlnf.rewards.audio_text_reward import AudioTextReward
from rlnf.testing import sine_clip, tiny_reward_model, write_published_layout

TEXTS = ["i ni ce", "a bɛ so kɔnɔ", "muso ni cɛ bɛ baara la sisan", ""]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return write_published_layout(tmp_path_factory.mktemp("published"))


@pytest.fixture(scope="module")
def loaded(published):
    return RewardModel.from_pretrained(published).eval(), RewardModelProcessor.from_pretrained(published)


def copy_checkpoint(source, target):
    for name in (
        "config.json",
        "model.safetensors",
        "spiece.model",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ):
        shutil.copy(source / name, target / name)


def clips():
    return [
        sine_clip(1.0, 220, seed=0),
        sine_clip(2.3, 330, seed=1),
        sine_clip(0.6, 150, seed=2),
        sine_clip(1.7, 500, seed=3),
    ]


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
    audio_encoder.load_state_dict(
        {k[len("audio_encoder.") :]: v for k, v in weights.items() if k.startswith("audio_encoder.")}
    )
    embedding = nn.Embedding(c["vocab_size"], 128)
    embedding.weight.data = weights["embedding.weight"]
    lstm = nn.LSTM(128, 128, batch_first=True, bidirectional=True)
    lstm.load_state_dict({k[len("lstm.") :]: v for k, v in weights.items() if k.startswith("lstm.")})
    head = nn.Sequential(
        nn.Linear(384, 256), nn.ReLU(), nn.Dropout(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1), nn.Sigmoid()
    )
    head.load_state_dict({k[len("head.") :]: v for k, v in weights.items() if k.startswith("head.")})
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
    alone = torch.stack(  # the scores recomputed pair by pair, independently of the batch forward
        [model(**processor(audios=[a], texts=[t])).logits[0].detach() for a, t in zip(clips(), TEXTS)]
    )
    assert float(out.loss) == pytest.approx(float(((alone - labels) ** 2).mean()), rel=1e-5)


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


def test_empty_text_is_eos_alone(loaded, published):
    _, processor = loaded
    eos = spm.SentencePieceProcessor(model_file=str(published / "spiece.model")).get_piece_size() + 100
    batch = processor.tokenize(["", "i ni ce"])
    assert batch["text"][0].tolist()[:1] == [eos] and batch["text_attention_mask"][0].tolist()[0] == 1
    assert int(batch["text_attention_mask"][0].sum()) == 1


def test_checkpoint_whose_weights_do_not_fit_its_config(published, tmp_path):
    config = json.loads((published / "config.json").read_text())
    config["override"] = {"head_hidden": 64}
    copy_checkpoint(published, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as error:
        RewardModel.from_pretrained(tmp_path)
    message = str(error.value)
    assert message.startswith(f"reward model {str(tmp_path)!r}: the weights do not fit its config.json: tensors whose")
    assert "head.0.weight (checkpoint [256, 384], config [64, 384])" in message


def test_checkpoint_missing_a_tensor_is_refused_not_randomised(published, tmp_path):
    copy_checkpoint(published, tmp_path)
    weights = load_file(str(published / "model.safetensors"))
    del weights["head.5.bias"]
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=re.escape("missing tensors ['head.5.bias'] (they would be random)")):
        RewardModel.from_pretrained(tmp_path)
    model = RewardModel.from_pretrained(tmp_path, strict=False)  # the explicit opt-out still works
    assert model.head[5].bias.shape == (1,)


def test_checkpoint_with_an_unexpected_tensor_is_refused(published, tmp_path):
    copy_checkpoint(published, tmp_path)
    weights = load_file(str(published / "model.safetensors"))
    weights["fusion.norm.weight"] = torch.ones(3)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=re.escape("unexpected tensors ['fusion.norm.weight']")):
        RewardModel.from_pretrained(tmp_path)


def test_folder_without_the_tokenizer_file_names_it(published, tmp_path):
    copy_checkpoint(published, tmp_path)
    (tmp_path / "spiece.model").unlink()
    with pytest.raises(CheckpointError) as error:
        RewardModelProcessor.from_pretrained(tmp_path)
    assert str(error.value).startswith(
        f"reward model folder {str(tmp_path)!r} has no spiece.model (the SentencePiece tokenizer)"
    )
    with pytest.raises(CheckpointError, match="has no spiece.model"):
        AudioTextReward.from_pretrained(tmp_path)


def test_pickle_only_weights_are_refused(published, tmp_path):
    copy_checkpoint(published, tmp_path)
    torch.save(load_file(str(published / "model.safetensors")), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as error:
        RewardModel.from_pretrained(tmp_path)
    assert str(error.value).startswith(
        f"reward model folder {str(tmp_path)!r} holds only pickle weights (pytorch_model.bin); rlnf loads "
        "safetensors only"
    )
    # The conversion the message gives produces a checkpoint that loads.
    command = str(error.value).split("in that folder: ")[1]
    subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=tmp_path, check=True)
    assert isinstance(RewardModel.from_pretrained(tmp_path), RewardModel)


@pytest.mark.parametrize("path", ["./no/such/reward-model", "/no/such/folder", "~/no-such-rm/x/y"])
def test_a_local_path_that_does_not_exist_is_no_such_folder(path):
    for load in (RewardModel.from_pretrained, RewardModelProcessor.from_pretrained, AudioTextReward.from_pretrained):
        with pytest.raises(FileNotFoundError) as error:
            load(path)
        assert str(error.value) == f"reward model {path}: no such model folder"


def test_uncached_hub_id_fails_fast_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as error:
        AudioTextReward.from_pretrained("RobotsMali/no-such-reward-model")
    assert time.perf_counter() - start < 10
    assert str(error.value) == (
        "reward model RobotsMali/no-such-reward-model: HF_HUB_OFFLINE is set and 'RobotsMali/no-such-reward-model' "
        "is not in the Hugging Face cache. Pass a local folder or 'demo', or download it first on a networked "
        "machine (`hf download RobotsMali/no-such-reward-model`)."
    )


def test_unreachable_hub_fails_fast(monkeypatch):
    import rlnf.assets

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(rlnf.assets, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(FileNotFoundError, match=re.escape("the Hugging Face hub cannot be reached and")):
        RewardModel.from_pretrained("RobotsMali/no-such-reward-model")


def test_demo_is_a_reward_model_path_everywhere(loaded):
    demo = Path(resolve_demo_path("demo", "reward_model"))
    direct = RewardModel.from_pretrained(demo).eval()
    for model in (RewardModel.from_pretrained("demo"), AudioTextReward.from_pretrained("demo").model):
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), direct.state_dict().values()))
    assert RewardModelProcessor.from_pretrained("demo").tokenize(["i ni ce"])["text"].tolist() == (
        RewardModelProcessor.from_pretrained(demo).tokenize(["i ni ce"])["text"].tolist()
    )


def test_ids_beyond_the_embedding_are_rejected(loaded):
    model, _ = loaded
    with pytest.raises(ValueError, match="tokenizer does not match"):
        model.encode_text(torch.tensor([[5000]]), torch.ones(1, 1, dtype=torch.long))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("n_mel", 0, "RewardConfig.n_mel must be a positive int, got 0"),
        ("lstm_hidden", 2.5, "RewardConfig.lstm_hidden must be a positive int, got 2.5"),
        ("dropout", 1.5, "RewardConfig.dropout must be in [0, 1), got 1.5"),
        ("fusion_type", "concat", "RewardConfig.fusion_type must be one of "),
        ("padding", 1, "RewardConfig: the audio encoder keeps one output frame per input frame"),
    ],
)
def test_invalid_config_values(field, value, message):
    with pytest.raises(ValueError) as error:
        RewardConfig(**{field: value})
    assert str(error.value).startswith(message)


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


def test_cli_score_accepts_demo(tmp_path, capsys):
    import soundfile as sf

    path = tmp_path / "clip.wav"
    sf.write(path, clips()[0], 16000, subtype="FLOAT")
    assert cli_main(["score", str(path), "i ni ce", "--model", "demo"]) == 0
    printed = float(capsys.readouterr().out.strip())
    model, processor = RewardModel.from_pretrained("demo").eval(), RewardModelProcessor.from_pretrained("demo")
    with torch.no_grad():
        expected = float(model(**processor(audios=[clips()[0]], texts=["i ni ce"])).logits[0])
    assert printed == pytest.approx(expected, abs=1e-4)


def test_cli_score_with_an_uncached_hub_id_offline_fails_fast(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert cli_main(["score", str(tmp_path / "clip.wav"), "x", "--model", "RobotsMali/no-such-model"]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.startswith("rlnf score: error: reward model RobotsMali/no-such-model: HF_HUB_OFFLINE is set and")
    assert "'demo'" in err


# ---- extreme amplitudes ------------------------------------------------------------------------------------


def test_loud_clips_score_like_the_same_clip_at_normal_level(loaded):
    model, processor = loaded
    clip = clips()[1]
    loud32 = clip * np.float32(1e20)  # finite in float32, but its variance is not
    with torch.no_grad():
        scores = [float(model(**processor(audios=[a], texts=[TEXTS[1]])).logits[0]) for a in (clip, loud32, clip * 1e3)]
    assert scores[1] == pytest.approx(scores[0], abs=1e-4) and scores[2] == pytest.approx(scores[0], abs=1e-4)
    extractor = processor.feature_extractor
    loud = (clip * np.float32(1e19)).astype(np.float32)  # straight into the normalisation, past the loader
    np.testing.assert_allclose(extractor.log_mel(loud), extractor.log_mel(clip), atol=1e-3)


# ---- text normalisation is a saved processor setting -----------------------------------------------------

RAW_TEXTS = [
    "su kini taama nyɔgɔn kini",  # legacy spelling ny (the original never rewrote it to ɲ)
    "Ngoni bè Bamako.",  # capital, legacy è, punctuation
    "A ye wari 25 di, k'a san!",  # digits, apostrophe, punctuation
    "ƐƆ Ɲ Ŋ?",  # capital Bambara letters
]


def test_published_layout_tokenises_raw_text_exactly_as_the_original(published, loaded):
    _, processor = loaded
    assert processor.text_normalizer is None  # the published folder has no such setting
    sp = spm.SentencePieceProcessor(model_file=str(published / "spiece.model"))
    eos = sp.get_piece_size() + 100
    batch = processor.tokenize(RAW_TEXTS)
    for row, text in enumerate(RAW_TEXTS):
        n = int(batch["text_attention_mask"][row].sum())
        assert batch["text"][row, :n].tolist() == sp.encode(text) + [eos], text


def test_published_layout_scores_raw_text_as_the_original(published, loaded):
    model, processor = loaded
    waveform = clips()[1]
    for text in RAW_TEXTS:
        with torch.no_grad():
            ours = float(model(**processor(audios=[waveform], texts=[text])).logits[0])
        assert ours == pytest.approx(original_score(published, waveform, text), abs=1e-4)


def test_a_saved_normaliser_is_reloaded_and_applied(tmp_path, published, loaded):
    from rlnf.text import bambara_normalize

    _, processor = loaded
    normalising = RewardModelProcessor(processor.feature_extractor, processor.tokenizer, text_normalizer="bambara")
    normalising.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["text_normalizer"] == "bambara"
    again = RewardModelProcessor.from_pretrained(tmp_path)
    assert again.text_normalizer == "bambara"
    sp = spm.SentencePieceProcessor(model_file=str(published / "spiece.model"))
    batch = again.tokenize(RAW_TEXTS)
    for row, text in enumerate(RAW_TEXTS):
        n = int(batch["text_attention_mask"][row].sum())
        assert batch["text"][row, :n].tolist() == sp.encode(bambara_normalize(text)) + [sp.get_piece_size() + 100]
    with pytest.raises(ValueError, match="unknown normalizer 'klingon'"):
        RewardModelProcessor(processor.feature_extractor, processor.tokenizer, text_normalizer="klingon")


def test_trained_tokenizers_and_the_demo_save_the_normaliser_they_were_trained_with(tmp_path):
    from rlnf.testing import BAMBARA_SAMPLE

    assert train_tokenizer(BAMBARA_SAMPLE * 3, tmp_path, vocab_size=60).text_normalizer == "bambara"
    assert RewardModelProcessor.from_pretrained("demo").text_normalizer == "bambara"


def test_a_call_without_texts_or_audio_is_refused(loaded):
    _, processor = loaded
    with pytest.raises(ValueError, match=r"needs both audios and texts \(got no texts\).*processor.extract_audio"):
        processor(audios=clips()[:1])
    with pytest.raises(ValueError, match=r"got no audios"):
        processor(texts=["i ni ce"])
