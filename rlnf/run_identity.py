"""Which run an output folder holds, so no run silently reuses, mixes or resumes another run's folder.

A run's identity (recipe, trainer, model, the data's content, rewards and their weights, learning rate) is kept
in ``output_dir/rlnf_run.json`` and stamped into every checkpoint it saves. A fresh run never starts in a folder
that holds a run (checkpoints or results): older, higher-numbered checkpoints left there would later be
"resumed" instead of its own. A resume must match the identity: same data, same rewards, same learning rate
(the optimizer's state restores the old one silently), and its checkpoint must carry the same stamp.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

logger = logging.getLogger(__name__)

RUN_FILE = "rlnf_run.json"
RESULT_FILES = ("results.json", "eval_before.json")  # a finished run's results; "before" of a started one


def data_identity(train: Any, held_out: Any) -> dict[str, Any]:
    """The content of the two splits a run uses: rows and `datasets`' fingerprints (from the files' content and
    modification times, the hub revision, and every transform since: a changed file, seed or held-out carving
    changes them). Streams have no length or fingerprint: None."""

    def described(split: Any) -> dict[str, Any]:
        rows = len(split) if hasattr(split, "__len__") else None
        return {"rows": rows, "fingerprint": getattr(split, "_fingerprint", None)}

    return {"train": described(train), "held_out": described(held_out)}


def _write_json(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(partial, path)  # atomic: a reader never sees half a file


def _differences(saved: dict[str, Any], identity: dict[str, Any]) -> str:
    return ", ".join(
        _data_change(saved.get(key), identity.get(key)) if key == "data" else
        f"{key}: {saved.get(key)!r} there, {identity.get(key)!r} now"
        for key in sorted(set(saved) | set(identity))
        if saved.get(key) != identity.get(key)
    )  # fmt: skip


def _data_change(saved: Any, now: Any) -> str:
    """'data: the training split changed (6 rows there, 5 now)', not two dicts of fingerprints."""
    saved, now = saved or {}, now or {}
    changes = []
    for split, name in (("train", "training"), ("held_out", "held-out")):
        before, after = saved.get(split) or {}, now.get(split) or {}
        if before != after:
            rows = before.get("rows"), after.get("rows")
            counted = f"{rows[0]} rows there, {rows[1]} now" if rows[0] != rows[1] else "as many rows, other content"
            changes.append(f"the {name} split changed ({counted})")
    return "data: " + " and ".join(changes or ["changed"])


def _checkpoints(folder: Path) -> list[Path]:
    return [path for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.is_dir()]


def _saved_identity(folder: Path) -> dict[str, Any] | None:
    path = folder / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def claim_output_dir(
    output_dir: str | os.PathLike,
    identity: dict[str, Any],
    *,
    resume: str | bool | None,
    overwrite: bool = False,
    main: bool = True,
) -> str | None:
    """Make sure ``output_dir`` belongs to this run, once every input was checked (a failed start leaves no
    claim behind) and before anything is written there; return the checkpoint to resume (None: a fresh run).

    Fresh run: refused where the folder holds a run (checkpoints or ``results.json``), naming what to pass;
    ``overwrite`` deletes that run's checkpoints and results first. A folder with only a failed start's
    identity is taken over. Resume: the folder's identity and the checkpoint's stamp must equal ``identity``."""
    folder = Path(output_dir)
    saved, checkpoints = _saved_identity(folder), _checkpoints(folder)
    holds_run = bool(checkpoints) or (folder / "results.json").exists()
    if resume:
        checkpoint = _checkpoint_to_resume(folder, saved, identity, resume)
    else:
        checkpoint = None
        if holds_run and not overwrite and saved != identity:
            other = (
                f"checkpoints or results of a run rlnf cannot identify (no {RUN_FILE})" if saved is None
                else f"another run ({_differences(saved, identity)})"
            )  # fmt: skip
            raise ValueError(
                f"--output_dir {str(folder)!r} holds {other}: pass another --output_dir for this run, or "
                "--overwrite_output_dir to replace that one"
            )
        if holds_run and not overwrite:
            raise ValueError(
                f"--output_dir {str(folder)!r} already holds this run's checkpoints or results: pass "
                "--resume_from_checkpoint true to continue it (a higher --max_steps trains on), "
                "--overwrite_output_dir to start over, or another --output_dir"
            )
        if holds_run and main:
            for path in checkpoints:
                shutil.rmtree(path)
            for name in RESULT_FILES:
                (folder / name).unlink(missing_ok=True)
            logger.warning("--overwrite_output_dir: deleted the checkpoints and results of the run in %s", folder)
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / RUN_FILE, identity)
    return checkpoint


def _checkpoint_to_resume(
    folder: Path, saved: dict[str, Any] | None, identity: dict[str, Any], resume: str | bool
) -> str:
    if saved is None:
        raise ValueError(
            f"--resume_from_checkpoint: {str(folder)!r} holds checkpoints of a run rlnf cannot identify (no "
            f"{RUN_FILE}): pass another --output_dir, or delete that folder to start over"
            if _checkpoints(folder)
            else f"--resume_from_checkpoint: {str(folder)!r} has no run to resume (no {RUN_FILE}, no checkpoint)"
        )
    if saved != identity:
        raise ValueError(
            f"--resume_from_checkpoint: --output_dir {str(folder)!r} holds another run ({_differences(saved, identity)})."
            " A resumed run keeps its data, rewards and learning rate: pass the same flags to resume it, or start "
            "this run in another --output_dir"
        )
    checkpoint = resume if isinstance(resume, str) else get_last_checkpoint(str(folder))
    if checkpoint is None:
        raise ValueError(f"--resume_from_checkpoint: {str(folder)!r} has no checkpoint to resume (its run saved none)")
    stamp = _saved_identity(Path(checkpoint))
    if stamp is None:
        logger.warning("%s has no %s: rlnf cannot check that it belongs to this run", checkpoint, RUN_FILE)
    elif stamp != identity:
        raise ValueError(
            f"--resume_from_checkpoint {checkpoint}: that checkpoint belongs to another run "
            f"({_differences(stamp, identity)})"
        )
    return str(checkpoint)


class StampCheckpoints(TrainerCallback):
    """Writes the run's identity into each checkpoint it saves, so a resume can check the checkpoint itself
    (``--resume_from_checkpoint PATH`` may name one outside the run's folder)."""

    def __init__(self, identity: dict[str, Any]):
        self.identity = identity

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            _write_json(checkpoint / RUN_FILE, self.identity)


__all__ = ["RUN_FILE", "StampCheckpoints", "claim_output_dir", "data_identity"]
