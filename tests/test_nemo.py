"""The NeMo bridge (`rlnf.nemo`) on fake ``.nemo`` archives built here from rlnf's tiny Parakeet models.

No NeMo and no network: each archive is a tar in NeMo's layout (``model_config.yaml`` with NeMo's section and key
names, ``model_weights.ckpt`` saved by ``torch.save`` with NeMo's weight names, a SentencePiece ``*.model``).
"""

from __future__ import annotations

import io
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sentencepiece import sentencepiece_model_pb2 as spm_pb2
from transformers import AutoProcessor, ParakeetForCTC, ParakeetForTDT

from rlnf import nemo
from rlnf.policies.base import load_policy_model, policy_for
from rlnf.policies.tiny_ctc import BAMBARA_LETTERS, tiny_parakeet_ctc
from rlnf.policies.transducer import greedy_generation_config, greedy_labels, tiny_parakeet_tdt

PIECES = ["<unk>", "<pad>", "▁", *BAMBARA_LETTERS[:30]]  # 33 labels: + blank = the tiny models' 34 outputs
DURATIONS = [0, 1, 2, 3, 4]
TOKENIZER_MEMBER = "./3f2a_tokenizer.model"

# NeMo names written by hand (transformers' converter and NeMo's modules), not by the inverse map under test
EXPECTED_NEMO_NAMES = {
    "encoder.subsampling.layers.0.weight": "encoder.pre_encode.conv.0.weight",
    "encoder.subsampling.layers.6.bias": "encoder.pre_encode.conv.6.bias",
    "encoder.subsampling.linear.bias": "encoder.pre_encode.out.bias",
    "encoder.layers.1.self_attn.q_proj.weight": "encoder.layers.1.self_attn.linear_q.weight",
    "encoder.layers.1.self_attn.k_proj.bias": "encoder.layers.1.self_attn.linear_k.bias",
    "encoder.layers.1.self_attn.v_proj.weight": "encoder.layers.1.self_attn.linear_v.weight",
    "encoder.layers.1.self_attn.o_proj.bias": "encoder.layers.1.self_attn.linear_out.bias",
    "encoder.layers.1.self_attn.relative_k_proj.weight": "encoder.layers.1.self_attn.linear_pos.weight",
    "encoder.layers.0.self_attn.bias_u": "encoder.layers.0.self_attn.pos_bias_u",
    "encoder.layers.0.self_attn.bias_v": "encoder.layers.0.self_attn.pos_bias_v",
    "encoder.layers.0.conv.norm.running_var": "encoder.layers.0.conv.batch_norm.running_var",
    "encoder.layers.0.conv.depthwise_conv.weight": "encoder.layers.0.conv.depthwise_conv.weight",
    "encoder.layers.0.feed_forward2.linear1.weight": "encoder.layers.0.feed_forward2.linear1.weight",
    "encoder.layers.1.norm_self_att.bias": "encoder.layers.1.norm_self_att.bias",
    "decoder.embedding.weight": "decoder.prediction.embed.weight",
    "decoder.lstm.weight_hh_l0": "decoder.prediction.dec_rnn.lstm.weight_hh_l0",
    "encoder_projector.weight": "joint.enc.weight",
    "decoder.decoder_projector.bias": "joint.pred.bias",
    "joint.head.weight": "joint.joint_net.2.weight",
}


def test_key_maps_name_nemo_weights_as_nemo_does():
    for hf, expected in EXPECTED_NEMO_NAMES.items():
        assert nemo.hf_to_nemo_key(hf) == expected
        part = "encoder" if hf.startswith("encoder.") else "transducer"
        assert nemo.nemo_to_hf_key(expected, transducer=True) == (part, hf)
    assert nemo.hf_to_nemo_key("joint.head.bias", joint_head=1) == "joint.joint_net.1.bias"
    assert nemo.hf_to_nemo_key("ctc_head.weight") == "decoder.decoder_layers.0.weight"
    assert nemo.hf_to_nemo_key("ctc_head.weight", hybrid=True) == "ctc_decoder.decoder_layers.0.weight"
    assert nemo.nemo_to_hf_key("ctc_decoder.decoder_layers.0.bias", transducer=True) == ("ctc", "ctc_head.bias")
    assert nemo.nemo_to_hf_key("decoder.decoder_layers.0.bias", transducer=False) == ("ctc", "ctc_head.bias")
    assert nemo.nemo_to_hf_key("preprocessor.featurizer.fb", transducer=True) is None
    with pytest.raises(ValueError, match="joint.mystery.weight"):
        nemo.nemo_to_hf_key("joint.mystery.weight", transducer=True)


