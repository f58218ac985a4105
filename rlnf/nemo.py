"""The NeMo bridge: NeMo ``.nemo`` Parakeet checkpoints to transformers folders and back, without NeMo.

``convert_nemo(SOURCE, OUTPUT_DIR)`` reads a ``.nemo`` archive (a tar holding ``model_config.yaml``,
``model_weights.ckpt`` and the SentencePiece ``*.model`` tokenizer), or the ``.nemo`` of a hub repository, and
writes what rlnf's policy families load:

* a TDT transducer (``EncDecRNNTBPEModel`` with ``decoding.durations``) -> ``OUTPUT_DIR/tdt``: ``ParakeetForTDT``
  and its processor (the ``tdt`` family);
* a CTC model (``EncDecCTCModelBPE``) -> ``OUTPUT_DIR/ctc``: ``ParakeetForCTC`` (the ``ctc`` family);
* a hybrid TDT-CTC (``EncDecHybridRNNTCTCBPEModel``, e.g. RobotsMali's soloni) -> BOTH, sharing the encoder
  weights; the CTC folder's head is the hybrid's auxiliary CTC decoder (``ctc_decoder.decoder_layers.0.*``),
  which transformers' own converter drops (it loads TDT with ``strict=False``).

``export_nemo(MODEL_DIR, ORIGINAL_NEMO, OUTPUT_NEMO)`` writes a (tuned) transformers folder back into a COPY of the
original archive: every tensor the folder holds replaces its NeMo counterpart (the inverse key map), every other
tensor and every other archive member (config, tokenizer, vocab files) is copied unchanged, so NeMo restores and
serves the result like the original. For a hybrid, the TDT folder gives the encoder, prediction network and joint;
the CTC head comes from ``ctc_model_dir`` when given, else stays the original's (and a CTC folder may be exported
instead: the transducer then stays the original's). A kept head was trained against the ORIGINAL encoder: the
export warns when the encoder it writes differs from the original's.

Weight map (NeMo -> transformers; the inverse is applied on export; transformers' ``convert_nemo_to_hf.py``):

====================================================  ===========================================
``encoder.pre_encode.conv.N.``                        ``encoder.subsampling.layers.N.``
``encoder.pre_encode.out.``                           ``encoder.subsampling.linear.``
``encoder.layers.N.conv.batch_norm.``                 ``encoder.layers.N.conv.norm.``
``encoder.layers.N.self_attn.linear_{q,k,v}.``        ``encoder.layers.N.self_attn.{q,k,v}_proj.``
``encoder.layers.N.self_attn.linear_out.``            ``encoder.layers.N.self_attn.o_proj.``
``encoder.layers.N.self_attn.linear_pos.``            ``encoder.layers.N.self_attn.relative_k_proj.``
``encoder.layers.N.self_attn.pos_bias_{u,v}``         ``encoder.layers.N.self_attn.bias_{u,v}``
other ``encoder.layers.N.*`` (feed-forwards, norms)   the same name
``decoder.prediction.embed.``                         ``decoder.embedding.``          (TDT)
``decoder.prediction.dec_rnn.lstm.``                  ``decoder.lstm.``               (TDT)
``joint.enc.``                                        ``encoder_projector.``          (TDT)
``joint.pred.``                                       ``decoder.decoder_projector.``  (TDT)
``joint.joint_net.{2 or 1}.``                         ``joint.head.``                 (TDT; 1 without dropout)
``decoder.decoder_layers.0.``                         ``ctc_head.``                   (CTC model)
``ctc_decoder.decoder_layers.0.``                     ``ctc_head.``                   (hybrid's CTC folder)
====================================================  ===========================================

``preprocessor.featurizer.{window,fb}`` (and ``encoder.pos_enc.pe`` if a checkpoint holds it) are derived from the
config, not learned: skipped on conversion, kept on export. Any other key, a key the transformers model does not
have, a missing key or a shape mismatch is a ValueError naming the key.

Config map: ``encoder`` (``ConformerEncoder``) -> ``ParakeetEncoderConfig`` as upstream (``d_model``,
``n_heads``, ``n_layers``, ``feat_in``, ``conv_kernel_size``, ``subsampling_factor``, ``subsampling_conv_channels``
(-1: ``d_model``), ``pos_emb_max_len``, ``dropout``, ``dropout_emb``, ``dropout_att``, ``xscaling``,
``use_bias``, ``stochastic_depth_drop_prob`` -> layerdrop) plus ``ff_expansion_factor`` -> ``intermediate_size =
d_model x ff_expansion_factor`` (upstream ignores it and keeps 4096, right for 1024-wide models only). Settings the
transformers encoder cannot reproduce are refused by name (subsampling other than ``dw_striding``, attention other
than ``rel_pos``, limited attention context, causal convolutions, layer-norm convolutions, tied biases, reductions,
global tokens, ``feat_out``); unknown keys are refused like upstream. ``preprocessor``
(``AudioToMelSpectrogramPreprocessor``) -> ``ParakeetFeatureExtractor``: ``sample_rate``, ``features``,
``window_size``/``window_stride`` (seconds x rate) or ``n_window_size``/``n_window_stride``, ``n_fft``,
``preemph``, ``pad_value``; what the feature extractor hardcodes (hann window, per-feature normalisation, log with
a 2^-24 guard, slaney mel, power 2, no frame splicing ...) must be NeMo's value; training-only settings (dither,
narrow-band augmentation, ``pad_to``) are ignored. TDT: vocabulary = ``labels`` + blank LAST,
``pad_token_id = labels.index("<pad>")`` (a tokenizer without ``<pad>`` is refused), ``durations`` from
``decoding.durations`` (they must contain 1: the rlnf TDT family's sampler needs it; without 0 the conversion
proceeds with a warning: every step then moves at least one frame, so a frame emits at most one label and
``max_symbols_per_step`` has no effect), ``max_symbols_per_step`` from ``decoding.greedy.max_symbols`` (10 if
unset), joint activation ``relu``, ``joint_hidden == pred_hidden``; generation config with the blank as decoder
start and the duration ids suppressed (as ``TDTPolicy.finish_saved_folder`` writes). CTC: vocabulary = labels +
blank LAST, the blank is the pad token (``<blank>``). The tokenizer is the archive's SentencePiece model through
transformers' ``ParakeetConverter`` (as upstream), with ``<blank>`` appended as a special token; its pieces must be
the config's ``labels``. A plain RNN-T (no durations) is refused (rlnf's transducer family takes TDT only).

Validation: the tests build fake ``.nemo`` archives in NeMo's layout from rlnf's tiny random Parakeet models
(``tests/test_nemo.py``, no NeMo needed): encoder outputs, TDT joint logits and CTC logits of the converted models
equal the originals', ``.nemo -> rlnf -> .nemo`` reproduces every tensor bitwise and every other member byte for
byte. Against real NeMo: NeMo is NOT a dependency and is never imported here; ``test_against_real_nemo`` (skipped
unless ``nemo_toolkit[asr]`` imports) was run once with nemo_toolkit 3.0.0 in a throwaway venv (CPU, torch 2.13,
transformers 5.25): on a tiny random hybrid TDT-CTC built and saved by NeMo itself, the converted models matched
NeMo's mel features (0 difference), encoder (7e-7), raw joint logits (2e-7), CTC log-probs (1e-6) and greedy TDT
labels, and ``ASRModel.restore_from`` loaded an export of tuned weights that gave the tuned transformers model's
joint logits (2e-7); a NeMo-saved ``EncDecCTCModelBPE`` matched likewise (1e-6, through both preprocessors). No
real pretrained checkpoint (soloni, parakeet-tdt_ctc-110m) could be downloaded here, so their saved configs were
not run through the converter: a config key not listed above is refused by name, not guessed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

BLANK = "<blank>"
PAD = "<pad>"
CONFIG_MEMBER = "model_config.yaml"
WEIGHTS_MEMBER = "model_weights.ckpt"

# ---------------------------------------------------------------------------------------------------------------
# Key maps (first matching rule wins; a key no rule matches keeps its name)
# ---------------------------------------------------------------------------------------------------------------

_LAYER = r"^(encoder\.layers\.\d+)"
ENCODER_RULES: tuple[tuple[str, str], ...] = (
    (r"^encoder\.pre_encode\.conv\.(\d+)\.", r"encoder.subsampling.layers.\1."),
    (r"^encoder\.pre_encode\.out\.", "encoder.subsampling.linear."),
    (r"^encoder\.pos_enc\.", "encoder.encode_positions."),
    (_LAYER + r"\.conv\.batch_norm\.", r"\1.conv.norm."),
    (_LAYER + r"\.self_attn\.linear_([qkv])\.", r"\1.self_attn.\2_proj."),
    (_LAYER + r"\.self_attn\.linear_out\.", r"\1.self_attn.o_proj."),
    (_LAYER + r"\.self_attn\.linear_pos\.", r"\1.self_attn.relative_k_proj."),
    (_LAYER + r"\.self_attn\.pos_bias_([uv])$", r"\1.self_attn.bias_\2"),
)
ENCODER_INVERSE: tuple[tuple[str, str], ...] = (
    (r"^encoder\.subsampling\.layers\.(\d+)\.", r"encoder.pre_encode.conv.\1."),
    (r"^encoder\.subsampling\.linear\.", "encoder.pre_encode.out."),
    (r"^encoder\.encode_positions\.", "encoder.pos_enc."),
    (_LAYER + r"\.conv\.norm\.", r"\1.conv.batch_norm."),
    (_LAYER + r"\.self_attn\.([qkv])_proj\.", r"\1.self_attn.linear_\2."),
    (_LAYER + r"\.self_attn\.o_proj\.", r"\1.self_attn.linear_out."),
    (_LAYER + r"\.self_attn\.relative_k_proj\.", r"\1.self_attn.linear_pos."),
    (_LAYER + r"\.self_attn\.bias_([uv])$", r"\1.self_attn.pos_bias_\2"),
)
TRANSDUCER_RULES: tuple[tuple[str, str], ...] = (
    (r"^decoder\.prediction\.embed\.", "decoder.embedding."),
    (r"^decoder\.prediction\.dec_rnn\.lstm\.", "decoder.lstm."),
    (r"^joint\.enc\.", "encoder_projector."),
    (r"^joint\.pred\.", "decoder.decoder_projector."),
    (r"^joint\.joint_net\.\d+\.", "joint.head."),
)
TRANSDUCER_INVERSE: tuple[tuple[str, str], ...] = (
    (r"^decoder\.embedding\.", "decoder.prediction.embed."),
    (r"^decoder\.lstm\.", "decoder.prediction.dec_rnn.lstm."),
    (r"^encoder_projector\.", "joint.enc."),
    (r"^decoder\.decoder_projector\.", "joint.pred."),
    (r"^joint\.head\.", "joint.joint_net.{joint_head}."),
)
CTC_PREFIX = "decoder.decoder_layers.0."  # a CTC model's head
HYBRID_CTC_PREFIX = "ctc_decoder.decoder_layers.0."  # a hybrid's auxiliary CTC head
DERIVED_KEYS = re.compile(r"^(preprocessor\.featurizer\.(window|fb)|encoder\.pos_enc\.pe)$")


def _apply(rules: Iterable[tuple[str, str]], key: str) -> tuple[str, bool]:
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key, count=1)
        if count:
            return new, True
    return key, False


def nemo_to_hf_key(key: str, *, transducer: bool) -> tuple[str, str] | None:
    """``(part, transformers key)`` of a NeMo weight, part ``"encoder"``, ``"transducer"`` or ``"ctc"``; None for
    buffers derived from the config (kept as they are on export). ``transducer``: the checkpoint is a TDT or
    hybrid (its ``decoder.*`` is the prediction network), else a CTC model (``decoder.*`` is the CTC head).
    A key no rule knows is a ValueError naming it."""
    if DERIVED_KEYS.match(key):
        return None
    if key.startswith("encoder."):
        return "encoder", _apply(ENCODER_RULES, key)[0]
    if transducer and key.startswith(("decoder.", "joint.")):
        new, matched = _apply(TRANSDUCER_RULES, key)
        if matched:
            return "transducer", new
    prefix = HYBRID_CTC_PREFIX if transducer else CTC_PREFIX
    if key.startswith(prefix):
        return "ctc", "ctc_head." + key[len(prefix) :]
    raise ValueError(
        f"unknown NeMo weight {key!r}: it is not part of a FastConformer encoder, a TDT prediction network and joint "
        "or a CTC head that transformers' Parakeet models hold, so converting would drop it"
    )


def hf_to_nemo_key(key: str, *, hybrid: bool = False, joint_head: int = 2) -> str:
    """The NeMo name of a transformers Parakeet weight (the inverse of `nemo_to_hf_key`). ``hybrid``: a CTC
    folder's ``ctc_head`` goes to the hybrid's ``ctc_decoder``; ``joint_head``: the index of the joint's linear
    layer in NeMo's ``joint_net`` (2 with joint dropout, 1 without)."""
    if key.startswith("encoder."):
        return _apply(ENCODER_INVERSE, key)[0]
    if key.startswith("ctc_head."):
        return (HYBRID_CTC_PREFIX if hybrid else CTC_PREFIX) + key[len("ctc_head.") :]
    new, matched = _apply(TRANSDUCER_INVERSE, key)
    if matched:
        return new.replace("{joint_head}", str(joint_head))
    raise ValueError(f"transformers weight {key!r} has no NeMo counterpart")


