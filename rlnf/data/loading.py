"""One way for recipes to load (audio, text) datasets: the demo corpus, a hub id, a local folder or a file,
and to get a (train, held-out) pair from it even when the data has one split.

Audio columns are kept undecoded (``Audio(decode=False)``: ``{"path", "bytes"}`` dicts) so nothing needs
torchcodec; `rlnf.audio.load_audio` (soundfile) decodes them where they are used. datasets' ``audiofolder``
builder needs torchcodec (with FFmpeg) even to list files, so without a working torchcodec an audiofolder is
read from its ``metadata.csv``/``metadata.jsonl`` with datasets' CSV/JSON builders instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEMO = "demo"
_FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_METADATA = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
_SPLIT_DIRS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "eval": "validation",
}
TORCHCODEC_HINT = (
    "decoding audio inside datasets needs torchcodec with FFmpeg: `pip install 'rlnf[audio]'` and FFmpeg "
    "(`apt-get install ffmpeg`, `conda install ffmpeg` or `brew install ffmpeg`); or give rlnf a CSV/JSONL file "
    "of audio paths, which it reads with soundfile"
)
logger = logging.getLogger(__name__)


def column_names(dataset_or_columns: Any) -> list[str] | None:
    """The columns of a ``Dataset``/``IterableDataset``, a row dict, a list of row dicts (those every row has)
    or a list of names; ``None`` when they are unknown (an ``IterableDataset`` without features)."""
    if hasattr(dataset_or_columns, "column_names"):
        names = dataset_or_columns.column_names
        return None if names is None else list(names)
    if isinstance(dataset_or_columns, dict):
        return list(dataset_or_columns)
    items = list(dataset_or_columns) if isinstance(dataset_or_columns, (list, tuple)) else None
    if items and all(isinstance(item, dict) for item in items):
        return [name for name in items[0] if all(name in item for item in items[1:])]
    if items is not None and all(isinstance(item, str) for item in items):
        return items
    kind = type(dataset_or_columns).__name__
    raise TypeError(f"check_columns: expected a dataset, a row dict or column names, got {kind}")


def check_columns(
    dataset_or_columns: Any,
    required: Sequence[str | None] | Mapping[str | None, str],
    *,
    where: str = "dataset",
    hint: str | None = None,
    hidden: Collection[str] = (),
) -> None:
    """Fail before any work when a needed column is missing; the one column check of rlnf.

    Args:
        dataset_or_columns: anything `column_names` reads. Unknown columns (an ``IterableDataset`` without
            features) are not checked here: the first batch is.
        required: column names, or ``{column: the option that names it}`` so the message says what to change;
            ``None`` names (an optional column switched off) are skipped.
        where: what is checked, first in the message (``"train_dataset"``, ``"dataset 'x' split 'test'"``).
        hint: a sentence appended to the message.
        hidden: internal columns left out of the listing.

    The message is exactly ``"{where} has no column 'audio' (audio_column); its columns are ['a', 'b']"``
    (``no columns 'a', 'b'`` for several; the ``(option)`` part only with a mapping), then ``". {hint}"``.
    """
    present = column_names(dataset_or_columns)
    if present is None:
        return
    options = required if isinstance(required, Mapping) else dict.fromkeys(required)
    missing = [name for name in options if name is not None and name not in present]
    if not missing:
        return
    named = ", ".join(f"{name!r}" + (f" ({options[name]})" if options[name] else "") for name in missing)
    shown = sorted(name for name in present if name not in hidden)
    message = f"{where} has no column{'s' if len(missing) > 1 else ''} {named}; its columns are {shown}"
    raise ValueError(message + (f". {hint}" if hint else ""))


def _undecoded(dataset: Any, audio_column: str) -> Any:
    import datasets

    feature = dataset.features.get(audio_column)
    if isinstance(feature, datasets.Audio) and feature.decode:
        return dataset.cast_column(audio_column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    return dataset


def _resolve_paths(dataset: Any, audio_column: str, base: Path) -> Any:
    """Audio paths in CSV/JSONL files are relative to the file."""

    def resolve(row: dict) -> dict:
        value = row[audio_column]
        if isinstance(value, str) and not os.path.isabs(value):
            row[audio_column] = str(base / value)
        return row

    return dataset.map(resolve) if dataset.features.get(audio_column) is not None else dataset


def load_asr_dataset(
    name: str,
    config: str | None = None,
    *,
    audio_column: str = "audio",
    text_column: str | None = "text",
    **load_kwargs: Any,
) -> Any:
    """A ``DatasetDict`` from ``"demo"``, a ``save_to_disk`` folder, an audiofolder, a CSV/JSONL/Parquet file
    (audio paths relative to it) or a hub dataset id; the named columns are checked in every split."""
    import datasets

    path = Path(name).expanduser()
    if name == DEMO:
        from .demo_corpus import load_demo_corpus

        data = load_demo_corpus()
    elif path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
        data = datasets.load_from_disk(str(path))
    elif path.is_dir() and not torchcodec_usable():
        data = _audiofolder_without_torchcodec(path, **load_kwargs)
    elif path.is_dir():
        data = _load_needing_torchcodec(name, "audiofolder", data_dir=str(path), **load_kwargs)
    elif path.is_file():
        data = _load_file(name, path, **load_kwargs)
        data = datasets.DatasetDict({k: _resolve_paths(v, audio_column, path.parent) for k, v in data.items()})
    elif path.suffix in _FILE_BUILDERS or name.startswith((".", "~", os.sep)):
        raise FileNotFoundError(f"dataset {name!r}: no such file or folder")
    else:
        data = _load_needing_torchcodec(name, name, config, **load_kwargs)
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({"train": data})
    for split, dataset in data.items():
        if hasattr(dataset, "__len__") and len(dataset) == 0:
            raise ValueError(f"dataset {name!r} split {split!r} has no rows")
    columns = {audio_column: "audio_column", text_column: "text_column"}
    for split, dataset in data.items():
        check_columns(dataset, columns, where=f"dataset {name!r} split {split!r}")
    return datasets.DatasetDict({split: _undecoded(dataset, audio_column) for split, dataset in data.items()})


# ----------------------------------------------------------------------------------------------- torchcodec
def torchcodec_usable() -> bool:
    """Whether torchcodec imports with its FFmpeg libraries (datasets' audio encoding needs both)."""
    try:
        from torchcodec.decoders import AudioDecoder  # noqa: F401
        from torchcodec.encoders import AudioEncoder  # noqa: F401
    except Exception:  # ImportError without the package, RuntimeError/OSError without FFmpeg
        return False
    return True


def _load_needing_torchcodec(name: str, *args: Any, **kwargs: Any) -> Any:
    """``datasets.load_dataset`` whose audio-encoding failure becomes one line saying what to install."""
    import datasets

    try:
        return datasets.load_dataset(*args, **kwargs)
    except (ConnectionError, datasets.exceptions.DatasetNotFoundError) as error:
        raise ValueError(
            f"dataset {name!r}: not a local file or folder, nor a hub dataset that could be loaded ({error})"
        ) from None
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ImportError) and "torchcodec" in str(cause):
            raise ImportError(f"dataset {name!r}: {TORCHCODEC_HINT}") from None
        raise