# ------------------------------------------------------------------------------------------------------------
# Fake archives
# ------------------------------------------------------------------------------------------------------------


def spm_bytes(pieces: list[str]) -> bytes:
    """A SentencePiece model whose pieces are ``pieces`` (ids in order), as NeMo's tokenizer scripts make them."""
    proto = spm_pb2.ModelProto()
    spec = proto.trainer_spec
    spec.model_type, spec.vocab_size = spm_pb2.TrainerSpec.BPE, len(pieces)
    spec.unk_id, spec.bos_id, spec.eos_id = 0, -1, -1
    spec.pad_id = pieces.index("<pad>") if "<pad>" in pieces else -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    proto.normalizer_spec.escape_whitespaces = True
    kinds = {"<unk>": spm_pb2.ModelProto.SentencePiece.UNKNOWN, "<pad>": spm_pb2.ModelProto.SentencePiece.CONTROL}
    for i, piece in enumerate(pieces):
        entry = proto.pieces.add()
        entry.piece, entry.type = piece, kinds.get(piece, spm_pb2.ModelProto.SentencePiece.NORMAL)
        entry.score = 0.0 if piece in kinds else -1.0 - i
    return proto.SerializeToString()


def nemo_config(kind: str, labels: list[str], durations: list[int] = DURATIONS) -> dict:
    """``model_config.yaml`` as NeMo saves an EncDecHybridRNNTCTCBPEModel / EncDecRNNTBPEModel / EncDecCTCModelBPE
    of the tiny models' sizes (resolved, with one interpolation left as OmegaConf may write it)."""
    targets = {
        "hybrid": "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel",
        "tdt": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
        "ctc": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    }
    config = {
        "target": targets[kind],
        "nemo_version": "2.2.0",
        "sample_rate": 16000,
        "tokenizer": {
            "dir": "/data/tokenizers/bambara_spe_bpe_v33",
            "type": "bpe",
            "model_path": "nemo:3f2a_tokenizer.model",
            "vocab_path": "nemo:3f2a_vocab.txt",
            "spe_tokenizer_vocab": "nemo:3f2a_tokenizer.vocab",
        },
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": "${model.sample_rate}",
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 16,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 1.0e-05,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {"_target_": "nemo.collections.asr.modules.SpectrogramAugmentation", "freq_masks": 2},
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 16,
            "feat_out": -1,
            "n_layers": 2,
            "d_model": 32,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": 8,
            "causal_downsampling": False,
            "reduction": None,
            "reduction_position": None,
            "reduction_factor": 1,
            "ff_expansion_factor": 2,
            "self_attention_model": "rel_pos",
            "n_heads": 2,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
            "stochastic_depth_drop_prob": 0.0,
            "stochastic_depth_mode": "linear",
            "stochastic_depth_start_layer": 1,
        },
        "optim": {"name": "adamw", "lr": 5.0},
    }
    if kind == "ctc":
        config["decoder"] = {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 32,
            "num_classes": len(labels),
            "vocabulary": labels,
        }
        return config
    config |= {
        "labels": labels,
        "model_defaults": {"enc_hidden": 32, "pred_hidden": 32, "joint_hidden": 32, "tdt_durations": durations},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "vocab_size": len(labels),
            "prednet": {"pred_hidden": 32, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.2},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {"joint_hidden": 32, "activation": "relu", "dropout": 0.2, "encoder_hidden": 32},
            "num_extra_outputs": len(durations),
            "num_classes": len(labels),
            "vocabulary": labels,
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt",
            "durations": durations,
            "greedy": {"max_symbols": 3},
        },
        "loss": {"loss_name": "tdt", "tdt_kwargs": {"durations": durations, "sigma": 0.02, "omega": 0.1}},
    }
    if kind == "hybrid":
        config["aux_ctc"] = {
            "ctc_loss_weight": 0.3,
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": 32,
                "num_classes": len(labels),
                "vocabulary": labels,
            },
            "decoding": {"strategy": "greedy"},
        }
    return config


