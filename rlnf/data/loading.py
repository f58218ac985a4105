"""One way for recipes to load (audio, text) datasets: the demo corpus, a hub id, a local folder or a file.

Audio columns are kept undecoded (``Audio(decode=False)``: ``{"path", "bytes"}`` dicts) so nothing needs
torchcodec; `rlnf.audio.load_audio` decodes them where they are used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEMO = "demo"
_FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def check_columns(dataset: Any, columns: list[str], where: str = "dataset") -> None:
    """Fail before any work when a named column is missing, listing the columns that exist."""
    present = list(dataset.column_names)
    missing = [column for column in columns if column not in present]
    if missing:
        raise ValueError(f"{where} has no column(s) {missing}; its columns are {present}")


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
    columns = [audio_column] + ([text_column] if text_column else [])
    for split, dataset in data.items():
        check_columns(dataset, columns, where=f"dataset {name!r} split {split!r}")
    return datasets.DatasetDict({split: _undecoded(dataset, audio_column) for split, dataset in data.items()})
