"""Small checkpoints shipped with rlnf for the embedded demo (the demo reward model and warm-started policy), and
the one resolver every entry point uses for a model path: ``"demo"``, a local folder or a hub id.

A hub id that cannot be fetched otherwise costs minutes of HTTP retries before a generic error; the resolver
answers in seconds instead, with what to do (pass a local folder, download it first, or unset HF_HUB_OFFLINE).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import RlnfUserError

ASSETS = Path(__file__).parent
DEMO = "demo"
DEMO_CTC = "demo-ctc"  # the shipped CTC policy (a tiny Parakeet), for `--model_name_or_path demo-ctc`
DEMO_TDT = "demo-tdt"  # the shipped TDT policy (a tiny Parakeet transducer), for `--model_name_or_path demo-tdt`
DEMO_ASSETS = {
    "reward_model": "demo-reward-model",
    "policy": "demo-whisper-sft",
    "ctc_policy": "demo-ctc-sft",
    "tdt_policy": "demo-tdt-sft",
}
# names that pick the demo policy of another family
DEMO_ALIASES = {DEMO_CTC: "ctc_policy", DEMO_TDT: "tdt_policy"}
_TRUE = ("1", "true", "yes", "on")


class ModelNotAvailableError(RlnfUserError, FileNotFoundError):
    """A model path is neither ``demo``, a local folder, nor a hub id that can be fetched now."""


def resolve_demo_path(value: str | None, kind: str) -> str | None:
    """``"demo"`` -> the shipped checkpoint folder of ``kind`` (``"demo-ctc"`` / ``"demo-tdt"``: the CTC / TDT
    policy); anything else unchanged."""
    if value in DEMO_ALIASES:
        value, kind = DEMO, DEMO_ALIASES[value]
    if value != DEMO:
        return value
    if kind not in DEMO_ASSETS:
        raise ValueError(f"no shipped demo {kind!r}; the demo checkpoints are {sorted(DEMO_ASSETS)}")
    path = ASSETS / DEMO_ASSETS[kind]
    if not (path / "config.json").exists():
        raise ModelNotAvailableError(f"the shipped demo {kind} is missing from {path}: reinstall rlnf or rebuild it")
    return str(path)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as the hub client reads it (checked at call time, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_snapshot(repo_id: str) -> str | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None


def resolve_model_path(value: str | os.PathLike, kind: str = "policy", *, option: str = "--model_name_or_path") -> str:
    """``"demo"`` -> the shipped checkpoint; a local folder -> itself; a hub id -> itself when the hub answers,
    else its cached snapshot folder; otherwise `ModelNotAvailableError` at once, naming ``option``.

    Offline (``HF_HUB_OFFLINE=1``) or with the hub unreachable, transformers would retry for minutes; the cached
    snapshot (if any) is returned instead, so loading works without the network.
    """
    text = os.fspath(value)
    if text == DEMO or text in DEMO_ALIASES:
        return str(resolve_demo_path(text, kind))
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelNotAvailableError(f"{option} {text}: the folder has no config.json (not a saved model)")
        return str(path)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelNotAvailableError(f"{option} {text}: no such model folder")
    if hub_offline():
        cached = _cached_snapshot(text)
        if cached is None:
            raise ModelNotAvailableError(
                f"{option} {text}: HF_HUB_OFFLINE is set and {text!r} is not in the Hugging Face cache. Pass a "
                f"local folder or {DEMO!r}, or download it first on a networked machine "
                f"(`hf download {text}`)."
            )
        return cached
    if not hub_reachable():
        cached = _cached_snapshot(text)
        if cached is None:
            raise ModelNotAvailableError(
                f"{option} {text}: the Hugging Face hub cannot be reached and {text!r} is not in the local cache. "
                f"Pass a local folder or {DEMO!r}, check the network, or set HF_HUB_OFFLINE=1 to work offline."
            )
        return cached
    return text


__all__ = [
    "ASSETS",
    "DEMO",
    "DEMO_ALIASES",
    "DEMO_ASSETS",
    "DEMO_CTC",
    "DEMO_TDT",
    "ModelNotAvailableError",
    "hub_offline",
    "hub_reachable",
    "resolve_demo_path",
    "resolve_model_path",
]
