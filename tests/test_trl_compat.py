"""TRL's internals rlnf relies on are listed in one module and checked by what rlnf uses (not a version string);
no other module reaches into TRL's or rlnf's trainer internals from the wrong side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from trl import GRPOTrainer, RLOOTrainer

from rlnf.trainers import ASRGRPOTrainer, ASRRLOOTrainer, trl_compat
from rlnf.trainers.trl_compat import (
    BORROWED_FROM_GRPO,
    OVERRIDDEN,
    TRAINER_OVERRIDDEN,
    check_trl_internals,
    missing_trl_internals,
)

PACKAGE = Path(__file__).resolve().parents[1] / "rlnf"
TRL_INTERNALS = re.compile(r"^\s*(from|import)\s+trl\.(trainer|distributed|extras)\b", re.MULTILINE)


def test_the_installed_trl_has_every_internal_rlnf_uses():
    assert missing_trl_internals() == []


@pytest.mark.parametrize(("ours", "theirs"), [(ASRGRPOTrainer, GRPOTrainer), (ASRRLOOTrainer, RLOOTrainer)])
def test_every_listed_private_method_is_overridden(ours, theirs):
    for name in OVERRIDDEN[theirs]:
        assert getattr(ours, name) is not getattr(theirs, name), name


def test_every_private_override_is_listed():
    """Any private method of TRL or transformers that an rlnf trainer overrides is in trl_compat's lists, so the
    checks above cover it (a new override without an entry fails here)."""
    from transformers import Trainer

    from rlnf.trainers import ASRPPOTrainer
    from rlnf.trainers.reward_model_trainer import RewardModelTrainer

    unlisted = []
    for ours in (ASRGRPOTrainer, ASRRLOOTrainer, ASRPPOTrainer, RewardModelTrainer):
        external = [k for k in ours.__mro__ if not k.__module__.startswith("rlnf")]
        for klass in (k for k in ours.__mro__ if k.__module__.startswith("rlnf")):
            for name, value in vars(klass).items():
                if not name.startswith("_") or name.startswith("__") or not callable(value):
                    continue
                owners = [k for k in external if name in vars(k)]
                if not owners or name in BORROWED_FROM_GRPO:
                    continue  # rlnf's own method, or GRPO's borrowed as it is
                if name not in OVERRIDDEN.get(owners[0], {}) and not (Trainer in owners and name in TRAINER_OVERRIDDEN):
                    unlisted.append(f"{ours.__name__}.{name} (of {owners[0].__name__})")
    assert unlisted == []


def test_a_moved_internal_is_named_and_fails_trainer_construction(monkeypatch):
    monkeypatch.delattr(GRPOTrainer, "_tokenize_prompts")
    monkeypatch.setattr(trl_compat, "BACKEND_ATTRIBUTES", ("is_fsdp", "no_such_helper"))
    missing = missing_trl_internals()
    assert "GRPOTrainer._tokenize_prompts (gone)" in missing and "DistributedBackend.no_such_helper (gone)" in missing
    check_trl_internals.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"moved: .*_tokenize_prompts.*pip install 'trl==1.16.\*'"):
            ASRGRPOTrainer(model="unused", reward_funcs=[])
    finally:
        check_trl_internals.cache_clear()


def test_a_changed_signature_is_named(monkeypatch):
    def renamed(self, texts):  # TRL renamed the parameter rlnf's override relies on
        return texts

    monkeypatch.setattr(RLOOTrainer, "_tokenize_prompts", renamed)
    assert any(m.startswith("RLOOTrainer._tokenize_prompts('self', 'prompts') (now ('self', 'texts'))")
               for m in missing_trl_internals())  # fmt: skip


def test_only_the_compat_module_imports_trl_internals():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "trl_compat.py" and TRL_INTERNALS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_data_modules_import_no_trainer():
    pattern = re.compile(r"^\s*from\s+(\.\.trainers|rlnf\.trainers)|^\s*import\s+rlnf\.trainers", re.MULTILINE)
    offenders = [p.name for p in (PACKAGE / "data").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