def _load_file(name: str, path: Path, **load_kwargs: Any) -> Any:
    """A CSV/JSONL/Parquet file through datasets, its failures (empty file, a header without rows) said in one
    line naming the file instead of datasets' "generating the dataset" or "corresponds to no data"."""
    import datasets

    if path.suffix not in _FILE_BUILDERS:
        raise ValueError(f"{name}: unsupported file type {path.suffix!r}; use one of {sorted(_FILE_BUILDERS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"dataset {name!r}: the file is empty")
    try:
        return datasets.load_dataset(_FILE_BUILDERS[path.suffix], data_files=str(path), **load_kwargs)
    except ValueError as error:
        if "corresponds to no data" not in str(error):
            raise
        raise ValueError(f"dataset {name!r} has no rows (a header line only?)") from None
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        raise ValueError(f"dataset {name!r} cannot be read as {path.suffix[1:].upper()}: {cause or error}") from None


def _audiofolder_without_torchcodec(root: Path, **load_kwargs: Any) -> Any:
    """An audiofolder (``metadata.csv``/``.jsonl``/``.parquet`` with a ``file_name`` column, split folders
    ``train/``, ``test/`` ...) as a DatasetDict whose ``audio`` column holds file paths."""
    import datasets

    files: dict[str, list[str]] = {}
    for metadata in sorted(p for name in _METADATA for p in root.rglob(name)):
        parts = metadata.relative_to(root).parts
        split = _SPLIT_DIRS.get(parts[0].lower(), "train") if len(parts) > 1 else "train"
        files.setdefault(split, []).append(str(metadata))
    if not files:
        raise ValueError(
            f"audio folder {root} has no {' / '.join(_METADATA)} with a `file_name` column and the transcripts, "
            f"and datasets' audiofolder builder cannot be used: {TORCHCODEC_HINT}"
        )
    logger.info("%s: torchcodec is unusable, reading the audiofolder's metadata; audio is decoded with soundfile", root)
    splits = {}
    for split, paths in files.items():
        parts = []
        for metadata in paths:
            builder = _FILE_BUILDERS[Path(metadata).suffix]
            part = datasets.load_dataset(builder, data_files=metadata, split="train", **load_kwargs)
            if "file_name" not in part.column_names:
                raise ValueError(
                    f"{metadata} has no `file_name` column (audiofolder layout); its columns are {part.column_names}"
                )
            base = Path(metadata).parent
            part = part.map(lambda row, base=base: {"file_name": str(base / row["file_name"])})
            parts.append(part.rename_column("file_name", "audio"))
        splits[split] = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return datasets.DatasetDict(splits)


# ----------------------------------------------------------------------------------------------- splits
def _parse_split_size(size: float | int | str, clips: int) -> int:
    """A fraction (0 < size < 1) or a number of clips (>= 1) -> a number of clips."""
    value = float(size)
    if not value > 0:
        raise ValueError(f"eval_split_size must be a fraction in (0, 1) or a number of clips >= 1, got {size!r}")
    count = max(1, round(value * clips)) if value < 1 else int(value)
    if count != value and value >= 1:
        raise ValueError(f"eval_split_size={size!r}: a number of clips must be a whole number")
    if count >= clips:
        raise ValueError(
            f"eval_split_size={size!r} holds out {count} of the {clips} clips: nothing would be left "
            "to train on; lower it"
        )
    return count


def hold_out_by_clip(
    dataset: Any, size: float | int | str = 0.1, *, seed: int = 0, audio_column: str = "audio"
) -> tuple[Any, Any]:
    """(train, held_out) rows of ``dataset``: a seeded random ``size`` of its distinct clips (every row of a
    held-out clip goes with it, so no clip is in both), the rows keeping their order."""
    from rlnf.audio import audio_key

    keys = [audio_key(item) for item in dataset[audio_column]]
    clips = list(dict.fromkeys(keys))
    count = _parse_split_size(size, len(clips))
    chosen = np.random.default_rng(seed).permutation(len(clips))[:count]
    held = {clips[i] for i in chosen}
    held_rows = [i for i, key in enumerate(keys) if key in held]
    train_rows = [i for i, key in enumerate(keys) if key not in held]
    return dataset.select(train_rows), dataset.select(held_rows)


def train_eval_splits(
    data: Any,
    train_split: str,
    eval_split: str | None,
    *,
    eval_size: float | int | str = 0.1,
    seed: int = 0,
    audio_column: str = "audio",
    named: Collection[str] = (),
) -> tuple[Any, Any]:
    """The training split and the held-out split of ``data``; when ``eval_split`` is absent (or None, or the
    training split itself), `hold_out_by_clip` carves it out of the training split.

    Split names that come from a base YAML adapt to the user's data: data of one split trains on it, a missing
    training split falls back to ``train``. A name the user gave (its flag in ``named``: ``dataset_train_split``,
    ``dataset_test_split``) that is not in the data is an error listing the splits, never a quiet fallback."""
    splits = list(data.keys())
    train_split = choose_train_split(data, train_split, named)
    if isinstance(eval_split, str) and eval_split.strip().lower() in ("none", "null", ""):
        eval_split = None
    if eval_split and eval_split not in data and "dataset_test_split" in named:
        raise ValueError(
            f"the dataset has no split {eval_split!r} (--dataset_test_split); its splits are {splits}. Name one, or "
            "pass --dataset_test_split none to hold out --eval_split_size of the training clips"
        )
    if eval_split and eval_split != train_split and eval_split in data:
        return data[train_split], data[eval_split]
    train, held_out = hold_out_by_clip(data[train_split], eval_size, seed=seed, audio_column=audio_column)
    reason = f"no split {eval_split!r}" if eval_split else "no held-out split named"
    logger.warning(
        "%s (--dataset_test_split; splits: %s): held out %d of the %d rows of %r by clip (--eval_split_size %s, "
        "seed %d)",
        reason,
        splits,
        len(held_out),
        len(data[train_split]),
        train_split,
        eval_size,
        seed,
    )
    return train, held_out


def choose_train_split(data: Any, train_split: str, named: Collection[str] = ()) -> str:
    """The split to train on (see `train_eval_splits`): ``train_split``, or, where the name came from a base
    YAML, the data's only split or its ``train`` split (said in one warning)."""
    splits = list(data.keys())
    if train_split in data:
        return train_split
    fallback = splits[0] if len(splits) == 1 else ("train" if "train" in data else None)
    if fallback is None or "dataset_train_split" in named:
        raise ValueError(f"the dataset has no split {train_split!r} (--dataset_train_split); its splits are {splits}")
    logger.warning("no split %r (--dataset_train_split): training on the split %r", train_split, fallback)
    return fallback


def watch_split(
    train: Any,
    *,
    clips: int = 0,
    split: str | None = None,
    load_split: Callable[[str], Any] | None = None,
    forbidden: Sequence[str | None] = (),
    seed: int = 0,
    audio_column: str = "audio",
) -> tuple[Any, Any | None]:
    """(train, watch): the labelled clips whose WER a run watches during training (`rlnf.trainers.wer_guard`),
    either the named ``split`` (``load_split(name)``; never the training or test split, named in ``forbidden``:
    choosing the best checkpoint on the test split would make its WER optimistic) or ``clips`` clips carved out
    of ``train`` by clip (seed ``seed``), which then never trains on them. No watch: ``(train, None)``."""
    if split is not None:
        if split in forbidden:
            raise ValueError(
                f"--wer_watch_split {split!r} is the training or the test split: watch a split of its own (or carve "
                "clips out of the training split with --wer_watch_clips); choosing the best checkpoint on the test "
                "split would make the test WER optimistic"
            )
        return train, load_split(split)
    if clips <= 0:
        return train, None
    if clips >= len(train):
        raise ValueError(
            f"--wer_watch_clips {clips} leaves nothing to train on: the training split has {len(train)} rows"
        )
    return hold_out_by_clip(train, clips, seed=seed, audio_column=audio_column)