def _randomise_statistics(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and attention biases (zeros at init would hide a swapped key)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_mean", "bias_u", "bias_v")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(1234)


def write_archive(path: Path, config: dict, state: dict[str, torch.Tensor], pieces: list[str]) -> Path:
    members = {
        "./model_config.yaml": yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode("utf-8"),
        "./model_weights.ckpt": (lambda b: (torch.save(state, b), b.getvalue())[1])(io.BytesIO()),
        TOKENIZER_MEMBER: spm_bytes(pieces),
        "./3f2a_tokenizer.vocab": "\n".join(f"{p}\t0" for p in pieces).encode("utf-8"),
        "./3f2a_vocab.txt": "\n".join(pieces).encode("utf-8"),
    }
    with tarfile.open(path, "w") as tar:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)  # NeMo's archives start with the "." folder
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def fake_nemo(folder: Path, kind: str, *, pieces: list[str] = PIECES, durations: list[int] = DURATIONS, extra=None):
    """``(archive path, originals)``: ``originals`` maps "tdt" / "ctc" to the tiny models the archive holds (for a
    hybrid, the CTC model's encoder is the TDT model's: one encoder)."""
    originals = {}
    state = {
        "preprocessor.featurizer.window": torch.hann_window(400),
        "preprocessor.featurizer.fb": torch.rand(1, 16, 257),
    }
    if kind != "ctc":
        tdt, _ = tiny_parakeet_tdt(durations=durations, seed=1)
        _randomise_statistics(tdt, 1)
        originals["tdt"] = tdt.eval()
        state |= {nemo.hf_to_nemo_key(k): v.clone() for k, v in tdt.state_dict().items()}
    if kind != "tdt":
        ctc, _ = tiny_parakeet_ctc(seed=2)
        _randomise_statistics(ctc, 2)
        if kind == "hybrid":
            ctc.encoder.load_state_dict(originals["tdt"].encoder.state_dict())
        originals["ctc"] = ctc.eval()
        hybrid = kind == "hybrid"
        state |= {
            nemo.hf_to_nemo_key(k, hybrid=hybrid): v.clone()
            for k, v in ctc.state_dict().items()
            if not hybrid or k.startswith("ctc_head.")
        }
    state |= extra or {}
    path = write_archive(folder / f"fake-{kind}.nemo", nemo_config(kind, list(pieces), durations), state, pieces)
    return path, originals


def _inputs(processor, seconds: float = 1.3):
    audio = np.random.default_rng(0).standard_normal(int(16000 * seconds)).astype(np.float32) * 0.1
    return processor.feature_extractor(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="pt")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


