"""Bambara demo corpus: the project's own sentences, synthesised with espeak-ng, as 16 kHz mono FLAC.

Why synthetic: no Bambara speech can be downloaded where rlnf is developed and tested, yet the recipes need
(audio, transcript) pairs that behave like an ASR corpus. espeak-ng has no Bambara voice; the Swahili voice
``sw`` is the closest once Bambara letters are rewritten for pronunciation only (ɛ->e, ɔ->o, ɲ->ny, ŋ->ng,
c->ch). The ``text`` column keeps real Bambara orthography.

espeak-ng is GPL-3, so it is reached only through the optional ``espeakng-loader`` package (``rlnf[demo]``),
imported inside the builder, never when ``rlnf.data`` is imported. Loading a corpus that is already built
needs only ``soundfile`` and ``datasets``.

Layout of a built corpus (one folder, created atomically)::

    corpus_info.json            build parameters and counts
    train/metadata.jsonl        one JSON object per clip: file_name, text, sentence_id, voice, ...
    train/bam0001_0.flac        ...
    validation/... test/...

``metadata.jsonl`` uses the ``file_name`` key, so ``datasets.load_dataset("audiofolder", data_dir=...)``
reads the folder too (when torchcodec is installed).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bambara_sentences import demo_sentences, sentences_by_topic

if TYPE_CHECKING:
    import datasets

__all__ = [
    "CORPUS_NAME",
    "SPLITS",
    "VOICE_VARIANTS",
    "build_demo_corpus",
    "default_corpus_dir",
    "load_demo_corpus",
    "pronunciation_text",
    "split_sentences",
]

CORPUS_NAME = "demo_corpus_v1"
SAMPLING_RATE = 16_000
SPLITS = ("train", "validation", "test")
INFO_FILE = "corpus_info.json"
# espeak-ng variants that sound like plain male/female speakers (the others are robots, whispers, ...).
VOICE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEED_RANGE = (130, 185)  # words per minute; espeak's default is 175
PITCH_RANGE = (25, 75)  # espeak's 0-100 scale; default 50
_HELD_OUT_FRACTION = 0.1  # per held-out split (validation, test)
_PRONUNCIATION = str.maketrans(
    {
        "ɛ": "e",
        "Ɛ": "E",
        "ɔ": "o",
        "Ɔ": "O",
        "ɲ": "ny",
        "Ɲ": "Ny",
        "ŋ": "ng",
        "Ŋ": "Ng",
        "c": "ch",
        "C": "Ch",
        "'": "",
    }
)
_INSTALL_HINT = "building the Bambara demo corpus needs espeak-ng: pip install 'rlnf[demo]'"


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to synthesise one clip, fixed before any audio is made (so builds are reproducible)."""

    sentence_id: str
    text: str
    topic: str
    split: str
    voice: str
    speed: int
    pitch: int
    file_name: str