# ---------------------------------------------------------------------------------------------------------------
# Reading the archive
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class NemoArchive:
    """What a ``.nemo`` holds, read without extracting it: the config, the state dict and the member names."""

    path: Path
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    members: list[str]
    weights_member: str
    tokenizer_member: str | None
    tokenizer_bytes: bytes | None = field(default=None, repr=False)


def _member(names: Sequence[str], basename: str) -> str | None:
    found = [n for n in names if Path(n).name == basename]
    return found[0] if found else None


def _tokenizer_member(names: Sequence[str], config: dict[str, Any]) -> str | None:
    model_path = str((config.get("tokenizer") or {}).get("model_path") or "")
    if model_path:
        wanted = Path(model_path.removeprefix("nemo:")).name
        found = _member(names, wanted)
        if found:
            return found
    models = [n for n in names if n.endswith(".model")]
    if len(models) > 1:
        raise ValueError(
            f"the archive holds several SentencePiece models {models} and its config's tokenizer.model_path "
            f"({model_path or 'unset'}) names none of them"
        )
    return models[0] if models else None


def _resolve_interpolations(config: Any, root: dict[str, Any] | None = None) -> Any:
    """Resolve OmegaConf references left in a saved config (``${model.encoder.d_model}``, ``${sample_rate}``)."""
    root = config if root is None else root
    if isinstance(config, dict):
        return {k: _resolve_interpolations(v, root) for k, v in config.items()}
    if isinstance(config, list):
        return [_resolve_interpolations(v, root) for v in config]
    if isinstance(config, str):
        match = re.fullmatch(r"\$\{([\w.]+)\}", config.strip())
        if match:
            path = match.group(1).removeprefix("model.").split(".")
            value: Any = root
            for part in path:
                if not isinstance(value, dict) or part not in value:
                    return config
                value = value[part]
            return _resolve_interpolations(value, root)
    return config