# ------------------------------------------------------------------------------------------------------------
# Conversion and round trip
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hybrid", "tdt", "ctc"])
def test_convert_matches_originals_and_round_trips_bitwise(tmp_path, kind):
    path, originals = fake_nemo(tmp_path, kind)
    written = nemo.convert_nemo(path, tmp_path / "hf")
    assert set(written) == set(originals)
    for part, folder in written.items():
        assert not list(folder.glob("*.bin")) and (folder / "model.safetensors").is_file()
        model = load_policy_model(str(folder)).eval()  # picked by the family that accepts its config
        processor = AutoProcessor.from_pretrained(folder)
        policy = policy_for(model, processor)
        assert policy.family == part
        assert isinstance(model, ParakeetForTDT if part == "tdt" else ParakeetForCTC)
        _, tiny_processor = tiny_parakeet_tdt() if part == "tdt" else tiny_parakeet_ctc()
        inputs = _inputs(processor)
        reference_inputs = _inputs(tiny_processor)
        assert torch.equal(inputs["input_features"], reference_inputs["input_features"])  # same feature settings
        original = originals[part]
        with torch.no_grad():
            if part == "tdt":
                blank = model.config.blank_token_id
                assert blank == 33 and model.config.pad_token_id == PIECES.index("<pad>")
                assert list(model.config.durations) == DURATIONS and model.config.max_symbols_per_step == 3
                assert model.generation_config.decoder_start_token_id == blank
                assert model.generation_config.suppress_tokens == list(range(34, 39))
                assert processor.tokenizer.convert_ids_to_tokens(blank) == "<blank>"
                new, old = model.get_audio_features(**inputs), original.get_audio_features(**inputs)
                assert _max_diff(new.last_hidden_state, old.last_hidden_state) < 1e-5
                assert _max_diff(new.pooler_output, old.pooler_output) < 1e-5
                ids = torch.tensor([[blank, 5, 7, 2, 9]])
                new_logits = model(**inputs, decoder_input_ids=ids).logits
                old_logits = original(**inputs, decoder_input_ids=ids).logits
                assert new_logits.shape[-1] == 34 + len(DURATIONS)
                assert _max_diff(new_logits, old_logits) < 1e-5
            else:
                assert model.config.pad_token_id == 33 == processor.tokenizer.pad_token_id
                new_encoder = model.encoder(**inputs).last_hidden_state
                assert _max_diff(new_encoder, original.encoder(**inputs).last_hidden_state) < 1e-5
                assert _max_diff(model(**inputs).logits, original(**inputs).logits) < 1e-5

    # .nemo -> rlnf -> .nemo: every tensor bitwise, every other member byte for byte
    main = written["tdt" if kind != "ctc" else "ctc"]
    exported = tmp_path / "out.nemo"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # unchanged encoder: no warning about kept heads
        ctc_dir = written["ctc"] if kind == "hybrid" else None
        nemo.export_nemo(main, path, exported, ctc_model_dir=ctc_dir)
    _assert_same_archive(path, exported)
    if kind == "hybrid":  # the CTC head kept from the original; or the CTC folder, the transducer kept
        nemo.export_nemo(main, path, tmp_path / "out2.nemo")
        _assert_same_archive(path, tmp_path / "out2.nemo")
        nemo.export_nemo(written["ctc"], path, tmp_path / "out3.nemo")
        _assert_same_archive(path, tmp_path / "out3.nemo")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else m.type for m in tar.getmembers()}


def _weights(data: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(data), weights_only=True)


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    flat = [t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for t in (a, b)]
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(*flat)


def _assert_same_archive(original: Path, exported: Path) -> None:
    old, new = _members(original), _members(exported)
    assert list(old) == list(new)
    for name in old:
        if name.endswith("model_weights.ckpt"):
            a, b = _weights(old[name]), _weights(new[name])
            assert list(a) == list(b)
            for key in a:
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        else:
            assert old[name] == new[name], name


def test_export_writes_tuned_weights_and_warns_about_the_kept_head(tmp_path):
    path, _ = fake_nemo(tmp_path, "hybrid")
    written = nemo.convert_nemo(path, tmp_path / "hf")
    tuned = ParakeetForTDT.from_pretrained(written["tdt"])
    with torch.no_grad():
        tuned.joint.head.bias.add_(0.5)
        tuned.encoder.layers[0].self_attn.bias_u.add_(0.25)
    tuned.save_pretrained(tmp_path / "tuned")
    out = tmp_path / "tuned.nemo"
    with pytest.warns(UserWarning, match="CTC head"):
        nemo.export_nemo(tmp_path / "tuned", path, out)
    before = _weights(_members(path)["./model_weights.ckpt"])
    after = _weights(_members(out)["./model_weights.ckpt"])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"joint.joint_net.2.bias", "encoder.layers.0.self_attn.pos_bias_u"}
    assert torch.equal(after["joint.joint_net.2.bias"], tuned.joint.head.bias.detach())


# ------------------------------------------------------------------------------------------------------------
# What is refused
# ------------------------------------------------------------------------------------------------------------


