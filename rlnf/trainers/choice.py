"""Pick a speech RL trainer by name (``grpo`` | ``rloo`` | ``ppo``): what a recipe's ``--trainer`` flag needs.

The config class decides the CLI/YAML schema, so the choice is read from the command line BEFORE ``TrlParser``
parses the rest::

    name, argv = pop_trainer_choice(sys.argv[1:])           # "--trainer ppo" -> ("ppo", rest)
    config_class, trainer_class = trainer_classes(name)
    script_args, args, model_args = TrlParser((ScriptArgs, config_class, ModelConfig)).parse_args_and_config(argv)
    trainer = trainer_class(model=..., reward_funcs=..., args=args, train_dataset=..., processing_class=...)

Every trainer takes the same ``reward_funcs``/``reward_weights``, datasets, processor and ``peft_config``;
``demo_config(name)`` is the shipped demo YAML of each.

When to use which (measured cost: ``benchmarks/bench_ppo_step.py``):

* GRPO: G samples per clip, group-normalised advantages, no critic; the cheapest, TRL's most developed loss types.
* RLOO: G samples per clip, leave-one-out baseline (unbiased, no std scaling), one ratio per sequence.
* PPO: a learned critic instead of a group baseline (works with 1 sample per clip), per-token credit through
  GAE, several epochs per rollout; costs a critic (a second trunk with ``value_model="separate"``).
"""

from __future__ import annotations

from pathlib import Path

TRAINER_NAMES = ("grpo", "rloo", "ppo")
_DEMO_YAML = {"grpo": "grpo_asr_demo.yaml", "rloo": "rloo_asr_demo.yaml", "ppo": "ppo_asr_demo.yaml"}


def trainer_classes(name: str) -> tuple[type, type]:
    """``(config class, trainer class)`` of ``name``."""
    from . import (
        ASRGRPOConfig,
        ASRGRPOTrainer,
        ASRPPOConfig,
        ASRPPOTrainer,
        ASRRLOOConfig,
        ASRRLOOTrainer,
    )

    classes = {
        "grpo": (ASRGRPOConfig, ASRGRPOTrainer),
        "rloo": (ASRRLOOConfig, ASRRLOOTrainer),
        "ppo": (ASRPPOConfig, ASRPPOTrainer),
    }
    if name not in classes:
        raise ValueError(f"--trainer must be one of {', '.join(TRAINER_NAMES)}, got {name!r}")
    return classes[name]


def pop_trainer_choice(argv: list[str], default: str = "grpo") -> tuple[str, list[str]]:
    """``(name, argv without it)`` from ``--trainer NAME`` or ``--trainer=NAME`` (``default`` when absent)."""
    rest: list[str] = []
    name = default
    i = 0
    while i < len(argv):
        item = argv[i]
        if item == "--trainer":
            if i + 1 >= len(argv):
                raise ValueError(f"--trainer needs a value: one of {', '.join(TRAINER_NAMES)}")
            name, i = argv[i + 1], i + 2
            continue
        if item.startswith("--trainer="):
            name = item.split("=", 1)[1]
        else:
            rest.append(item)
        i += 1
    trainer_classes(name)  # validate now, before any parsing
    return name, rest


def demo_config(name: str, recipes_dir: str | Path) -> Path:
    """The shipped demo YAML of trainer ``name`` in ``recipes_dir``."""
    trainer_classes(name)
    return Path(recipes_dir) / _DEMO_YAML[name]


def method_name(name: str) -> str:
    """The algorithm's display name (model cards, logs)."""
    trainer_classes(name)
    return name.upper()


__all__ = ["TRAINER_NAMES", "demo_config", "method_name", "pop_trainer_choice", "trainer_classes"]