def default_corpus_dir() -> Path:
    """``$RLNF_CACHE/demo_corpus_v1`` when RLNF_CACHE is set, else ``~/.cache/rlnf/demo_corpus_v1``."""
    root = os.environ.get("RLNF_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "rlnf"
    return base / CORPUS_NAME


def pronunciation_text(text: str) -> str:
    """Spell Bambara for the Swahili voice (otherwise espeak reads ɛ, ɔ, ɲ, ŋ out as letter names)."""
    return text.translate(_PRONUNCIATION)


def _rank(seed: int, sentence: str) -> str:
    return hashlib.sha1(f"{seed}|{sentence}".encode()).hexdigest()


def split_sentences(
    sentences: Sequence[str], *, seed: int = 0, max_sentences: int | None = None
) -> dict[str, list[str]]:
    """Assign each sentence to exactly one split, so no sentence is heard in training and evaluation.

    Order comes from a hash of (seed, sentence), not from a random generator, so the assignment is stable
    across machines and library versions. ``max_sentences`` keeps a prefix of that order (small builds for
    tests still get every split once there are three or more sentences).
    """
    ordered = sorted(dict.fromkeys(sentences), key=lambda s: _rank(seed, s))
    if max_sentences is not None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        ordered = ordered[:max_sentences]
    n = len(ordered)
    held = max(1, round(_HELD_OUT_FRACTION * n)) if n >= 3 else 0
    return {"test": ordered[:held], "validation": ordered[held : 2 * held], "train": ordered[2 * held :]}


def _plan(voices_per_sentence: int, seed: int, max_sentences: int | None) -> list[ClipPlan]:
    """Voice, speed and pitch per clip, drawn from a generator keyed on (seed, sentence id)."""
    if not 1 <= voices_per_sentence <= len(VOICE_VARIANTS):
        raise ValueError(
            f"voices_per_sentence must be in 1..{len(VOICE_VARIANTS)}, got {voices_per_sentence}"
        )
    all_sentences = demo_sentences()
    ids = {s: f"bam{i:04d}" for i, s in enumerate(all_sentences)}
    topics = {s: topic for topic, group in sentences_by_topic().items() for s in group}
    plans = []
    for split, group in split_sentences(all_sentences, seed=seed, max_sentences=max_sentences).items():
        for sentence in sorted(group, key=ids.__getitem__):
            sid = ids[sentence]
            rng = np.random.default_rng([seed, int(sid[3:])])
            variants = rng.choice(len(VOICE_VARIANTS), size=voices_per_sentence, replace=False)
            for k, variant in enumerate(variants):
                plans.append(
                    ClipPlan(
                        sentence_id=sid, text=sentence, topic=topics[sentence], split=split,
                        voice=f"sw+{VOICE_VARIANTS[variant]}",
                        speed=int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                        file_name=f"{sid}_{k}.flac",
                    )
                )  # fmt: skip
    return plans


class _Espeak:
    """Minimal ctypes binding of libespeak-ng (synchronous mode: samples arrive through a callback).

    Reproducibility: texts, voices, speeds and pitches are fixed by the seed, but the audio is not bit-exact
    across builds. libespeak-ng carries state between utterances (the phase of its pitch "flutter", a static
    no API resets) and reads some uninitialised memory, so a clip can come out a few milliseconds longer or
    shorter depending on what was synthesised before it. Reloading the library for every clip removes the
    first effect but not the second and makes the build ~3x slower, so the library is loaded once.
    """

    _AUDIO_OUTPUT_SYNCHRONOUS = 2
    _INITIALIZE_DONT_EXIT = 0x8000
    _RATE, _PITCH = 1, 3
    _POS_CHARACTER = 1
    _CHARS_UTF8 = 1

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise ImportError(_INSTALL_HINT) from error
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data_path = espeakng_loader.get_data_path().encode()
        self.sampling_rate = lib.espeak_Initialize(
            self._AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, self._INITIALIZE_DONT_EXIT
        )
        if self.sampling_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise (data path {data_path.decode()})")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )
        self._callback = callback_type(self._collect)  # keep a reference: espeak holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _collect(self, wav: Any, num_samples: int, events: Any) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        """int16 samples at ``self.sampling_rate`` (22050 Hz for espeak-ng)."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(self._RATE, speed, 0)
        self._lib.espeak_SetParameter(self._PITCH, pitch, 0)
        data = text.encode() + b"\0"
        self._chunks = []
        status = self._lib.espeak_Synth(
            data, len(data), 0, self._POS_CHARACTER, 0, self._CHARS_UTF8, None, None
        )
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} (status {status})")
        return np.concatenate(self._chunks)


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()  # libespeak-ng has process-wide state: one synthesis at a time


def _engine() -> _Espeak:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def _trim_silence(audio: np.ndarray, threshold: float = 1e-3, margin: int = 1600) -> np.ndarray:
    """Cut espeak's leading/trailing silence down to 0.1 s, which keeps files small and durations honest."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    return audio[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def _synthesize_clip(plan: ClipPlan) -> np.ndarray:
    """float32 mono at 16 kHz, peak-normalised to 0.9."""
    from scipy.signal import resample_poly

    with _ENGINE_LOCK:
        engine = _engine()
        raw = engine.synthesize(pronunciation_text(plan.text), plan.voice, plan.speed, plan.pitch)
        source_rate = engine.sampling_rate
    gcd = np.gcd(SAMPLING_RATE, source_rate)
    audio = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLING_RATE // gcd, source_rate // gcd)
    audio = _trim_silence(audio.astype(np.float32))
    peak = float(np.abs(audio).max())
    return (audio * (0.9 / peak) if peak > 0 else audio).astype(np.float32)


def _write_corpus(folder: Path, plans: list[ClipPlan]) -> dict[str, int]:
    import soundfile as sf

    counts = {}
    for split in SPLITS:
        (folder / split).mkdir(parents=True)
        rows = []
        for plan in (p for p in plans if p.split == split):
            audio = _synthesize_clip(plan)
            encoded = io.BytesIO()  # in memory: writing to a file makes libsndfile fsync every clip
            sf.write(encoded, audio, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
            (folder / split / plan.file_name).write_bytes(encoded.getvalue())
            row = {k: v for k, v in asdict(plan).items() if k != "split"}
            rows.append({**row, "duration": round(len(audio) / SAMPLING_RATE, 4)})
        with open(folder / split / "metadata.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        counts[split] = len(rows)
    return counts


def _read_info(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished build into place with renames, so ``target`` is always absent or complete."""
    trash = None
    if target.exists() and overwrite:
        trash = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        target.rename(trash)
    elif target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder the user made for us
    try:
        tmp.rename(target)
    except OSError:
        if _read_info(target) is None:  # not a concurrent build that finished first
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if trash is not None and trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    elif trash is not None:
        trash.unlink()