def test_unknown_encoder_weight_and_config_key_are_named(tmp_path):
    path, _ = fake_nemo(tmp_path, "tdt", extra={"encoder.layers.0.mystery.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"encoder\.layers\.0\.mystery\.weight"):
        nemo.convert_nemo(path, tmp_path / "hf")
    config = nemo_config("tdt", PIECES)
    config["encoder"]["mystery_setting"] = 1
    with pytest.raises(ValueError, match=r"encoder\.mystery_setting"):
        nemo.encoder_config(config)
    config = nemo_config("tdt", PIECES)
    config["encoder"]["att_context_size"] = [70, 0]
    with pytest.raises(ValueError, match="att_context_size"):
        nemo.encoder_config(config)


def test_tokenizer_without_pad_is_refused(tmp_path):
    pieces = [p if p != "<pad>" else "ʃ" for p in PIECES]
    path, _ = fake_nemo(tmp_path, "hybrid", pieces=pieces)
    with pytest.raises(ValueError, match="no '<pad>' piece"):
        nemo.convert_nemo(path, tmp_path / "hf")


def test_durations_need_one_and_may_lack_zero(tmp_path):
    path, _ = fake_nemo(tmp_path, "tdt", durations=[0, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="do not contain 1"):
        nemo.convert_nemo(path, tmp_path / "hf")
    (tmp_path / "b").mkdir()
    path, _ = fake_nemo(tmp_path / "b", "tdt", durations=[1, 2, 3, 4, 5])
    with pytest.warns(UserWarning, match="no 0"):
        written = nemo.convert_nemo(path, tmp_path / "hf")
    assert list(load_policy_model(str(written["tdt"])).config.durations) == [1, 2, 3, 4, 5]


def test_offline_hub_id_fails_fast(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(OSError, match="offline"):
        nemo.convert_nemo("rlnf-tests/no-such-nemo-model", tmp_path / "hf")
    assert time.monotonic() - start < 5
    assert nemo.convert_main(["rlnf-tests/no-such-nemo-model", str(tmp_path / "hf")]) == 2


def test_command_lines(tmp_path, capsys):
    path, _ = fake_nemo(tmp_path, "tdt")
    assert nemo.main(["convert-nemo", str(path), str(tmp_path / "hf")]) == 0
    assert f"tdt\t{tmp_path / 'hf' / 'tdt'}" in capsys.readouterr().out
    assert nemo.export_main([str(tmp_path / "hf" / "tdt"), str(path), str(tmp_path / "back.nemo")]) == 0
    _assert_same_archive(path, tmp_path / "back.nemo")
    assert nemo.export_main([str(tmp_path / "hf" / "tdt"), str(path), str(path)]) == 2
    assert "must differ" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Against real NeMo (skipped unless nemo_toolkit[asr] is importable; it is not a dependency of rlnf)
# ------------------------------------------------------------------------------------------------------------


def test_against_real_nemo(tmp_path):
    """A tiny random hybrid TDT-CTC built and SAVED BY NeMo: the converted models reproduce NeMo's features,
    encoder, joint logits, CTC log-probs and greedy TDT transcript; an export NeMo restores gives the tuned model's
    joint logits. Run with NeMo installed, e.g. in a separate venv."""
    asr = pytest.importorskip("nemo.collections.asr", reason="nemo_toolkit[asr] is not installed")
    from omegaconf import OmegaConf

    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    (tokenizer_dir / "tokenizer.model").write_bytes(spm_bytes(PIECES))
    (tokenizer_dir / "vocab.txt").write_text("\n".join(PIECES[1:]) + "\n", encoding="utf-8")
    (tokenizer_dir / "tokenizer.vocab").write_text("\n".join(f"{p}\t0" for p in PIECES) + "\n", encoding="utf-8")
    config = nemo_config("hybrid", [])
    for key in ("target", "nemo_version", "labels"):
        config.pop(key)
    config["tokenizer"] = {"dir": str(tokenizer_dir), "type": "bpe"}
    config["preprocessor"]["sample_rate"] = 16000
    config["joint"].pop("vocabulary"), config["joint"].pop("num_classes")
    config["aux_ctc"]["decoder"] |= {"feat_in": None, "num_classes": -1, "vocabulary": []}  # filled in by NeMo
    config["decoder"].pop("vocab_size")
    torch.manual_seed(0)
    model = asr.models.EncDecHybridRNNTCTCBPEModel(cfg=OmegaConf.create(config))
    with torch.no_grad():
        for name, tensor in [*model.named_buffers(), *model.named_parameters()]:
            if name.endswith(("running_mean", "pos_bias_u", "pos_bias_v")):
                tensor.normal_(0, 0.1)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
    model.eval().save_to(str(tmp_path / "real.nemo"))
    written = nemo.convert_nemo(tmp_path / "real.nemo", tmp_path / "hf")
    tdt = ParakeetForTDT.from_pretrained(written["tdt"]).eval()
    ctc = ParakeetForCTC.from_pretrained(written["ctc"]).eval()
    processor = AutoProcessor.from_pretrained(written["tdt"])
    time_axis = np.arange(int(16000 * 1.7)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * time_axis)).astype(np.float32)
    audio += 0.05 * np.random.default_rng(0).standard_normal(audio.shape).astype(np.float32)
    labels = torch.tensor([[5, 7, 2, 9]])
    blank = tdt.config.blank_token_id

    def nemo_joint(nemo_model, encoded):
        prediction, _, _ = nemo_model.decoder(targets=labels, target_length=torch.tensor([4]))
        f = nemo_model.joint.project_encoder(encoded.transpose(1, 2))
        g = nemo_model.joint.project_prednet(prediction.transpose(1, 2))
        return nemo_model.joint.joint_net(f[:, :, None] + g[:, None])

    with torch.no_grad():
        features, feature_lengths = model.preprocessor(
            input_signal=torch.tensor(audio)[None], length=torch.tensor([len(audio)])
        )
        inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
        valid = int(feature_lengths[0])
        assert int(inputs["attention_mask"].sum()) == valid
        assert _max_diff(features[0, :, :valid].T, inputs["input_features"][0, :valid]) < 1e-4
        encoded, lengths = model.encoder(audio_signal=features, length=feature_lengths)
        frames = int(lengths[0])
        hf_inputs = {"input_features": features.transpose(1, 2), "attention_mask": inputs["attention_mask"]}
        hf_encoded = tdt.get_audio_features(**hf_inputs).last_hidden_state
        assert _max_diff(encoded.transpose(1, 2)[0, :frames], hf_encoded[0, :frames]) < 1e-5
        decoder_ids = torch.cat([torch.tensor([[blank]]), labels], 1)
        logits = tdt(**hf_inputs, decoder_input_ids=decoder_ids).logits
        assert _max_diff(nemo_joint(model, encoded)[0, :frames], logits[0, :frames]) < 1e-5
        ctc_log_probs = ctc(**hf_inputs).logits.log_softmax(-1)
        assert _max_diff(model.ctc_decoder(encoder_output=encoded)[0, :frames], ctc_log_probs[0, :frames]) < 1e-5
        hypotheses = model.decoding.rnnt_decoder_predictions_tensor(encoder_output=encoded, encoded_lengths=lengths)
        hypothesis = hypotheses[0] if isinstance(hypotheses, list) else hypotheses[0][0]
        generation = greedy_generation_config(tdt)
        generation.max_new_tokens = tdt.config.max_symbols_per_step * frames
        out = tdt.generate(**hf_inputs, generation_config=generation)
        hf_labels = greedy_labels(out.sequences, out.durations, lengths, blank, tdt.config.vocab_size)[0]
        assert [int(i) for i in hypothesis.y_sequence] == hf_labels

    with torch.no_grad():
        tdt.joint.head.bias.add_(0.3 * torch.randn_like(tdt.joint.head.bias))
        tdt.encoder.layers[1].self_attn.bias_v.add_(0.2)
        tdt.decoder.lstm.weight_hh_l0.add_(0.05)
    tdt.save_pretrained(tmp_path / "tuned")
    with pytest.warns(UserWarning, match="CTC head"):
        nemo.export_nemo(tmp_path / "tuned", tmp_path / "real.nemo", tmp_path / "tuned.nemo")
    restored = asr.models.ASRModel.restore_from(str(tmp_path / "tuned.nemo"), map_location="cpu").eval()
    assert type(restored).__name__ == "EncDecHybridRNNTCTCBPEModel"
    with torch.no_grad():
        encoded, _ = restored.encoder(audio_signal=features, length=feature_lengths)
        tuned_logits = tdt(**hf_inputs, decoder_input_ids=decoder_ids).logits
        assert _max_diff(nemo_joint(restored, encoded)[0, :frames], tuned_logits[0, :frames]) < 1e-5
        assert _max_diff(tuned_logits, logits) > 1e-2


# ------------------------------------------------------------------------------------------------------------
# A hybrid through RL and back
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["tdt", "ctc"])
def test_a_hybrid_trained_with_grpo_exports_what_it_learned(tmp_path, head):
    """A tiny hybrid .nemo converts; two GRPO steps train one of its heads (with the encoder); the export writes
    exactly the tensors training changed, equal to the tuned model's, and leaves every other tensor and member of
    the archive as it was (the other head, the frozen conv subsampling, BatchNorm statistics, config, tokenizer).
    The export converts back to the tuned model."""
    from conftest import clip_dataset, grpo_args, length_reward

    from rlnf.trainers import ASRGRPOTrainer

    path, _ = fake_nemo(tmp_path, "hybrid")
    written = nemo.convert_nemo(path, tmp_path / "hf")
    cap = {"max_completion_length": 16} if head == "tdt" else {}
    trainer = ASRGRPOTrainer(
        str(written[head]), [length_reward], args=grpo_args(tmp_path, learning_rate=1e-2, **cap),
        train_dataset=clip_dataset(),
    )  # fmt: skip
    assert trainer.policy.family == head
    trainer.train()
    trainer.save_model(str(tmp_path / "tuned"))
    tuned = {k: v.detach().cpu() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    model_class = ParakeetForTDT if head == "tdt" else ParakeetForCTC
    before = model_class.from_pretrained(written[head])
    changed = {k for k, v in before.state_dict().items() if not torch.equal(v, tuned[k])}
    assert any(k.startswith("encoder.layers.") for k in changed)
    assert any(k.startswith("joint." if head == "tdt" else "ctc_head.") for k in changed)
    assert not any(k.startswith("encoder.subsampling.") or "running_" in k or "batches_tracked" in k for k in changed)

    kept = "CTC head" if head == "tdt" else "TDT prediction network and joint"
    with pytest.warns(UserWarning, match=kept):  # the other head now runs on the tuned encoder
        nemo.export_nemo(tmp_path / "tuned", path, tmp_path / "tuned.nemo")
    old, new = _members(path), _members(tmp_path / "tuned.nemo")
    assert list(old) == list(new)
    for name in old:
        if not name.endswith("model_weights.ckpt"):
            assert old[name] == new[name], name
    old_weights, new_weights = _weights(old["./model_weights.ckpt"]), _weights(new["./model_weights.ckpt"])
    assert list(old_weights) == list(new_weights)
    tuned_nemo_keys = {nemo.hf_to_nemo_key(k, hybrid=True): k for k in changed}
    for key, value in new_weights.items():
        assert value.dtype == old_weights[key].dtype and value.shape == old_weights[key].shape, key
        if key in tuned_nemo_keys:
            assert torch.equal(value, tuned[tuned_nemo_keys[key]]), key
            assert not torch.equal(value, old_weights[key]), key
        else:
            assert _same_bytes(value, old_weights[key]), key  # untouched: the original's tensor, byte for byte

    back = nemo.convert_nemo(tmp_path / "tuned.nemo", tmp_path / "back")
    again = model_class.from_pretrained(back[head]).state_dict()
    assert again.keys() == tuned.keys() and all(torch.equal(again[k], tuned[k]) for k in tuned)
