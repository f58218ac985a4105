"""One audio loader for every part of rlnf: whatever form a clip arrives in, out comes mono float32 at 16 kHz.

Accepted forms: a file path (anything soundfile reads), raw file bytes, a numpy array or torch tensor (with a
sampling rate, 16 kHz by default), the ``{"array", "sampling_rate"}`` and ``{"path"/"bytes"}`` dicts that
``datasets`` yields, and ``datasets``' torchcodec ``AudioDecoder`` objects. Errors name the item's index.

Rules (the same in `load_audio` and `audio_key`):

* Sampling rates are whole numbers of Hz in [``MIN_SAMPLING_RATE``, ``MAX_SAMPLING_RATE``]; ``"16k"``, 7, 0,
  negative or NaN rates are a ``ValueError`` naming the item. A dict's own ``sampling_rate`` wins; a dict whose
  ``sampling_rate`` is missing or ``None`` takes the caller's ``sampling_rate``, else 16 kHz, like a bare array.
* Integer PCM is scaled to [-1, 1): signed by ``2**(bits-1)``, unsigned (8-bit WAV is offset binary) centred
  first: ``(x - 2**(bits-1)) / 2**(bits-1)``. bfloat16 tensors are converted to float32.
* Float samples louder than ``MAX_FLOAT_PEAK`` (no real recording is; int16 values stored as floats or a gain
  bug are) are scaled to peak 1.0, so that no spectrum or normalisation later overflows float32.
* A file whose header promises more audio than it holds is an error naming the file (libsndfile would
  silently read it short).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TARGET_SAMPLING_RATE = 16_000
MIN_SAMPLING_RATE = 1_000
MAX_SAMPLING_RATE = 768_000
MAX_FLOAT_PEAK = 2.0**15

try:  # a dependency of datasets; far faster than hashlib on long clips
    import xxhash

    def _digest(buffer: Any) -> str:
        return xxhash.xxh3_128_hexdigest(buffer)

except ImportError:  # pragma: no cover - only without datasets installed

    def _digest(buffer: Any) -> str:
        return hashlib.blake2b(buffer, digest_size=16).hexdigest()


def _where(index: int | None) -> str:
    return "audio" if index is None else f"audio item {index}"


def check_sampling_rate(rate: Any, where: str = "audio") -> int:
    """``rate`` as an int, or a ``ValueError`` naming ``where`` (integral floats such as 16000.0 are accepted)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError(f"{where}: sampling rate must be a whole number of Hz, got {rate!r}")
    if not math.isfinite(rate) or rate != int(rate):
        raise ValueError(f"{where}: sampling rate must be a whole number of Hz, got {rate!r}")
    if not MIN_SAMPLING_RATE <= int(rate) <= MAX_SAMPLING_RATE:
        raise ValueError(f"{where}: sampling rate {rate!r} Hz is outside [{MIN_SAMPLING_RATE}, {MAX_SAMPLING_RATE}]")
    return int(rate)


def _source(item: Any) -> Any:
    """datasets' ``AudioDecoder`` keeps the ``{"path", "bytes"}`` it decodes in ``_hf_encoded``."""
    encoded = getattr(item, "_hf_encoded", None)
    if isinstance(encoded, dict) and (encoded.get("path") or encoded.get("bytes") is not None):
        return encoded
    return item


def clip_file_name(item: Any) -> str | None:
    """The file name of an audio item that has a path (a path, a ``{"path"}`` dict, an ``AudioDecoder``), else
    None: what names a clip to the user (row numbers change once a held-out split is carved out)."""
    item = _source(item)
    path = item if isinstance(item, (str, os.PathLike)) else (item.get("path") if isinstance(item, dict) else None)
    return os.path.basename(os.fspath(path)) if path else None


def _dict_rate(item: dict, sampling_rate: int | None, where: str) -> int:
    rate = item.get("sampling_rate")
    if rate is None:
        rate = sampling_rate if sampling_rate is not None else TARGET_SAMPLING_RATE
    return check_sampling_rate(rate, where)


# libsndfile logs "data : 32000 (should be 15978)" for a WAV/AIFF chunk longer than the file, then reads short.
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTHS = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # streaming writers leave the size open