def read_nemo(path: str | Path) -> NemoArchive:
    """Open a ``.nemo`` archive: its config (``model_config.yaml``), its weights (``model_weights.ckpt``, loaded with
    ``torch.load(weights_only=True)``) and its SentencePiece tokenizer."""
    import yaml

    path = Path(path)
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{path} is not a .nemo archive (a tar file)")
    with tarfile.open(path, "r:*") as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        config_member, weights_member = _member(names, CONFIG_MEMBER), _member(names, WEIGHTS_MEMBER)
        if config_member is None or weights_member is None:
            raise ValueError(
                f"{path} holds no {CONFIG_MEMBER} / {WEIGHTS_MEMBER} (members: {names}); a NeMo model archive has both"
            )
        config = yaml.safe_load(tar.extractfile(config_member).read().decode("utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"{path}: {CONFIG_MEMBER} is not a mapping")
        config = _resolve_interpolations(config.get("model", config) if "encoder" not in config else config)
        with tempfile.TemporaryFile() as buffer:
            source = tar.extractfile(weights_member)
            while chunk := source.read(1 << 24):
                buffer.write(chunk)
            buffer.seek(0)
            state_dict = torch.load(buffer, map_location="cpu", weights_only=True)
        if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
            state_dict = state_dict["state_dict"]
        if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
            raise ValueError(f"{path}: {WEIGHTS_MEMBER} is not a state dict of tensors")
        tokenizer_member = _tokenizer_member(names, config)
        tokenizer_bytes = tar.extractfile(tokenizer_member).read() if tokenizer_member else None
    return NemoArchive(path, config, state_dict, names, weights_member, tokenizer_member, tokenizer_bytes)


# ---------------------------------------------------------------------------------------------------------------
# Config conversion
# ---------------------------------------------------------------------------------------------------------------

_ENCODER_MAP = {
    "d_model": "hidden_size",
    "n_heads": "num_attention_heads",
    "n_layers": "num_hidden_layers",
    "feat_in": "num_mel_bins",
    "conv_kernel_size": "conv_kernel_size",
    "subsampling_factor": "subsampling_factor",
    "pos_emb_max_len": "max_position_embeddings",
    "dropout_emb": "dropout_positions",
    "dropout_att": "attention_dropout",
    "xscaling": "scale_input",
    "stochastic_depth_drop_prob": "layerdrop",
}
# Settings the transformers FastConformer has exactly one way of doing: NeMo's value must be that one.
_ENCODER_REQUIRED: dict[str, tuple[Any, ...]] = {
    "subsampling": ("dw_striding",),
    "self_attention_model": ("rel_pos",),
    "conv_norm_type": ("batch_norm",),
    "causal_downsampling": (False, None),
    "untie_biases": (True, None),
    "reduction": (None,),
    "feat_out": (-1, None),
    "global_tokens": (0, None),
    "global_attn_separate": (False, None),
}
# Training-time or implementation settings with no effect on the converted model's outputs.
_ENCODER_IGNORED = {
    "_target_",
    "dropout_pre_encoder",
    "stochastic_depth_mode",
    "stochastic_depth_start_layer",
    "subsampling_conv_chunking_factor",
    "att_context_probs",
    "att_context_style",
    "global_tokens_spacing",
    "use_pytorch_sdpa",
    "use_pytorch_sdpa_backends",
    "sync_max_audio_length",
    "reduction_position",
    "reduction_factor",
}


def encoder_config(nemo: dict[str, Any]) -> dict[str, Any]:
    """``ParakeetEncoderConfig`` fields of a NeMo ``encoder`` section (see the module docstring)."""
    encoder = nemo.get("encoder") or {}
    target = str(encoder.get("_target_", "ConformerEncoder"))
    if not target.endswith("ConformerEncoder"):
        raise ValueError(f"encoder._target_ is {target}: only NeMo's ConformerEncoder (FastConformer) converts")
    out: dict[str, Any] = {"layerdrop": 0.0}  # NeMo's default (no stochastic depth), not ParakeetEncoderConfig's
    for key, value in encoder.items():
        if key in _ENCODER_IGNORED:
            continue
        if key in _ENCODER_REQUIRED:
            if value not in _ENCODER_REQUIRED[key]:
                raise ValueError(
                    f"encoder.{key} = {value!r}: transformers' Parakeet encoder only implements "
                    f"{_ENCODER_REQUIRED[key][0]!r}, so the converted model would compute something else"
                )
        elif key == "att_context_size":
            if value not in (None, [-1, -1]):
                raise ValueError(
                    f"encoder.att_context_size = {value!r}: transformers' Parakeet encoder attends to the whole clip; "
                    "a limited-context (streaming) model would compute something else"
                )
        elif key == "conv_context_size":
            kernel = int(encoder.get("conv_kernel_size", 31))
            if value not in (None, [(kernel - 1) // 2, (kernel - 1) // 2]):
                raise ValueError(f"encoder.conv_context_size = {value!r}: only symmetric (non-causal) convolutions")
        elif key == "ff_expansion_factor":
            continue  # intermediate_size below
        elif key == "subsampling_conv_channels":
            out[key] = int(encoder.get("d_model")) if value in (-1, None) else int(value)
        elif key == "dropout":
            out["dropout"] = out["activation_dropout"] = value
        elif key == "use_bias":
            out["attention_bias"] = out["convolution_bias"] = bool(value)
        elif key in _ENCODER_MAP:
            out[_ENCODER_MAP[key]] = value
        else:
            raise ValueError(f"unknown NeMo encoder config key encoder.{key} (value {value!r}): not converted")
    for needed in ("d_model", "n_heads", "n_layers", "feat_in"):
        if needed not in encoder:
            raise ValueError(f"the NeMo config has no encoder.{needed}")
    factor = int(out.get("subsampling_factor", 8))
    if factor < 2 or factor & (factor - 1):
        raise ValueError(f"encoder.subsampling_factor = {factor}: dw_striding subsampling needs a power of 2")
    out["intermediate_size"] = int(encoder["d_model"]) * int(encoder.get("ff_expansion_factor", 4))
    if out.get("layerdrop") is None:
        out["layerdrop"] = 0.0
    return out


_PREPROCESSOR_MAP = {"sample_rate": "sampling_rate", "features": "feature_size", "pad_value": "padding_value"}
_PREPROCESSOR_REQUIRED: dict[str, tuple[Any, ...]] = {  # what ParakeetFeatureExtractor hardcodes
    "window": ("hann",),
    "normalize": ("per_feature",),
    "log": (True,),
    "frame_splicing": (1, None),
    "mag_power": (2, 2.0),
    "lowfreq": (0, 0.0, None),
    "log_zero_guard_type": ("add",),
    "log_zero_guard_value": (2**-24,),
    "mel_norm": ("slaney",),
    "exact_pad": (False,),
    "stft_exact_pad": (False,),
    "stft_conv": (False,),
}
_PREPROCESSOR_IGNORED = {"_target_", "dither", "pad_to", "rng", "nb_augmentation_prob", "nb_max_freq", "use_torchaudio"}


def feature_extractor_config(nemo: dict[str, Any]) -> dict[str, Any]:
    """``ParakeetFeatureExtractor`` settings of a NeMo ``preprocessor`` section (see the module docstring)."""
    pre = nemo.get("preprocessor") or {}
    target = str(pre.get("_target_", "AudioToMelSpectrogramPreprocessor"))
    if not target.endswith("AudioToMelSpectrogramPreprocessor"):
        raise ValueError(f"preprocessor._target_ is {target}: only AudioToMelSpectrogramPreprocessor converts")
    rate = int(pre.get("sample_rate", nemo.get("sample_rate", 16000)))
    out: dict[str, Any] = {"sampling_rate": rate}
    for key, value in pre.items():
        if key in _PREPROCESSOR_IGNORED:
            continue
        if key in _PREPROCESSOR_REQUIRED:
            if value not in _PREPROCESSOR_REQUIRED[key]:
                raise ValueError(
                    f"preprocessor.{key} = {value!r}: transformers' ParakeetFeatureExtractor only implements "
                    f"{_PREPROCESSOR_REQUIRED[key][0]!r}, so the converted model would get other features"
                )
        elif key == "highfreq":
            if value is not None and float(value) != rate / 2:
                raise ValueError(
                    f"preprocessor.highfreq = {value}: the feature extractor's mel bank ends at {rate / 2}"
                )
        elif key in ("window_size", "window_stride"):
            out["win_length" if key == "window_size" else "hop_length"] = int(round(float(value) * rate))
        elif key in ("n_window_size", "n_window_stride"):
            if value is not None:
                out["win_length" if key == "n_window_size" else "hop_length"] = int(value)
        elif key == "n_fft":
            if value is not None:
                out["n_fft"] = int(value)
        elif key == "preemph":
            out["preemphasis"] = 0.0 if value is None else float(value)
        elif key in _PREPROCESSOR_MAP:
            out[_PREPROCESSOR_MAP[key]] = value
        else:
            raise ValueError(f"unknown NeMo preprocessor config key preprocessor.{key} (value {value!r})")
    if "n_fft" not in out and "win_length" in out:
        out["n_fft"] = 2 ** math.ceil(math.log2(out["win_length"]))
    return out


@dataclass
class NemoLayout:
    """What a NeMo checkpoint is, decided from its config and weights."""

    kind: str  # "tdt", "ctc" or "hybrid"
    labels: list[str]
    encoder: dict[str, Any]
    feature_extractor: dict[str, Any]
    durations: list[int] | None = None
    decoder_hidden_size: int | None = None
    num_decoder_layers: int | None = None
    max_symbols_per_step: int = 10
    joint_head: int = 2

    @property
    def transducer(self) -> bool:
        return self.kind in ("tdt", "hybrid")

    @property
    def has_ctc(self) -> bool:
        return self.kind in ("ctc", "hybrid")

    @property
    def blank(self) -> int:
        return len(self.labels)

    def tdt_config(self) -> Any:
        from transformers import ParakeetTDTConfig

        return ParakeetTDTConfig(
            vocab_size=len(self.labels) + 1,
            blank_token_id=len(self.labels),
            pad_token_id=self.labels.index(PAD),
            decoder_hidden_size=self.decoder_hidden_size,
            num_decoder_layers=self.num_decoder_layers,
            durations=list(self.durations),
            hidden_act="relu",
            max_symbols_per_step=self.max_symbols_per_step,
            encoder_config=dict(self.encoder),
        )

    def ctc_config(self) -> Any:
        from transformers import ParakeetCTCConfig

        return ParakeetCTCConfig(
            vocab_size=len(self.labels) + 1, pad_token_id=len(self.labels), encoder_config=dict(self.encoder)
        )


def _durations(nemo: dict[str, Any]) -> list[int] | None:
    for section, key in (("decoding", "durations"), ("model_defaults", "tdt_durations")):
        value = (nemo.get(section) or {}).get(key)
        if value:
            return list(value)
    value = ((nemo.get("loss") or {}).get("tdt_kwargs") or {}).get("durations")
    return list(value) if value else None


def check_durations(durations: Sequence[Any]) -> list[int]:
    """TDT durations rlnf can use: distinct non-negative integers containing 1 (0 is optional, with a warning)."""
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in durations):
        raise ValueError(f"TDT durations must be non-negative integers, got {list(durations)}")
    if len(set(durations)) != len(durations):
        raise ValueError(f"TDT durations must be distinct, got {list(durations)}")
    if 1 not in durations:
        raise ValueError(
            f"TDT durations {list(durations)} do not contain 1: rlnf's TDT family samples paths that land exactly on "
            "the last frame, which needs duration 1 one frame before the end; such a model cannot be an rlnf policy"
        )
    if 0 not in durations:
        warnings.warn(
            f"TDT durations {list(durations)} contain no 0: every token then moves at least one frame, so a frame "
            "emits at most one label and max_symbols_per_step has no effect (rlnf's sampler and scorer and "
            "transformers' generate handle this; transcripts are capped at one label per encoder frame)",
            UserWarning,
            stacklevel=3,
        )
    return [int(d) for d in durations]


def nemo_layout(nemo: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> NemoLayout:
    """Decide what the checkpoint is and convert its config (errors name the offending key)."""
    transducer = any(k.startswith("joint.") for k in state_dict) or "joint" in nemo
    hybrid_ctc = any(k.startswith(HYBRID_CTC_PREFIX) for k in state_dict)
    if not transducer and not any(k.startswith(CTC_PREFIX) for k in state_dict):
        raise ValueError(
            "the checkpoint has neither a transducer joint (joint.*) nor a CTC head (decoder.decoder_layers.0.*)"
        )
    if transducer:
        labels = nemo.get("labels") or (nemo.get("joint") or {}).get("vocabulary")
    else:
        labels = (nemo.get("decoder") or {}).get("vocabulary") or nemo.get("labels")
    if not labels:
        raise ValueError("the NeMo config lists no vocabulary (labels / joint.vocabulary / decoder.vocabulary)")
    labels = [str(t) for t in labels]
    layout = NemoLayout(
        kind=("hybrid" if hybrid_ctc else "tdt") if transducer else "ctc",
        labels=labels,
        encoder=encoder_config(nemo),
        feature_extractor=feature_extractor_config(nemo),
    )
    if hybrid_ctc:
        aux = ((nemo.get("aux_ctc") or {}).get("decoder") or {}).get("vocabulary")
        if aux and [str(t) for t in aux] != labels:
            raise ValueError("aux_ctc.decoder.vocabulary differs from the transducer's labels: one tokenizer expected")
    if not transducer:
        return layout
    durations = _durations(nemo)
    if not durations:
        raise ValueError(
            "the transducer has no TDT durations (decoding.durations): it is a plain RNN-T. rlnf's transducer family "
            "supports TDT only (ParakeetForRNNT's loss needs torchaudio, which does not import with rlnf's CPU torch)"
        )
    layout.durations = check_durations(durations)
    extra = (nemo.get("joint") or {}).get("num_extra_outputs")
    if extra not in (None, len(durations)):
        raise ValueError(f"joint.num_extra_outputs = {extra} but decoding.durations has {len(durations)} values")
    if PAD not in labels:
        raise ValueError(
            f"the tokenizer has no {PAD!r} piece: transformers' Parakeet TDT pads labels with it (pad_token_id = "
            f"labels.index('{PAD}'), as transformers' converter sets it) and its loss counts a transcript's length as "
            "its non-pad ids. NeMo TDT vocabularies have one; this one does not, so it is refused"
        )
    decoder = nemo.get("decoder") or {}
    prednet = decoder.get("prednet") or {}
    jointnet = (nemo.get("joint") or {}).get("jointnet") or {}
    layout.decoder_hidden_size = int(prednet.get("pred_hidden", 640))
    layout.num_decoder_layers = int(prednet.get("pred_rnn_layers", 2))
    if decoder.get("normalization_mode") is not None:
        raise ValueError(f"decoder.normalization_mode = {decoder['normalization_mode']!r}: only None converts")
    if decoder.get("blank_as_pad") is False:
        raise ValueError("decoder.blank_as_pad = false: transformers' prediction network embeds the blank")
    if jointnet.get("activation", "relu") != "relu":
        raise ValueError(f"joint.jointnet.activation = {jointnet['activation']!r}: transformers' joint uses relu")
    if int(jointnet.get("joint_hidden", layout.decoder_hidden_size)) != layout.decoder_hidden_size:
        raise ValueError(
            f"joint.jointnet.joint_hidden = {jointnet['joint_hidden']} differs from decoder.prednet.pred_hidden = "
            f"{layout.decoder_hidden_size}: transformers' Parakeet joint has one width for both"
        )
    greedy = (nemo.get("decoding") or {}).get("greedy") or {}
    symbols = greedy.get("max_symbols", greedy.get("max_symbols_per_step"))
    layout.max_symbols_per_step = int(symbols) if symbols else 10
    heads = {
        re.match(r"^joint\.joint_net\.(\d+)\.", k).group(1) for k in state_dict if k.startswith("joint.joint_net.")
    }
    if len(heads) != 1:
        raise ValueError(f"expected one linear layer in NeMo's joint.joint_net, found indices {sorted(heads)}")
    layout.joint_head = int(heads.pop())
    return layout


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer, processor, models
# ---------------------------------------------------------------------------------------------------------------


def build_tokenizer(spm_path: str | Path, labels: Sequence[str], kind: str) -> Any:
    """The ``ParakeetTokenizer`` of a NeMo SentencePiece model (transformers' ``ParakeetConverter``, as upstream):
    its pieces are the NeMo labels (ids 0 .. L-1), ``<blank>`` is appended (id L, special). ``kind="tdt"``: the
    pad token is ``<pad>``; ``kind="ctc"``: the pad token is the blank (transformers' CTC decoding drops it)."""
    from tokenizers import AddedToken
    from transformers import ParakeetTokenizer
    from transformers.convert_slow_tokenizer import ParakeetConverter

    tokenizer = ParakeetTokenizer(
        tokenizer_object=ParakeetConverter(str(spm_path)).converted(), clean_up_tokenization_spaces=False
    )
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if pieces != list(labels):
        differ = next((i for i, (a, b) in enumerate(zip(pieces, labels)) if a != b), min(len(pieces), len(labels)))
        raise ValueError(
            f"the archive's SentencePiece model ({len(pieces)} pieces) is not the config's vocabulary ({len(labels)} "
            f"labels): first difference at id {differ}"
        )
    if BLANK in pieces:
        raise ValueError(f"the SentencePiece model already has a {BLANK!r} piece; the blank must be a new last id")
    if tokenizer.convert_tokens_to_ids("<unk>") is None or "<unk>" not in pieces:
        raise ValueError("the SentencePiece model has no '<unk>' piece")
    blank = AddedToken(BLANK, normalized=False, special=True)
    special: dict[str, Any] = {"unk_token": AddedToken("<unk>", normalized=False, special=True)}
    if kind == "tdt":
        special |= {"pad_token": AddedToken(PAD, normalized=False, special=True), "extra_special_tokens": [blank]}
    else:
        special |= {"pad_token": blank}
    tokenizer.add_special_tokens(special)
    if tokenizer.convert_tokens_to_ids(BLANK) != len(labels) or len(tokenizer) != len(labels) + 1:
        raise RuntimeError("the blank did not land on the last id")
    _warn_if_encoding_differs(spm_path, tokenizer, pieces)
    return tokenizer


def _warn_if_encoding_differs(spm_path: str | Path, tokenizer: Any, pieces: Sequence[str]) -> None:
    """transformers' converter builds a BPE tokenizer from the piece scores (as upstream); for unigram
    SentencePiece models it may segment some words otherwise than NeMo (decoding is the same). Checked on words
    made of the vocabulary's own pieces."""
    try:
        import sentencepiece
    except ImportError:  # pragma: no cover - a dependency
        return
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
    words = [p.lstrip("▁") for p in pieces if len(p.lstrip("▁")) > 0 and not p.startswith("<")]
    text = " ".join(words[i] + words[-1 - i] for i in range(len(words) // 2))
    if text and processor.encode(text) != tokenizer.encode(text, add_special_tokens=False):
        warnings.warn(
            "the converted tokenizer segments some text otherwise than the SentencePiece model (transformers' "
            "ParakeetConverter builds BPE merges from the piece scores): decoding is identical, but supervised labels "
            "tokenised by the processor may differ from NeMo's",
            UserWarning,
            stacklevel=3,
        )


def _feature_extractor(layout: NemoLayout) -> Any:
    from transformers import ParakeetFeatureExtractor

    return ParakeetFeatureExtractor(**layout.feature_extractor)


def _load_strict(model: torch.nn.Module, weights: dict[str, torch.Tensor], nemo_names: dict[str, str]) -> None:
    """``load_state_dict(strict=True, assign=True)`` with errors naming the NeMo keys."""
    expected = model.state_dict()
    unknown = [nemo_names[k] for k in weights if k not in expected]
    if unknown:
        raise ValueError(
            f"unknown NeMo weight(s) {unknown} (mapped to {[k for k in weights if k not in expected]}): the "
            f"transformers {type(model).__name__} has no such parameter, so converting would drop them"
        )
    missing = [k for k in expected if k not in weights]
    if missing:
        raise ValueError(f"the NeMo checkpoint lacks the weights {type(model).__name__} holds as {missing}")
    for key, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"NeMo weight {nemo_names[key]!r} has shape {tuple(tensor.shape)} but the converted config gives "
                f"{key} the shape {tuple(expected[key].shape)} (vocabulary, durations or a size in the config does "
                "not match the weights)"
            )
    model.load_state_dict(weights, strict=True, assign=True)


def _split_weights(
    state_dict: dict[str, torch.Tensor], layout: NemoLayout
) -> dict[str, dict[str, tuple[str, torch.Tensor]]]:
    """``{part: {transformers key: (NeMo key, tensor)}}`` for parts encoder / transducer / ctc."""
    parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {"encoder": {}, "transducer": {}, "ctc": {}}
    for key, tensor in state_dict.items():
        mapped = nemo_to_hf_key(key, transducer=layout.transducer)
        if mapped is not None:
            parts[mapped[0]][mapped[1]] = (key, tensor)
    return parts


def _build(model_class: Any, config: Any, *groups: dict[str, tuple[str, torch.Tensor]]) -> Any:
    weights = {k: v for group in groups for k, (_, v) in group.items()}
    names = {k: n for group in groups for k, (n, _) in group.items()}
    with torch.device("meta"):
        model = model_class(config)
    _load_strict(model, weights, names)
    return model


def convert_archive(archive: NemoArchive, output_dir: str | Path) -> dict[str, Path]:
    """Write the transformers folders of an opened archive (see `convert_nemo`)."""
    from transformers import ParakeetForCTC, ParakeetForTDT, ParakeetProcessor

    from .policies.ctc import check_ctc_model
    from .policies.transducer import check_tdt_model

    layout = nemo_layout(archive.config, archive.state_dict)
    if archive.tokenizer_bytes is None:
        raise ValueError(
            f"{archive.path} holds no SentencePiece tokenizer (*.model): only BPE (SentencePiece) NeMo models convert"
        )
    parts = _split_weights(archive.state_dict, layout)
    if layout.transducer and not parts["transducer"]:
        raise ValueError("the checkpoint's config describes a transducer but it holds no decoder/joint weights")
    output_dir = Path(output_dir)
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as scratch:
        spm_path = Path(scratch) / "tokenizer.model"
        spm_path.write_bytes(archive.tokenizer_bytes)
        tokenizers = {
            kind: build_tokenizer(spm_path, layout.labels, kind)
            for kind in (["tdt"] if layout.transducer else []) + (["ctc"] if layout.has_ctc else [])
        }
    models = {}
    if layout.transducer:
        model = _build(ParakeetForTDT, layout.tdt_config(), parts["encoder"], parts["transducer"])
        vocab, durations = model.config.vocab_size, len(model.config.durations)
        model.generation_config.decoder_start_token_id = model.config.blank_token_id
        model.generation_config.suppress_tokens = list(range(vocab, vocab + durations))
        check_tdt_model(model, tokenizers["tdt"])
        models["tdt"] = model
    if layout.has_ctc:
        model = _build(ParakeetForCTC, layout.ctc_config(), parts["encoder"], parts["ctc"])
        check_ctc_model(model, tokenizers["ctc"])
        models["ctc"] = model
    for kind, model in models.items():
        folder = output_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        model.config.name_or_path = ""
        model.save_pretrained(folder)
        processor = ParakeetProcessor(
            _feature_extractor(layout), tokenizers[kind], blank_token=BLANK, decoder_type=kind
        )
        processor.save_pretrained(folder)
        written[kind] = folder
    return written


# ---------------------------------------------------------------------------------------------------------------
# Sources: a file or a hub repository
# ---------------------------------------------------------------------------------------------------------------


def resolve_nemo_source(source: str | Path, *, revision: str | None = None, filename: str | None = None) -> Path:
    """The local path of ``source``: a ``.nemo`` file, a folder holding exactly one, or a hub repository id whose
    ``.nemo`` is downloaded (or taken from the Hugging Face cache; offline, only from there, failing at once)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.glob("*.nemo"))
        if len(found) != 1:
            raise FileNotFoundError(f"{path} holds {len(found)} .nemo files; pass the file itself")
        return found[0]
    source = str(source)
    if source.endswith(".nemo") or not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise FileNotFoundError(f"{source} is no .nemo file here and not a hub repository id (owner/name)")
    from huggingface_hub import constants, hf_hub_download, list_repo_files
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    guess = filename or f"{source.split('/')[-1]}.nemo"
    try:  # the cache first: works offline too
        return Path(hf_hub_download(source, guess, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError):
        pass
    if constants.is_offline_mode():
        raise OSError(
            f"{source}: the hub is offline here (HF_HUB_OFFLINE=1) and no {guess} of that repository is in the "
            "Hugging Face cache. Download it where the hub is reachable (hf download "
            f"{source} --include '*.nemo') and pass the .nemo file's path, or unset HF_HUB_OFFLINE"
        )
    if filename is None:
        nemo_files = [f for f in list_repo_files(source, revision=revision) if f.endswith(".nemo")]
        if not nemo_files:
            raise FileNotFoundError(f"the hub repository {source} holds no .nemo file")
        if len(nemo_files) > 1 and guess not in nemo_files:
            raise FileNotFoundError(f"{source} holds several .nemo files {nemo_files}: choose one with --filename")
        filename = guess if guess in nemo_files else nemo_files[0]
    return Path(hf_hub_download(source, filename, revision=revision))


def convert_nemo(
    source: str | Path, output_dir: str | Path, *, revision: str | None = None, filename: str | None = None
) -> dict[str, Path]:
    """Convert a NeMo Parakeet (``.nemo`` file or hub id) into transformers folders: ``{"tdt": OUTPUT_DIR/tdt}``,
    ``{"ctc": OUTPUT_DIR/ctc}`` or both for a hybrid TDT-CTC. Safetensors only. See the module docstring."""
    return convert_archive(read_nemo(resolve_nemo_source(source, revision=revision, filename=filename)), output_dir)


# ---------------------------------------------------------------------------------------------------------------
# Export: transformers weights back into a copy of the original archive
# ---------------------------------------------------------------------------------------------------------------


def load_folder_weights(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config.json, state dict)`` of a transformers model folder (single or sharded safetensors)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        if (folder / "adapter_config.json").is_file():
            raise ValueError(
                f"{folder} holds a PEFT adapter, not a model: merge it first (model.merge_and_unload()."
                "save_pretrained(...)) and export the merged folder"
            )
        raise FileNotFoundError(
            f"{folder} holds no config.json: pass a transformers model folder (e.g. OUTPUT_DIR/tdt)"
        )
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({folder / name for name in json.loads(index.read_text())["weight_map"].values()})
    if not files:
        raise FileNotFoundError(f"{folder} holds no .safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return json.loads(config_path.read_text(encoding="utf-8")), weights


_COMPARED_FIELDS = {
    "parakeet_tdt": ("vocab_size", "blank_token_id", "durations", "decoder_hidden_size", "num_decoder_layers"),
    "parakeet_ctc": ("vocab_size", "pad_token_id"),
}
_COMPARED_ENCODER_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "num_mel_bins",
    "subsampling_factor",
    "subsampling_conv_channels",
    "conv_kernel_size",
    "attention_bias",
    "convolution_bias",
    "scale_input",
)


def _check_config(config: dict[str, Any], layout: NemoLayout, folder: Path) -> str:
    """The folder's model type ("parakeet_tdt" / "parakeet_ctc") after checking it is the original's model."""
    model_type = config.get("model_type")
    if model_type not in _COMPARED_FIELDS:
        raise ValueError(f"{folder} is a {model_type!r} model: only parakeet_tdt and parakeet_ctc export to NeMo")
    if model_type == "parakeet_tdt" and not layout.transducer:
        raise ValueError(f"{folder} is a TDT model but the original .nemo is a CTC model")
    if model_type == "parakeet_ctc" and not layout.has_ctc:
        raise ValueError(f"{folder} is a CTC model but the original .nemo has no CTC head")
    reference = (layout.tdt_config() if model_type == "parakeet_tdt" else layout.ctc_config()).to_dict()
    for name in _COMPARED_FIELDS[model_type]:
        if _same(config.get(name), reference.get(name)) is False:
            raise ValueError(
                f"{folder}: config.{name} = {config.get(name)!r}, the original .nemo gives {reference[name]!r}"
            )
    encoder = config.get("encoder_config") or {}
    for name in _COMPARED_ENCODER_FIELDS:
        if _same(encoder.get(name), reference["encoder_config"].get(name)) is False:
            raise ValueError(
                f"{folder}: encoder_config.{name} = {encoder.get(name)!r}, the original .nemo gives "
                f"{reference['encoder_config'][name]!r}"
            )
    return model_type


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b


def _write_archive(original: Path, output: Path, weights_member: str, weights: dict[str, torch.Tensor]) -> None:
    with open(original, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with tempfile.TemporaryFile() as buffer:
        torch.save(weights, buffer)
        size = buffer.tell()
        buffer.seek(0)
        with tarfile.open(original, "r:*") as src, tarfile.open(output, "w:gz" if gzipped else "w") as dst:
            for member in src.getmembers():
                if member.isfile() and member.name == weights_member:
                    info = copy.copy(member)
                    info.size = size
                    dst.addfile(info, buffer)
                else:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def export_nemo(
    model_dir: str | Path,
    original_nemo: str | Path,
    output_nemo: str | Path,
    *,
    ctc_model_dir: str | Path | None = None,
) -> Path:
    """Write ``model_dir``'s weights into a copy of ``original_nemo`` at ``output_nemo`` (module docstring).

    ``model_dir``: a transformers folder converted from ``original_nemo`` (e.g. ``OUTPUT_DIR/tdt`` after RL).
    ``ctc_model_dir``: for a hybrid exported from its TDT folder, the CTC folder whose ``ctc_head`` replaces the
    hybrid's CTC head (only the head: the archive has one encoder, the TDT folder's). Every tensor of the folders
    must map to a tensor of the original with the same shape (a dtype change is cast back, with a warning)."""
    model_dir, original_nemo, output_nemo = Path(model_dir), Path(original_nemo), Path(output_nemo)
    if output_nemo.resolve() == original_nemo.resolve():
        raise ValueError("output_nemo must differ from original_nemo (the original is read while writing)")
    archive = read_nemo(original_nemo)
    layout = nemo_layout(archive.config, archive.state_dict)
    config, weights = load_folder_weights(model_dir)
    model_type = _check_config(config, layout, model_dir)
    hybrid = layout.kind == "hybrid"
    provided = {
        hf_to_nemo_key(k, hybrid=hybrid, joint_head=layout.joint_head): (model_dir, k, v) for k, v in weights.items()
    }
    if ctc_model_dir is not None:
        if not hybrid or model_type != "parakeet_tdt":
            raise ValueError("ctc_model_dir is for a hybrid TDT-CTC exported from its TDT folder")
        ctc_config, ctc_weights = load_folder_weights(ctc_model_dir)
        if _check_config(ctc_config, layout, Path(ctc_model_dir)) != "parakeet_ctc":
            raise ValueError(f"{ctc_model_dir} is not a CTC folder")
        _warn_if_encoders_differ(weights, ctc_weights, f"{ctc_model_dir}'s CTC head", f"{model_dir}'s encoder")
        for key, value in ctc_weights.items():
            if key.startswith("ctc_head."):
                provided[hf_to_nemo_key(key, hybrid=True)] = (Path(ctc_model_dir), key, value)
    parts = {"encoder"} | ({"transducer"} if model_type == "parakeet_tdt" else {"ctc"})
    if ctc_model_dir is not None:
        parts.add("ctc")
    new_state: dict[str, torch.Tensor] = {}
    for key, tensor in archive.state_dict.items():
        mapped = nemo_to_hf_key(key, transducer=layout.transducer)
        if mapped is None or mapped[0] not in parts:
            new_state[key] = tensor
            continue
        if key not in provided:
            raise ValueError(f"{model_dir} has no weight for the original's {key} (transformers {mapped[1]})")
        folder, hf_key, value = provided.pop(key)
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(
                f"{folder}'s {hf_key} has shape {tuple(value.shape)} but the original's {key} has {tuple(tensor.shape)}"
            )
        if value.dtype != tensor.dtype:
            warnings.warn(
                f"{folder}'s {hf_key} is {value.dtype}; written as the original's {tensor.dtype}", stacklevel=2
            )
            value = value.to(tensor.dtype)
        new_state[key] = value.contiguous()
    if provided:
        names = [f"{hf_key} (as {key})" for key, (_, hf_key, _) in provided.items()]
        raise ValueError(f"weights with no counterpart in the original .nemo: {names}; was it converted from it?")
    kept = {"transducer": layout.transducer, "ctc": layout.has_ctc}
    if any(present and part not in parts for part, present in kept.items()):
        old = {k: v for k, v in archive.state_dict.items() if k.startswith("encoder.")}
        new = {k: v for k, v in new_state.items() if k.startswith("encoder.")}
        other = "CTC head" if "ctc" not in parts else "TDT prediction network and joint"
        _warn_if_encoders_differ(old, new, f"the original's {other} (kept)", f"{model_dir}'s encoder")
    output_nemo.parent.mkdir(parents=True, exist_ok=True)
    _write_archive(original_nemo, output_nemo, archive.weights_member, new_state)
    return output_nemo


def _warn_if_encoders_differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], head: str, encoder: str) -> None:
    keys = [k for k in a if k.startswith("encoder.")]
    if any(k not in b or not torch.equal(a[k], b[k]) for k in keys):
        warnings.warn(
            f"{head} was trained against another encoder than {encoder} written to the archive: NeMo will run it on "
            "the new encoder's features (evaluate that decoder before serving it)",
            UserWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------------------------
# Command line: `rlnf convert-nemo` and `rlnf export-nemo`
# ---------------------------------------------------------------------------------------------------------------


def _convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlnf convert-nemo",
        description="Convert a NeMo Parakeet (.nemo file or hub id; TDT, CTC or hybrid TDT-CTC) into transformers "
        "folders: OUTPUT_DIR/tdt (ParakeetForTDT) and/or OUTPUT_DIR/ctc (ParakeetForCTC), with their processors.",
    )
    parser.add_argument("source", help="a .nemo file, or a hub repository id holding one (e.g. RobotsMali/...)")
    parser.add_argument("output_dir", help="where the tdt/ and ctc/ folders are written")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--filename", default=None, help="the .nemo file in the hub repository (default: the only one)")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlnf export-nemo",
        description="Write a (tuned) transformers Parakeet folder back into a copy of the .nemo it was converted "
        "from: its weights replace the original's, everything else in the archive is copied unchanged.",
    )
    parser.add_argument("model_dir", help="the transformers folder (e.g. OUTPUT_DIR/tdt or an RL output folder)")
    parser.add_argument("original_nemo", help="the .nemo file it was converted from")
    parser.add_argument("output_nemo", help="the .nemo file to write")
    parser.add_argument(
        "--ctc_model", default=None, help="hybrid only: a CTC folder whose head replaces the original's CTC head"
    )
    return parser


def _run(name: str, argv: Sequence[str]) -> int:
    if name == "convert-nemo":
        args = _convert_parser().parse_args(list(argv))
        written = convert_nemo(args.source, args.output_dir, revision=args.revision, filename=args.filename)
        for kind, folder in written.items():
            print(f"{kind}\t{folder}")
    else:
        args = _export_parser().parse_args(list(argv))
        print(export_nemo(args.model_dir, args.original_nemo, args.output_nemo, ctc_model_dir=args.ctc_model))
    return 0


def _guarded(name: str, argv: Sequence[str]) -> int:
    try:
        return _run(name, argv)
    except (ValueError, OSError, KeyError, ImportError) as error:
        print(f"rlnf {name}: error: {error}", file=sys.stderr)
        return 2


def convert_main(argv: Sequence[str] | None = None) -> int:
    """``rlnf convert-nemo SOURCE OUTPUT_DIR [--revision R] [--filename F]``."""
    return _guarded("convert-nemo", sys.argv[1:] if argv is None else argv)


def export_main(argv: Sequence[str] | None = None) -> int:
    """``rlnf export-nemo MODEL_DIR ORIGINAL_NEMO OUTPUT_NEMO [--ctc_model CTC_DIR]``."""
    return _guarded("export-nemo", sys.argv[1:] if argv is None else argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlnf.nemo convert-nemo ...`` / ``... export-nemo ...``: the command name first."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"convert-nemo": convert_main, "export-nemo": export_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m rlnf.nemo {convert-nemo,export-nemo} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


__all__ = [
    "NemoArchive",
    "NemoLayout",
    "check_durations",
    "convert_archive",
    "convert_main",
    "convert_nemo",
    "encoder_config",
    "export_main",
    "export_nemo",
    "feature_extractor_config",
    "hf_to_nemo_key",
    "load_folder_weights",
    "main",
    "nemo_layout",
    "nemo_to_hf_key",
    "read_nemo",
    "resolve_nemo_source",
]

if __name__ == "__main__":
    sys.exit(main())
