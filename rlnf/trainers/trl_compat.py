"""Every TRL internal rlnf relies on, in one file: what a TRL upgrade must re-check.

rlnf's speech trainers subclass TRL 1.16's ``GRPOTrainer`` and ``RLOOTrainer`` and override private methods
(the lists below, with the leading parameters rlnf relies on; also transformers' ``Trainer``'s), patch the
module-level ``create_model_from_path`` TRL builds the reference with, read the trainer's ``_dist`` backend,
borrow GRPO's dataloader and repeat sampler for PPO, and use a few helpers of ``trl.trainer.utils``. No other
module imports from ``trl.trainer``, ``trl.distributed`` or ``trl.extras`` (``tests/test_trl_compat.py`` greps
for it).

`missing_trl_internals` lists what moved in the installed TRL (checks of what rlnf uses, not a version string);
`check_trl_internals` turns that into one clear error when a trainer is built, so a TRL outside the pin fails at
construction, naming the internals, instead of deep inside a training step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from transformers import Trainer
from trl import GRPOTrainer, RLOOTrainer
from trl.distributed import DistributedBackend
from trl.extras.profiling import profiling_context
from trl.trainer import grpo_trainer as trl_grpo_module
from trl.trainer import rloo_trainer as trl_rloo_module
from trl.trainer.utils import (
    add_fused_lm_head,
    get_callable_name,
    is_async_callable,
    shuffle_sequence_dict,
    split_tensor_dict,
)

_LOG_PROBS = ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy"]
_SHARED = {
    "_tokenize_prompts": ["self", "prompts"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_get_per_token_logps_and_entropies": [*_LOG_PROBS, "compute_aux_loss"],
    "compute_loss": ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_set_signature_columns_if_needed": ["self"],
}
# The private methods rlnf overrides, by TRL class, with the leading parameters TRL calls them with.
OVERRIDDEN: dict[type, dict[str, list[str]]] = {
    GRPOTrainer: {
        **_SHARED,
        "_generate_single_turn": ["self", "prompt_ids", "images", "multimodal_fields", "num_generations"],
        "evaluation_loop": ["self", "dataloader", "description", "prediction_loss_only", "ignore_keys"],
    },
    RLOOTrainer: {**_SHARED, "_generate_single_turn": ["self", "prompt_ids", "images", "multimodal_fields"]},
}
# The private methods of transformers' Trainer that rlnf's trainers (speech and reward model) override.
TRAINER_OVERRIDDEN: dict[str, list[str]] = {
    "_issue_warnings_after_load": ["self", "load_result"],  # no "missing" warning for a tied weight on resume
    "_save": ["self", "output_dir", "state_dict"],  # the full processor next to the weights
    "_load_from_checkpoint": ["self", "resume_from_checkpoint", "model"],  # PPO: the critic too
    "_prepare_inputs": ["self", "inputs"],  # PPO: a rollout per generation batch
    "_get_train_sampler": ["self", "train_dataset"],  # reward model: batches grouped by clip
    "_set_signature_columns_if_needed": ["self"],  # keep the audio columns
}
# Methods ASRPPOTrainer takes from GRPOTrainer as they are (TRL's repeat sampler: G rows per clip, together).
BORROWED_FROM_GRPO = ("get_train_dataloader", "_get_train_sampler")
# Module-level names and attributes used.
REFERENCE_BUILDER = "create_model_from_path"  # patched in trl.trainer.{grpo,rloo}_trainer
BACKEND_ATTRIBUTES = ("is_fsdp", "is_zero3", "summon_full_params")  # read on the trainer's `_dist`


def missing_trl_internals() -> list[str]:
    """What rlnf needs from TRL and the installed TRL lacks (empty when everything is where rlnf expects)."""
    overridden = [*((c, n, p) for c, methods in OVERRIDDEN.items() for n, p in methods.items()),
                  *((Trainer, n, p) for n, p in TRAINER_OVERRIDDEN.items())]  # fmt: skip
    missing = []
    for owner, name, params in overridden:
        method = getattr(owner, name, None)
        if method is None:
            missing.append(f"{owner.__name__}.{name} (gone)")
            continue
        actual = list(inspect.signature(method).parameters)
        if actual[: len(params)] != params:
            missing.append(f"{owner.__name__}.{name}{tuple(params)} (now {tuple(actual)})")
    missing += [f"GRPOTrainer.{n} (gone)" for n in BORROWED_FROM_GRPO if not hasattr(GRPOTrainer, n)]
    for module in (trl_grpo_module, trl_rloo_module):
        if not hasattr(module, REFERENCE_BUILDER):
            missing.append(f"{module.__name__}.{REFERENCE_BUILDER} (gone)")
    missing += [f"DistributedBackend.{n} (gone)" for n in BACKEND_ATTRIBUTES if not hasattr(DistributedBackend, n)]
    if "self._dist = " not in inspect.getsource(GRPOTrainer.__init__):
        missing.append("GRPOTrainer.__init__ no longer sets self._dist")
    return missing


@functools.cache
def check_trl_internals() -> None:
    """Raise one clear error naming every TRL internal that moved (checked once per process)."""
    missing = missing_trl_internals()
    if missing:
        import transformers
        import trl

        raise ImportError(
            f"rlnf's trainers override TRL 1.16 and transformers 5.24-5.25 internals, and trl {trl.__version__} / "
            f"transformers {transformers.__version__} moved: " + "; ".join(missing)
            + ". Install what rlnf was tested with: pip install 'trl==1.16.*' 'transformers>=5.24,<5.26'"
        )  # fmt: skip


@contextmanager
def reference_model_by(trl_module: ModuleType, build: Callable[..., Any]) -> Iterator[None]:
    """While TRL's ``__init__`` runs: build the reference with ``build`` instead of reloading the policy from
    ``config.name_or_path`` (an in-memory policy has no folder)."""
    original = getattr(trl_module, REFERENCE_BUILDER)
    setattr(trl_module, REFERENCE_BUILDER, build)
    try:
        yield
    finally:
        setattr(trl_module, REFERENCE_BUILDER, original)


def distributed_backend(trainer: Any) -> DistributedBackend:
    """The FSDP/ZeRO helper TRL's trainers keep in ``_dist`` (ASRPPOTrainer builds its own)."""
    return trainer._dist


__all__ = [
    "BORROWED_FROM_GRPO",
    "DistributedBackend",
    "OVERRIDDEN",
    "TRAINER_OVERRIDDEN",
    "add_fused_lm_head",
    "check_trl_internals",
    "distributed_backend",
    "get_callable_name",
    "is_async_callable",
    "missing_trl_internals",
    "profiling_context",
    "reference_model_by",
    "shuffle_sequence_dict",
    "split_tensor_dict",
    "trl_grpo_module",
    "trl_rloo_module",
]