def _read_file(source: str | os.PathLike | io.BytesIO, where: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise FileNotFoundError(f"{where}: file not found: {name!r}")
    try:
        with sf.SoundFile(source) as handle:
            frames, rate, log = handle.frames, handle.samplerate, handle.extra_info
            data = handle.read(dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt or unsupported files
        raise ValueError(f"{where}: cannot decode {name!r}: {error}") from error
    for chunk, promised, held in _SHORT_CHUNK.findall(log):
        if int(promised) not in _UNKNOWN_LENGTHS and int(held) < int(promised):
            raise ValueError(
                f"{where}: {name!r} is truncated: its header promises {promised} bytes of audio "
                f"({chunk} chunk) but the file holds {held}"
            )
    if frames > 0 and data.shape[0] < frames:
        raise ValueError(f"{where}: {name!r} is truncated: its header promises {frames} frames, read {data.shape[0]}")
    return data.T, check_sampling_rate(rate, f"{where} ({name!r})")  # channels-first


def _from_decoder(decoder: Any) -> tuple[np.ndarray, int]:
    """torchcodec ``AudioDecoder`` (what ``datasets`` 5.x yields for decoded ``Audio`` columns)."""
    samples = decoder.get_all_samples()
    return samples.data.numpy(), int(samples.sample_rate)


def _raw(item: Any, sampling_rate: int | None, where: str) -> tuple[Any, int]:
    """Split an item into (samples, rate) without converting yet."""
    item = _source(item)
    if isinstance(item, (str, os.PathLike)):
        return _read_file(item, where)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _read_file(io.BytesIO(bytes(item)), where)
    if isinstance(item, dict):
        if item.get("array") is not None:
            return item["array"], _dict_rate(item, sampling_rate, where)
        if item.get("bytes") is not None:
            return _read_file(io.BytesIO(item["bytes"]), where)
        if item.get("path") is not None:
            return _read_file(item["path"], where)
        raise ValueError(f"{where}: dict needs 'array', 'bytes' or 'path', got keys {sorted(item)}")
    if hasattr(item, "get_all_samples"):
        samples, rate = _from_decoder(item)
        return samples, check_sampling_rate(rate, where)
    if isinstance(item, (np.ndarray, list)) or type(item).__module__.startswith("torch"):
        return item, sampling_rate or TARGET_SAMPLING_RATE
    raise ValueError(
        f"{where}: unsupported type {type(item).__name__}; expected a path, bytes, an array, a tensor, "
        "a {'array', 'sampling_rate'} or {'path'/'bytes'} dict, or a torchcodec AudioDecoder"
    )


def _as_numpy(samples: Any) -> np.ndarray:
    """A numpy view of an array, tensor (bfloat16 converted: numpy has no such dtype) or list."""
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu()
        if str(samples.dtype) == "torch.bfloat16":
            samples = samples.float()
        samples = samples.numpy()
    return np.asarray(samples)


def _to_mono(samples: Any, where: str) -> np.ndarray:
    array = _as_numpy(samples)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{where}: samples must be real numbers, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"{where}: expected 1-D (mono) or 2-D (multi-channel) samples, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{where}: has 0 samples")
    if np.issubdtype(array.dtype, np.integer):  # PCM: offset binary for unsigned, then scale to [-1, 1)
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        unsigned = np.issubdtype(array.dtype, np.unsignedinteger)
        array = (array.astype(np.float64) - (half if unsigned else 0.0)) / half
    elif not np.isfinite(array).all():
        raise ValueError(f"{where}: contains NaN or infinite samples")
    if array.ndim == 2:
        # Channels are the short axis: (channels, samples) or (samples, channels).
        array = array.mean(axis=0 if array.shape[0] <= array.shape[1] else 1, dtype=np.float64)
    peak = float(np.abs(array).max())
    if peak > MAX_FLOAT_PEAK:
        logger.warning("%s: peak amplitude %.3g is far beyond [-1, 1]; scaled to peak 1.0", where, peak)
        array = array.astype(np.float64) / peak
    return array.astype(np.float32, copy=False)


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

    ``sampling_rate`` applies to bare arrays and tensors, and to dicts without a rate of their own (or with
    ``None``); files carry their own. See the module docstring for PCM, amplitude and rate rules.
    """
    where = _where(index)
    if sampling_rate is not None:
        sampling_rate = check_sampling_rate(sampling_rate, f"{where} (sampling_rate argument)")
    target = check_sampling_rate(target_sampling_rate, f"{where} (target_sampling_rate)")
    samples, rate = _raw(item, sampling_rate, where)
    return resample(_to_mono(samples, where), check_sampling_rate(rate, where), target)


def _samples_key(samples: Any, rate: int) -> tuple:
    """Shape, dtype, rate and a 128-bit hash of the contents; a singleton channel axis is dropped, so a
    ``[1, N]`` decode and its ``[N]`` array (which load identically) share a key."""
    if hasattr(samples, "detach") and str(samples.dtype) == "torch.bfloat16":
        import torch

        array, dtype = samples.detach().cpu().contiguous().view(torch.int16).numpy(), "bfloat16"
    else:
        array = _as_numpy(samples)
        dtype = array.dtype.str
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    array = np.ascontiguousarray(array)
    return ("samples", array.shape, dtype, rate, _digest(memoryview(array).cast("B")))


def _file_key(path: str | os.PathLike) -> tuple:
    real = os.path.realpath(os.fspath(path))
    try:
        stat = os.stat(real)
    except OSError:  # missing: load_audio will say so; the key still names the file
        return ("file", real, None, None)
    return ("file", real, stat.st_size, stat.st_mtime_ns)


def _path_key(path: str | os.PathLike, read_files: bool) -> tuple:
    if read_files and os.path.isfile(path):
        with open(path, "rb") as handle:
            return audio_key(handle.read())
    return _file_key(path)


def audio_key(
    item: Any, sampling_rate: int | None = None, *, index: int | None = None, read_files: bool = False
) -> tuple:
    """The identity of a clip, by what it is: rows with equal keys decode to the same waveform.

    TRL repeats each dataset row G times and a shuffled, sharded stream restarts row indices, so rlnf
    identifies clips by their content, never by row position. One rule, used by every part of rlnf:

    * a file path (or a ``{"path"}`` dict without bytes): ``("file", real path, size, mtime_ns)``;
    * file bytes (or a ``{"bytes"}`` dict: bytes win over a path, since paths stored in parquet files are
      often bare, reused names): ``("bytes", length, hash)``;
    * samples (array, tensor, list, ``{"array"}`` dict): ``("samples", shape, dtype, rate, hash)`` with the
      rate `load_audio` would use (the dict's, else ``sampling_rate``, else 16 kHz);
    * datasets' ``AudioDecoder``: the key of the source it decodes; one without a source is decoded and
      keyed by its samples.

    With ``read_files=True`` a path is keyed by its file's bytes, like file bytes: the same recording under two
    names is one clip (what a train/test leakage check needs; it reads every file once).

    Hashes are 128-bit xxh3 of the raw bytes (blake2b without xxhash). Bad rates raise like `load_audio`.
    """
    where = _where(index)
    item = _source(item)
    if isinstance(item, (str, os.PathLike)):
        return _path_key(item, read_files)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("bytes", len(item), _digest(item))
    if isinstance(item, dict):
        if item.get("array") is not None:
            return _samples_key(item["array"], _dict_rate(item, sampling_rate, where))
        if item.get("bytes") is not None:
            return audio_key(item["bytes"])
        if item.get("path"):
            return _path_key(item["path"], read_files)
        raise ValueError(f"{where}: dict needs 'array', 'bytes' or 'path', got keys {sorted(item)}")
    if hasattr(item, "get_all_samples"):
        samples, rate = _from_decoder(item)
        return _samples_key(samples, check_sampling_rate(rate, where))
    if isinstance(item, (np.ndarray, list)) or hasattr(item, "detach"):
        rate = TARGET_SAMPLING_RATE if sampling_rate is None else check_sampling_rate(sampling_rate, where)
        return _samples_key(item, rate)
    raise ValueError(f"{where}: unsupported type {type(item).__name__} for a clip identity")


def group_by_clip(items: Sequence[Any], key: Callable[[Any, int], Any] | None = None) -> tuple[list[int], list[int]]:
    """The one clip grouping of rlnf: the position of each distinct clip's first item (first-seen order) and,
    per item, the index of its clip. ``key(item, position)`` defaults to `audio_key`; an object seen before is
    not keyed again (TRL repeats the same row object G times, and keying may hash the samples)."""
    key = key or (lambda item, position: audio_key(item, index=position))
    by_key: dict[Any, int] = {}
    by_object: dict[int, int] = {}  # the items stay alive in `items`, so ids are unique here
    firsts: list[int] = []
    clip_of_item: list[int] = []
    for position, item in enumerate(items):
        clip = by_object.get(id(item))
        if clip is None:
            clip = by_key.setdefault(key(item, position), len(firsts))
            if clip == len(firsts):
                firsts.append(position)
            by_object[id(item)] = clip
        clip_of_item.append(clip)
    return firsts, clip_of_item
