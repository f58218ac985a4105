"""Where a reward-model checkpoint is and whether it is whole: ``"demo"``, a local folder or a hub id.

`RewardModel.from_pretrained` and `RewardModelProcessor.from_pretrained` (hence `AudioTextReward.from_pretrained`,
the ``reward_model`` reward and ``rlnf score``) resolve their argument here, so every entry point accepts the
same values and fails the same way: a local path that does not exist is "no such model folder" (not a bad hub
id), a folder missing a file names it, pickle-only weights are refused, and a hub id that cannot be fetched
(``HF_HUB_OFFLINE=1`` or no network) fails in seconds with what to do, through `rlnf.assets.resolve_model_path`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RlnfUserError

WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILE = "spiece.model"
FEATURE_CONFIGS = ("preprocessor_config.json", "processor_config.json")
_OPTION = "reward model"

CONVERT_PICKLE = (
    'python -c "import torch; from safetensors.torch import save_file; '
    "save_file(torch.load('pytorch_model.bin', weights_only=True), 'model.safetensors')\""
)


class CheckpointError(RlnfUserError, ValueError):
    """A reward-model checkpoint that exists but cannot be loaded as it is (never loaded half-random)."""


def resolve_checkpoint(name_or_path: str | os.PathLike, part: str) -> str:
    """The folder (or hub id, when the hub answers) to load ``part`` (``"model"`` or ``"processor"``) from.

    Raises `rlnf.assets.ModelNotAvailableError` (a ``FileNotFoundError``) for a missing folder or an unreachable
    hub id, and `CheckpointError` for a folder that lacks a file ``part`` needs.
    """
    from ..assets import resolve_model_path

    text = os.fspath(name_or_path)
    folder = Path(text).expanduser()
    if not folder.is_dir():
        resolved = resolve_model_path(text, "reward_model", option=_OPTION)
        folder = Path(resolved)
        if not folder.is_dir():
            return resolved  # a hub id the hub will serve: transformers downloads it
    if part == "model":
        _check_model_files(folder)
    elif part == "processor":
        _check_processor_files(folder)
    else:
        raise ValueError(f"part must be 'model' or 'processor', got {part!r}")
    return str(folder)


def _check_model_files(folder: Path) -> None:
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{_OPTION} folder {str(folder)!r} has no config.json (not a saved reward model)")
    if any((folder / name).exists() for name in WEIGHTS):
        return
    pickled = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
    if pickled:
        raise CheckpointError(
            f"{_OPTION} folder {str(folder)!r} holds only pickle weights ({pickled[0]}); rlnf loads safetensors "
            f"only, since unpickling can run code. Convert once, in that folder: {CONVERT_PICKLE}"
        )
    raise CheckpointError(f"{_OPTION} folder {str(folder)!r} has no weights file {WEIGHTS[0]}")


def _check_processor_files(folder: Path) -> None:
    if not (folder / TOKENIZER_FILE).exists():
        raise CheckpointError(
            f"{_OPTION} folder {str(folder)!r} has no {TOKENIZER_FILE} (the SentencePiece tokenizer); save the "
            "processor with RewardModelProcessor.save_pretrained or copy the file from the original checkpoint"
        )
    if not any((folder / name).exists() for name in FEATURE_CONFIGS):
        raise CheckpointError(
            f"{_OPTION} folder {str(folder)!r} has neither {FEATURE_CONFIGS[0]} nor {FEATURE_CONFIGS[1]} (the "
            "audio feature settings)"
        )


PROCESSOR_CONFIG = "processor_config.json"
_HUB_KWARGS = ("cache_dir", "force_download", "token", "revision", "local_files_only", "subfolder")


def read_processor_settings(folder_or_hub_id: str, **kwargs: Any) -> dict[str, Any]:
    """The processor-level settings saved in ``processor_config.json`` (``{}`` when there is none, as in the
    published layout); sub-processor entries are left to their own ``from_pretrained``."""
    folder = Path(folder_or_hub_id)
    if folder.is_dir():
        path = folder / kwargs.get("subfolder", "") / PROCESSOR_CONFIG
        if not path.exists():
            return {}
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) is not None}
        try:
            path = Path(hf_hub_download(folder_or_hub_id, PROCESSOR_CONFIG, **hub_kwargs))
        except EntryNotFoundError:
            return {}
    settings = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(settings, dict):
        raise CheckpointError(f"{_OPTION} {str(path)!r}: expected a JSON object, got {type(settings).__name__}")
    return settings


def check_loading_info(info: Mapping[str, Any], where: str, *, allow_mismatched: bool = False) -> None:
    """Fail when weights and config do not fit: missing tensors would be random, unexpected ones ignored."""
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing tensors {sorted(info['missing_keys'])} (they would be random)")
    if info.get("unexpected_keys"):
        problems.append(f"unexpected tensors {sorted(info['unexpected_keys'])} (another architecture?)")
    if info.get("mismatched_keys") and not allow_mismatched:
        shapes = [
            f"{item[0]} (checkpoint {list(item[1])}, config {list(item[2])})" if isinstance(item, tuple) else str(item)
            for item in sorted(info["mismatched_keys"], key=str)
        ]
        problems.append(f"tensors whose shape does not fit the config: {shapes}")
    if info.get("error_msgs"):
        problems.append("; ".join(info["error_msgs"]))
    if problems:
        raise CheckpointError(
            f"{_OPTION} {where!r}: the weights do not fit its config.json: "
            + "; ".join(problems)
            + ". Pass strict=False to load anyway (missing tensors are then randomly initialised)."
        )
