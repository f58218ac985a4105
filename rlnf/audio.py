"""One audio loader for every part of rlnf: whatever form a clip arrives in, out comes mono float32 at 16 kHz.

Accepted forms: a file path (anything soundfile reads), raw file bytes, a numpy array or torch tensor (with a
sampling rate, 16 kHz by default), the ``{"array", "sampling_rate"}`` and ``{"path"/"bytes"}`` dicts that
``datasets`` yields, and ``datasets``' torchcodec ``AudioDecoder`` objects. Errors name the item's index.
"""

from __future__ import annotations

import io
import math
import os
from fractions import Fraction
from typing import Any

import numpy as np

TARGET_SAMPLING_RATE = 16_000


def _where(index: int | None) -> str:
    return "audio" if index is None else f"audio item {index}"


def _read_file(source: str | os.PathLike | io.BytesIO, where: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise FileNotFoundError(f"{where}: file not found: {os.fspath(source)!r}")
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt or unsupported files
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"
        raise ValueError(f"{where}: cannot decode {name!r}: {error}") from error
    return data.T, int(rate)  # channels-first


def _from_decoder(decoder: Any) -> tuple[np.ndarray, int]:
    """torchcodec ``AudioDecoder`` (what ``datasets`` 5.x yields for decoded ``Audio`` columns)."""
    samples = decoder.get_all_samples()
    return samples.data.numpy(), int(samples.sample_rate)


def _raw(item: Any, sampling_rate: int | None, where: str) -> tuple[Any, int]:
    """Split an item into (samples, rate) without converting yet."""
    if isinstance(item, (str, os.PathLike)):
        return _read_file(item, where)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _read_file(io.BytesIO(bytes(item)), where)
    if isinstance(item, dict):
        if item.get("array") is not None:
            rate = item.get("sampling_rate", sampling_rate)
            return item["array"], int(rate) if rate is not None else TARGET_SAMPLING_RATE
        if item.get("bytes") is not None:
            return _read_file(io.BytesIO(item["bytes"]), where)
        if item.get("path") is not None:
            return _read_file(item["path"], where)
        raise ValueError(f"{where}: dict needs 'array', 'bytes' or 'path', got keys {sorted(item)}")
    if hasattr(item, "get_all_samples"):
        return _from_decoder(item)
    if isinstance(item, np.ndarray) or type(item).__module__.startswith("torch"):
        return item, sampling_rate or TARGET_SAMPLING_RATE
    raise ValueError(
        f"{where}: unsupported type {type(item).__name__}; expected a path, bytes, an array, a tensor, "
        "a {'array', 'sampling_rate'} or {'path'/'bytes'} dict, or a torchcodec AudioDecoder"
    )


def _to_mono(samples: Any, where: str) -> np.ndarray:
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu().numpy()
    array = np.asarray(samples)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{where}: samples must be real numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):  # PCM: scale to [-1, 1]
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    if array.ndim == 2:
        # Channels are the short axis: (channels, samples) or (samples, channels).
        array = array.mean(axis=0 if array.shape[0] <= array.shape[1] else 1)
    elif array.ndim != 1:
        raise ValueError(f"{where}: expected 1-D (mono) or 2-D (multi-channel) samples, got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    if array.size == 0:
        raise ValueError(f"{where}: has 0 samples")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: contains NaN or infinite samples")
    return array


def resample(array: np.ndarray, orig_rate: int, target_rate: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Polyphase resampling (anti-aliased), exact for any rational ratio."""
    if orig_rate == target_rate:
        return array
    from scipy.signal import resample_poly

    ratio = Fraction(target_rate, orig_rate)
    return resample_poly(array, ratio.numerator, ratio.denominator).astype(np.float32)


def load_audio(
    item: Any,
    sampling_rate: int | None = None,
    *,
    index: int | None = None,
    target_sampling_rate: int = TARGET_SAMPLING_RATE,
) -> np.ndarray:
    """Return ``item`` as mono float32 samples at ``target_sampling_rate``.

    ``sampling_rate`` applies to bare arrays and tensors (and dicts without one); files carry their own.
    """
    where = _where(index)
    if sampling_rate is not None and (not isinstance(sampling_rate, int) or sampling_rate <= 0):
        raise ValueError(f"{where}: sampling_rate must be a positive int, got {sampling_rate!r}")
    samples, rate = _raw(item, sampling_rate, where)
    if rate <= 0 or not math.isfinite(rate):
        raise ValueError(f"{where}: invalid sampling rate {rate}")
    return resample(_to_mono(samples, where), rate, target_sampling_rate)


def audio_key(item: Any) -> Any:
    """A cheap identity for de-duplicating clips: paths by name, everything else by content hash.

    TRL repeats each dataset row G times, so the same clip arrives G times in one reward call.
    """
    import hashlib

    encoded = getattr(item, "_hf_encoded", None)  # datasets' AudioDecoder keeps the source it decodes
    if isinstance(encoded, dict):
        item = encoded
    if isinstance(item, (str, os.PathLike)):
        return ("path", os.fspath(item))
    if isinstance(item, dict):
        if item.get("path") and item.get("bytes") is None and item.get("array") is None:
            return ("path", os.fspath(item["path"]))
        payload = item.get("bytes") if item.get("bytes") is not None else item.get("array")
        return ("dict", audio_key(payload), item.get("sampling_rate"))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("bytes", hashlib.blake2b(bytes(item), digest_size=16).hexdigest())
    if hasattr(item, "detach"):
        item = item.detach().cpu().numpy()
    if isinstance(item, np.ndarray):
        array = np.ascontiguousarray(item)
        return ("array", array.shape, str(array.dtype), hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest())
    if isinstance(item, list):
        return audio_key(np.asarray(item))
    return ("object", id(item))
