"""One way for recipes to load (audio, text) datasets: the demo corpus, a hub id, a local folder or a file.

Audio columns are kept undecoded (``Audio(decode=False)``: ``{"path", "bytes"}`` dicts) so nothing needs
torchcodec; `rlnf.audio.load_audio` decodes them where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

DEMO = "demo"
_FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


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
    elif path.is_dir():
        data = datasets.load_dataset("audiofolder", data_dir=str(path), **load_kwargs)
    elif path.is_file():
        if path.suffix not in _FILE_BUILDERS:
            raise ValueError(f"{name}: unsupported file type {path.suffix!r}; use one of {sorted(_FILE_BUILDERS)}")
        data = datasets.load_dataset(_FILE_BUILDERS[path.suffix], data_files=str(path), **load_kwargs)
        data = datasets.DatasetDict({k: _resolve_paths(v, audio_column, path.parent) for k, v in data.items()})
    else:
        data = datasets.load_dataset(name, config, **load_kwargs)
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({"train": data})
    columns = {audio_column: "audio_column", text_column: "text_column"}
    for split, dataset in data.items():
        check_columns(dataset, columns, where=f"dataset {name!r} split {split!r}")
    return datasets.DatasetDict({split: _undecoded(dataset, audio_column) for split, dataset in data.items()})
