"""Bambara demo corpus v2: a compositional grammar, synthesised with espeak-ng in two acoustic domains.

Why synthetic: no Bambara speech can be downloaded where rlnf is developed and tested, yet the recipes need
(audio, transcript) pairs that behave like an ASR corpus. Sentences come from the project's own grammar
(`rlnf.data.bambara_grammar`: thousands of distinct sentences over several hundred words). espeak-ng has no
Bambara voice; the Swahili voice ``sw`` is the closest once Bambara letters are rewritten for pronunciation
only (ɛ->e, ɔ->o, ɲ->ny, ŋ->ng, c->ch). The ``text`` column keeps real Bambara orthography.

Two acoustic domains, as in real use:

- **source** (``sft_train``, ``sft_validation``): voice variants :data:`SOURCE_VOICES`, moderate speed and
  pitch, clean. The SFT policy and the reward model are trained here.
- **target** (``rl_train``, ``test``): other voice variants, faster speech, pitch pushed low or high, and
  degraded signal (additive coloured noise at 28-36 dB SNR, telephone band-pass on 10 % of clips), drawn
  deterministically per clip. ``rl_train`` is spoken by speakers :data:`TARGET_RL_VOICES` (T1), ``test`` by
  :data:`TARGET_TEST_VOICES` (T2): held-out sentences *and* held-out speakers. ``rl_train`` keeps its
  transcripts in ``text``, but reference-free RL must not read them.

Every sentence is in exactly one split (split by sentence), and every word of a test sentence occurs in
``sft_train``: test sentences are new combinations of known words.

espeak-ng is GPL-3, so it is reached only through the optional ``espeakng-loader`` package (``rlnf[demo]``),
imported inside the builder, never when ``rlnf.data`` is imported. Loading a corpus that is already built
needs only ``soundfile`` and ``datasets``.

Layout of a built corpus (one folder, created atomically)::

    corpus_info.json            build parameters and counts (clips, hours, sentences, lexicon per split/domain)
    sft_train/metadata.jsonl    one JSON object per clip: file_name, text, sentence_id, speaker, domain, ...
    sft_train/s00001_0.flac     ...
    sft_validation/... rl_train/... test/...

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bambara_grammar import generate_sentences, lexicon_words
from .channel import add_coloured_noise, band_pass

if TYPE_CHECKING:
    import datasets

__all__ = [
    "CORPUS_NAME",
    "DOMAINS",
    "SOURCE_VOICES",
    "SPLITS",
    "SPLIT_DOMAIN",
    "TARGET_RL_VOICES",
    "TARGET_TEST_VOICES",
    "build_demo_corpus",
    "default_corpus_dir",
    "degrade",
    "load_demo_corpus",
    "pronunciation_text",
    "split_sentences",
]

CORPUS_NAME = "demo_corpus_v2.1"
SAMPLING_RATE = 16_000
SPLITS = ("sft_train", "sft_validation", "rl_train", "test")
DOMAINS = ("source", "target")
SPLIT_DOMAIN = {"sft_train": "source", "sft_validation": "source", "rl_train": "target", "test": "target"}
INFO_FILE = "corpus_info.json"
DEFAULT_SENTENCES = 6000
# Fractions of the sentences held out per split (the rest is sft_train): 300 / 1000 / 300 of 6000.
_HELD_OUT = {"test": 0.05, "rl_train": 1 / 6, "sft_validation": 0.05}
# espeak-ng variants (of the Swahili voice) that sound like plain speakers, in three disjoint groups.
SOURCE_VOICES = ("m1", "m2", "m3", "m4", "f1", "f2", "f3")
TARGET_RL_VOICES = ("m5", "m7", "f4", "linda")  # speakers T1
TARGET_TEST_VOICES = ("m6", "f5", "john", "belinda")  # speakers T2
SOURCE_SPEED, SOURCE_PITCH = (135, 175), (35, 65)  # words per minute (espeak default 175); pitch 0-100 (50)
TARGET_SPEED = (165, 200)
TARGET_PITCH = ((25, 34), (66, 75))  # low or high, never the source's middle band
TARGET_SNR_DB = (28.0, 36.0)
TELEPHONE_BAND = (300.0, 3400.0)
TELEPHONE_FRACTION = 0.1
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
    """Everything needed to make one clip, fixed before any audio is made (so builds are reproducible)."""

    sentence_id: str
    text: str
    topic: str
    split: str
    domain: str
    speaker: str
    voice: str
    speed: int
    pitch: int
    telephone: bool
    snr_db: float | None
    noise_seed: int
    file_name: str


def default_corpus_dir() -> Path:
    """``$RLNF_CACHE/demo_corpus_v2`` when RLNF_CACHE is set, else ``~/.cache/rlnf/demo_corpus_v2``."""
    root = os.environ.get("RLNF_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "rlnf"
    return base / CORPUS_NAME


def pronunciation_text(text: str) -> str:
    """Spell Bambara for the Swahili voice (otherwise espeak reads ɛ, ɔ, ɲ, ŋ out as letter names)."""
    return text.translate(_PRONUNCIATION)


def _rank(seed: int, sentence: str) -> str:
    return hashlib.sha1(f"{seed}|{sentence}".encode()).hexdigest()


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")}


def split_sentences(sentences: list[str], *, seed: int = 0) -> dict[str, list[str]]:
    """Assign each sentence to exactly one split (order from a hash of (seed, sentence)).

    Held-out splits take :data:`_HELD_OUT` fractions; a test candidate with a word that ``sft_train`` never
    says goes to ``sft_train`` instead, so test sentences are new combinations of words the policy can know
    (the full build has enough candidates; a tiny test build fills up with the others).
    """
    ordered = sorted(dict.fromkeys(sentences), key=lambda s: _rank(seed, s))
    n = len(ordered)
    sizes = {k: max(1, round(f * n)) if n >= 8 else (1 if n >= 4 else 0) for k, f in _HELD_OUT.items()}
    # Test candidates: twice the test size, so enough remain after dropping those with unknown words.
    pool = ordered[: 2 * sizes["test"]]
    out: dict[str, list[str]] = {}
    start = len(pool)
    for name in ("rl_train", "sft_validation"):
        out[name] = ordered[start : start + sizes[name]]
        start += sizes[name]
    rest = ordered[start:]
    known = set().union(*(_words(s) for s in rest)) if rest else set()
    eligible = [s for s in pool if _words(s) <= known]
    # Tiny test builds may not have enough: fill up with the other candidates (still disjoint by sentence).
    out["test"] = (eligible + [s for s in pool if s not in set(eligible)])[: sizes["test"]]
    chosen = set(out["test"])
    out["sft_train"] = rest + [s for s in pool if s not in chosen]
    return {name: out[name] for name in SPLITS}


def _plan(seed: int, sentences: int, voices_per_sentence: int) -> list[ClipPlan]:
    """Speaker, speed, pitch and degradation per clip, drawn from a generator keyed on (seed, sentence)."""
    if voices_per_sentence < 1:
        raise ValueError(f"voices_per_sentence must be >= 1, got {voices_per_sentence}")
    items = generate_sentences(sentences, seed=seed, with_templates=True)
    ids = {s: i for i, (s, _) in enumerate(items)}
    topics = dict(items)
    plans = []
    for split, group in split_sentences([s for s, _ in items], seed=seed).items():
        domain = SPLIT_DOMAIN[split]
        voices = {"sft_train": SOURCE_VOICES, "sft_validation": SOURCE_VOICES, "rl_train": TARGET_RL_VOICES,
                  "test": TARGET_TEST_VOICES}[split]  # fmt: skip
        # Extra voices per sentence only for training splits: held-out splits stay one clip per sentence.
        per_sentence = min(voices_per_sentence, len(voices)) if split == "sft_train" else 1
        for sentence in sorted(group, key=ids.__getitem__):
            index = ids[sentence]
            rng = np.random.default_rng([seed, index, 2])
            chosen = rng.choice(len(voices), size=per_sentence, replace=False)
            for k, v in enumerate(chosen):
                if domain == "source":
                    speed = int(rng.integers(SOURCE_SPEED[0], SOURCE_SPEED[1] + 1))
                    pitch = int(rng.integers(SOURCE_PITCH[0], SOURCE_PITCH[1] + 1))
                    telephone, snr = False, None
                else:
                    speed = int(rng.integers(TARGET_SPEED[0], TARGET_SPEED[1] + 1))
                    band = TARGET_PITCH[int(rng.integers(2))]
                    pitch = int(rng.integers(band[0], band[1] + 1))
                    telephone = bool(rng.random() < TELEPHONE_FRACTION)
                    snr = round(float(rng.uniform(*TARGET_SNR_DB)), 2)
                plans.append(
                    ClipPlan(
                        sentence_id=f"s{index:05d}", text=sentence, topic=topics[sentence], split=split,
                        domain=domain, speaker=voices[v], voice=f"sw+{voices[v]}", speed=speed, pitch=pitch,
                        telephone=telephone, snr_db=snr, noise_seed=int(rng.integers(2**31)),
                        file_name=f"s{index:05d}_{k}.flac",
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
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
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
        status = self._lib.espeak_Synth(data, len(data), 0, self._POS_CHARACTER, 0, self._CHARS_UTF8, None, None)
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


def degrade(audio: np.ndarray, *, telephone: bool, snr_db: float | None, seed: int) -> np.ndarray:
    """The target domain's channel: optional telephone band-pass, then coloured noise at ``snr_db``.

    Deterministic given ``seed``; the noise is white noise through a one-pole low-pass (more energy low, as
    room and line noise have), scaled to the requested signal-to-noise ratio of the (filtered) speech.
    """
    out = audio.astype(np.float64)
    if telephone:
        out = band_pass(out, TELEPHONE_BAND, SAMPLING_RATE, zero_phase=True)
    if snr_db is not None:
        out = add_coloured_noise(out, snr_db, np.random.default_rng(seed), pole=0.7)
    return out.astype(np.float32)


def _clean_clip(plan: ClipPlan) -> np.ndarray:
    """float32 mono at 16 kHz, silence trimmed, before any degradation."""
    from scipy.signal import resample_poly

    with _ENGINE_LOCK:
        engine = _engine()
        raw = engine.synthesize(pronunciation_text(plan.text), plan.voice, plan.speed, plan.pitch)
        source_rate = engine.sampling_rate
    gcd = np.gcd(SAMPLING_RATE, source_rate)
    audio = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLING_RATE // gcd, source_rate // gcd)
    return _trim_silence(audio.astype(np.float32))


def _synthesize_clip(plan: ClipPlan) -> np.ndarray:
    """The clip as stored: clean (source) or degraded (target), peak-normalised to 0.9."""
    audio = _clean_clip(plan)
    if plan.domain == "target":
        audio = degrade(audio, telephone=plan.telephone, snr_db=plan.snr_db, seed=plan.noise_seed)
    peak = float(np.abs(audio).max())
    return (audio * (0.9 / peak) if peak > 0 else audio).astype(np.float32)


def _encode(plan: ClipPlan) -> tuple[bytes, float]:
    import soundfile as sf

    audio = _synthesize_clip(plan)
    encoded = io.BytesIO()  # in memory: writing to a file makes libsndfile fsync every clip
    sf.write(encoded, audio, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    return encoded.getvalue(), round(len(audio) / SAMPLING_RATE, 4)


def _write_corpus(folder: Path, plans: list[ClipPlan], workers: int) -> dict[str, list[dict]]:
    """Synthesis is serialised (espeak has global state); resampling, filtering and FLAC run in threads."""
    rows: dict[str, list[dict]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for split in SPLITS:
            (folder / split).mkdir(parents=True)
            group = [p for p in plans if p.split == split]
            rows[split] = []
            for plan, (data, duration) in zip(group, pool.map(_encode, group)):
                (folder / split / plan.file_name).write_bytes(data)
                row = {k: v for k, v in asdict(plan).items() if k not in ("split", "noise_seed")}
                rows[split].append({**row, "duration": duration})
            with open(folder / split / "metadata.jsonl", "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[split])
    return rows


def _summary(rows: list[dict]) -> dict[str, Any]:
    words = set().union(*(_words(r["text"]) for r in rows)) if rows else set()
    return {
        "clips": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
        "sentences": len({r["sentence_id"] for r in rows}), "lexicon": len(words),
        "speakers": sorted({r["speaker"] for r in rows}),
    }  # fmt: skip


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
    sentences: int = DEFAULT_SENTENCES,
    voices_per_sentence: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    max_sentences: int | None = None,
    workers: int = 2,
) -> Path:
    """Synthesise the corpus once and return its folder; later calls with the same parameters return at once.

    ``sentences`` distinct grammar sentences are split by sentence (see `split_sentences`);
    ``max_sentences`` (for quick tests) replaces that number. ``voices_per_sentence`` > 1 gives each
    ``sft_train`` sentence that many source speakers. A folder holding a corpus built with other parameters
    (or anything else) is never silently replaced: pass ``overwrite=True``. The build goes to a temporary
    sibling folder that is renamed into place only when complete.
    """
    if max_sentences is not None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        sentences = max_sentences
    target = Path(output_dir).expanduser() if output_dir is not None else default_corpus_dir()
    params = {"sentences": sentences, "voices_per_sentence": voices_per_sentence, "seed": seed}
    info = _read_info(target)
    if info is not None and not overwrite:
        if info.get("params") == params:
            return target
        raise FileExistsError(f"{target} holds a demo corpus built with {info.get('params')}, not {params}; "
                              "pass overwrite=True or another output_dir")  # fmt: skip
    if info is None and target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not a demo corpus; pass overwrite=True or another output_dir")
    plans = _plan(seed, sentences, voices_per_sentence)
    with _ENGINE_LOCK:
        _engine()  # fail with the install hint before creating any folder
    print(
        f"rlnf: building the Bambara demo corpus v2 ({len(plans)} clips) in {target} ...",
        file=sys.stderr,
        flush=True,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        start = time.perf_counter()
        rows = _write_corpus(tmp, plans, workers)
        by_domain = {d: [r for s in SPLITS if SPLIT_DOMAIN[s] == d for r in rows[s]] for d in DOMAINS}
        info = {
            "name": CORPUS_NAME, "params": params, "sampling_rate": SAMPLING_RATE,
            "clips": {s: len(rows[s]) for s in SPLITS},
            "splits": {s: {"domain": SPLIT_DOMAIN[s], **_summary(rows[s])} for s in SPLITS},
            "domains": {d: _summary(by_domain[d]) for d in DOMAINS},
            "total": _summary([r for s in SPLITS for r in rows[s]]),
            "grammar_lexicon": len(lexicon_words()),
            "sentences": len({p.sentence_id for p in plans}),
            "build_seconds": round(time.perf_counter() - start, 2),
            "domains_design": {
                "source": {"voices": list(SOURCE_VOICES), "speed": SOURCE_SPEED, "pitch": SOURCE_PITCH, "channel": "clean"},
                "target": {"rl_train_voices": list(TARGET_RL_VOICES), "test_voices": list(TARGET_TEST_VOICES),
                           "speed": TARGET_SPEED, "pitch": TARGET_PITCH, "snr_db": TARGET_SNR_DB,
                           "telephone_band_hz": TELEPHONE_BAND, "telephone_fraction": TELEPHONE_FRACTION},
            },
            "synthesizer": "espeak-ng (GPL-3) via espeakng-loader, Swahili voice on respelled Bambara",
        }  # fmt: skip
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


_STRING_COLUMNS = ("text", "sentence_id", "speaker", "domain", "voice", "topic")


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
    for key in (*_STRING_COLUMNS, "duration", "speed", "pitch", "telephone", "snr_db"):
        columns[key] = [r[key] for r in rows]
    features = datasets.Features(
        {
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            **{key: datasets.Value("string") for key in _STRING_COLUMNS},
            "duration": datasets.Value("float64"), "speed": datasets.Value("int32"), "pitch": datasets.Value("int32"),
            "telephone": datasets.Value("bool"), "snr_db": datasets.Value("float64"),
        }
    )  # fmt: skip
    # Built as a plain struct and then cast: encoding straight into Audio would need torchcodec.
    dataset = datasets.Dataset.from_dict(columns, features=features)
    return dataset.cast_column("audio", datasets.Audio(sampling_rate=SAMPLING_RATE, decode=False))


def load_demo_corpus(
    split: str | None = None, *, cache_dir: str | os.PathLike | None = None, embed_audio: bool = False
) -> datasets.DatasetDict | datasets.Dataset:
    """The demo corpus v2 as ``datasets`` objects (splits :data:`SPLITS`), building it on first use.

    ``audio`` is an ``Audio(sampling_rate=16000, decode=False)`` column of ``{"path", "bytes"}`` dicts (no
    torchcodec needed; ``rlnf.audio.load_audio`` decodes them). ``bytes`` is None unless ``embed_audio``
    (embed when the rows must outlive the cache folder, e.g. before ``save_to_disk``). ``rl_train`` carries
    its transcripts in ``text``; reference-free training must drop that column before use.
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
