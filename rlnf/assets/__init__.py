"""Small checkpoints shipped with rlnf for the embedded demo (the demo reward model and warm-started policy)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent
DEMO_ASSETS = {"reward_model": "demo-reward-model", "policy": "demo-whisper-sft"}


def resolve_demo_path(value: str | None, kind: str) -> str | None:
    """``"demo"`` -> the shipped checkpoint folder of ``kind``; anything else unchanged."""
    if value != "demo":
        return value
    path = ASSETS / DEMO_ASSETS[kind]
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the shipped demo {kind} is missing from {path}: reinstall rlnf or rebuild it")
    return str(path)