def build_demo_corpus(
    output_dir: str | os.PathLike | None = None,
    *,
    voices_per_sentence: int = 2,
    seed: int = 0,
    overwrite: bool = False,
    max_sentences: int | None = None,
) -> Path:
    """Synthesise the corpus once and return its folder; later calls with the same parameters return at once.

    ``max_sentences`` keeps only that many sentences (for quick tests). A folder holding a corpus built with
    other parameters (or anything else) is never silently replaced: pass ``overwrite=True``. The build goes
    to a temporary sibling folder that is renamed into place only when complete.
    """
    target = Path(output_dir).expanduser() if output_dir is not None else default_corpus_dir()
    params = {"voices_per_sentence": voices_per_sentence, "seed": seed, "max_sentences": max_sentences}
    info = _read_info(target)
    if info is not None and not overwrite:
        if info.get("params") == params:
            return target
        raise FileExistsError(f"{target} holds a demo corpus built with {info.get('params')}, not {params}; "
                              "pass overwrite=True or another output_dir")  # fmt: skip
    if info is None and target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"{target} exists and is not a demo corpus; pass overwrite=True or another output_dir"
        )
    plans = _plan(voices_per_sentence, seed, max_sentences)
    with _ENGINE_LOCK:
        _engine()  # fail with the install hint before creating any folder
    print(
        f"rlnf: building the Bambara demo corpus ({len(plans)} clips) in {target} ...",
        file=sys.stderr,
        flush=True,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        start = time.perf_counter()
        counts = _write_corpus(tmp, plans)
        info = {
            "name": CORPUS_NAME, "params": params, "sampling_rate": SAMPLING_RATE, "clips": counts,
            "sentences": len({p.sentence_id for p in plans}), "build_seconds": round(time.perf_counter() - start, 2),
            "synthesizer": "espeak-ng (GPL-3) via espeakng-loader, Swahili voice on respelled Bambara",
        }  # fmt: skip
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _load_split(folder: Path, split: str, embed_audio: bool) -> datasets.Dataset:
    import datasets

    with open(folder / split / "metadata.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    columns: dict[str, list[Any]] = {
        "audio": [
            {"bytes": (folder / split / r["file_name"]).read_bytes() if embed_audio else None,
             "path": str(folder / split / r["file_name"])}
            for r in rows
        ],
    }  # fmt: skip
    for key in ("text", "duration", "voice", "sentence_id", "topic", "speed", "pitch"):
        columns[key] = [r[key] for r in rows]
    features = datasets.Features(
        {
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "text": datasets.Value("string"), "duration": datasets.Value("float64"),
            "voice": datasets.Value("string"), "sentence_id": datasets.Value("string"),
            "topic": datasets.Value("string"), "speed": datasets.Value("int32"), "pitch": datasets.Value("int32"),
        }
    )  # fmt: skip
    # Built as a plain struct and then cast: encoding straight into Audio would need torchcodec.
    dataset = datasets.Dataset.from_dict(columns, features=features)
    return dataset.cast_column("audio", datasets.Audio(sampling_rate=SAMPLING_RATE, decode=False))


def load_demo_corpus(
    split: str | None = None, *, cache_dir: str | os.PathLike | None = None, embed_audio: bool = False
) -> datasets.DatasetDict | datasets.Dataset:
    """The demo corpus as ``datasets`` objects, building it on first use.

    ``audio`` is an ``Audio(sampling_rate=16000, decode=False)`` column of ``{"path", "bytes"}`` dicts (no
    torchcodec needed; ``rlnf.audio.load_audio`` decodes them). ``bytes`` is None unless ``embed_audio``
    (embed when the rows must outlive the cache folder, e.g. before ``save_to_disk``).
    """
    import datasets

    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_corpus_dir()
    if _read_info(folder) is None:
        build_demo_corpus(folder)
    if split is not None:
        return _load_split(folder, split, embed_audio)
    return datasets.DatasetDict({name: _load_split(folder, name, embed_audio) for name in SPLITS})
