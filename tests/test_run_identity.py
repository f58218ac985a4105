"""Which run an output folder holds (`rlnf.run_identity`), on folders built by hand: the recipe-level runs are in
tests/test_recipes.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rlnf.run_identity import RUN_FILE, claim_output_dir

RUN = {"recipe": "grpo_asr", "data": {"train": {"rows": 6, "fingerprint": "a"}}, "learning_rate": 5e-05}


def _folder(tmp_path: Path, identity: dict | None, checkpoints: tuple[int, ...] = (), stamped: bool = True) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    if identity is not None:
        (folder / RUN_FILE).write_text(json.dumps(identity))
    for step in checkpoints:
        (folder / f"checkpoint-{step}").mkdir()
        if stamped and identity is not None:
            (folder / f"checkpoint-{step}" / RUN_FILE).write_text(json.dumps(identity))
    return folder


def test_a_failed_starts_identity_alone_is_taken_over(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {**RUN, "learning_rate": 1.0})  # no checkpoint, no results: nothing to lose
    assert claim_output_dir(folder, RUN, resume=None) is None
    assert json.loads((folder / RUN_FILE).read_text()) == RUN


def test_a_folder_of_unknown_checkpoints_is_refused_without_suggesting_a_resume(tmp_path: Path) -> None:
    folder = _folder(tmp_path, None, checkpoints=(2,))
    with pytest.raises(ValueError, match=r"holds checkpoints or results of a run rlnf cannot identify .*"
                       r"--overwrite_output_dir to replace that one") as caught:  # fmt: skip
        claim_output_dir(folder, RUN, resume=None)
    assert "--resume_from_checkpoint" not in str(caught.value)
    with pytest.raises(ValueError, match="cannot identify"):
        claim_output_dir(folder, RUN, resume=True)


def test_overwrite_deletes_the_runs_checkpoints_and_results_only(tmp_path: Path) -> None:
    folder = _folder(tmp_path, RUN, checkpoints=(4, 8))
    (folder / "results.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    assert claim_output_dir(folder, RUN, resume=None, overwrite=True) is None
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", RUN_FILE]


def test_resume_names_the_last_checkpoint_and_checks_its_stamp(tmp_path: Path, caplog) -> None:
    folder = _folder(tmp_path, RUN, checkpoints=(2, 10))
    assert claim_output_dir(folder, RUN, resume=True) == str(folder / "checkpoint-10")
    (folder / "checkpoint-10" / RUN_FILE).write_text(json.dumps({**RUN, "learning_rate": 0.1}))
    with pytest.raises(ValueError, match=r"checkpoint-10: that checkpoint belongs to another run \(learning_rate"):
        claim_output_dir(folder, RUN, resume=True)
    (folder / "checkpoint-10" / RUN_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        assert claim_output_dir(folder, RUN, resume=True) == str(folder / "checkpoint-10")
    assert "has no rlnf_run.json: rlnf cannot check that it belongs to this run" in caplog.text


def test_a_run_that_saved_no_checkpoint_cannot_be_resumed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, RUN)
    (folder / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="has no checkpoint to resume"):
        claim_output_dir(folder, RUN, resume=True)


def test_other_ranks_check_but_never_write(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    assert claim_output_dir(folder, RUN, resume=None, main=False) is None
    assert not folder.exists()
