"""`RewardModelTrainingArguments`: the reward-model recipe's options, as TRL's ``reward_config.py`` does it.

The architecture of a new model is NOT copied here: `reward_architecture_arguments` builds a dataclass from
`RewardConfig`'s own signature (one source of truth), so ``--fusion_type alignment --alignment_dim 96`` are
`RewardConfig` fields passed through.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from ..data.scorer_data import score_range_for_scale
from ..reward_model.configuration import RewardConfig

__all__ = ["RewardModelTrainingArguments", "reward_architecture_arguments", "reward_config_kwargs"]

_NONE = ("", "none", "null")
# RewardConfig arguments that are not architecture choices: set from the tokenizer or kept for the published format.
_NOT_ARCHITECTURE = ("vocab_size", "pad_token_id", "pretrained_config", "override", "tokenizer_path")


@dataclass
class RewardModelTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the data, tokenizer and export options of `recipes/train_reward_model.py`."""

    dataset_name: str = field(
        default="demo",
        metadata={"help": "'demo' (scorer rows built from the Bambara demo corpus), a hub id, a save_to_disk folder, "
                  "an audiofolder or a CSV/JSONL/Parquet file with audio, text and score columns"},
    )  # fmt: skip
    dataset_config: str | None = field(default=None, metadata={"help": "hub configuration, e.g. partially-reviewed"})
    dataset_train_split: str = field(default="train", metadata={"help": "split to train on"})
    dataset_validation_split: str | None = field(
        default=None, metadata={"help": "split to validate on each evaluation; default: carved from train by clip"}
    )
    dataset_test_split: str | None = field(
        default="test", metadata={"help": "split for the final report (test_metrics.json); carved from train if absent"}
    )
    report_splits: list[str] = field(
        default_factory=list,
        metadata={"help": "more splits reported like the test split, each as <split>_* in test_metrics.json"},
    )
    eval_split_size: float = field(
        default=0.1, metadata={"help": "validation carved from train: a fraction of its clips (< 1) or a clip count"}
    )
    test_split_size: float = field(
        default=0.1, metadata={"help": "test carved from train when the data has no test split (fraction or count)"}
    )
    audio_column: str = field(default="audio", metadata={"help": "column holding the audio"})
    text_column: str = field(default="text", metadata={"help": "column holding the transcript being scored"})
    score_column: str = field(default="score", metadata={"help": "column holding its score"})
    clip_column: str | None = field(default=None, metadata={"help": "clip identity; default clip_id, else the audio"})
    reference_column: str | None = field(
        default="reference", metadata={"help": "a clip's own transcript, for the mismatch AUROC (if the column exists)"}
    )
    score_scale: float = field(default=100.0, metadata={"help": "100: scores are 0-100; 1: scores are 0-1"})
    skip_undecodable_audio: bool = field(
        default=False,
        metadata={"help": "every clip is decoded before training; an undecodable one is an error naming it, or with "
                  "this flag its rows are dropped with a warning"},
    )  # fmt: skip
    max_train_samples: int | None = field(default=None, metadata={"help": "keep the first N training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "keep the first N validation/test rows"})
    demo_hypotheses_per_clip: int = field(default=8, metadata={"help": "demo data: synthetic hypotheses per clip"})
    demo_mismatch_fraction: float = field(default=0.3, metadata={"help": "demo data: share of other-clip texts"})
    demo_label_noise: float = field(default=0.0, metadata={"help": "demo data: score noise (points, std)"})
    demo_policies: list[str] = field(
        default_factory=list,
        metadata={"help": "demo data: also score transcripts sampled from these speech policies (any family; 'demo', "
                  "'demo-ctc', 'demo-tdt': the shipped SFT policies) by their true CER, on every split; each policy's "
                  "rows are reported alone (test_policy_<name>_*)"},
    )  # fmt: skip
    demo_holdout_policy: str | None = field(
        default=None,
        metadata={"help": "demo data: leave this one of --demo_policies out of training and validation (held-out "
                  "splits keep it): its test_policy_<name>_* figures then say how the model does on a policy "
                  "family it never saw (benchmarks/reward_model_lofo.py)"},
    )  # fmt: skip
    demo_policy_samples_per_clip: int = field(default=4, metadata={"help": "demo data: policy samples per clip"})
    demo_policy_temperature: float = field(default=1.0, metadata={"help": "demo data: policy sampling temperature"})
    demo_policy_train_temperatures: list[float] = field(
        default_factory=list,
        metadata={"help": "demo data: sample the TRAINING clips at each of these temperatures (default: "
                  "demo_policy_temperature); held-out splits keep demo_policy_temperature"},
    )  # fmt: skip
    model_name_or_path: str | None = field(default=None, metadata={"help": "fine-tune this reward model"})
    processor_path: str | None = field(default=None, metadata={"help": "folder with a saved RewardModelProcessor"})
    tokenizer_path: str | None = field(default=None, metadata={"help": "a SentencePiece .model file"})
    tokenizer_vocab_size: int = field(default=2048, metadata={"help": "pieces asked of SentencePiece (new tokenizer)"})
    group_by_clip: bool = field(
        default=True, metadata={"help": "batch a clip's rows together and encode each clip once per batch"}
    )
    cache_audio_mb: float = field(default=1024.0, metadata={"help": "MB of clip features kept in memory (0: none)"})
    augment_audio: bool = field(
        default=False,
        metadata={"help": "perturb training clips (speed, band limit, noise; see rlnf.trainers.audio_augmentation) so "
                  "the model holds up on other voices and channels; evaluation clips are never perturbed. Draws are seeded by "
                  "the batch, so a run repeats exactly, but ranks of a multi-process run draw per rank"},
    )  # fmt: skip
    augment_probability: float = field(default=0.5, metadata={"help": "probability of each perturbation"})
    torch_threads: int | None = field(
        default=None, metadata={"help": "torch intra-op threads; 1 is much faster on a busy, shared CPU"}
    )
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "stop training after this many minutes of wall-clock time (a budget)"}
    )
    export_dir: str | None = field(
        default=None,
        metadata={"help": "ALSO save model + processor + metrics here (no checkpoints). Never set by default: the "
                  "shipped rlnf/assets/demo-reward-model is written only by the maintainer command in the demo YAML"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("dataset_config", "dataset_validation_split", "dataset_test_split", "clip_column",
                     "reference_column", "demo_holdout_policy", "export_dir", "model_name_or_path", "processor_path",
                     "tokenizer_path"):  # fmt: skip
            if isinstance(getattr(self, name), str) and getattr(self, name).strip().lower() in _NONE:
                setattr(self, name, None)  # a YAML value switched off by a flag
        self.demo_policies = [p for p in self.demo_policies if p.strip().lower() not in _NONE]
        if self.demo_holdout_policy is not None and self.demo_holdout_policy not in self.demo_policies:
            raise ValueError(
                f"--demo_holdout_policy {self.demo_holdout_policy!r} is not one of --demo_policies "
                f"{self.demo_policies}: only a policy whose samples the data holds can be held out"
            )
        score_range_for_scale(self.score_scale)
        # The collator needs the raw audio/text/score columns, which Trainer would otherwise drop.
        self.remove_unused_columns = False
        self.label_names = ["labels"]
        self.ddp_find_unused_parameters = False  # every parameter is used: skip DDP's extra graph walk
        super().__post_init__()


def reward_architecture_arguments() -> type:
    """A dataclass with one field per architecture argument of `RewardConfig.__init__` (same names, defaults and
    types), for HfArgumentParser/TrlParser: new RewardConfig options appear as flags with no second copy."""
    fields = []
    for name, parameter in inspect.signature(RewardConfig.__init__).parameters.items():
        if name == "self" or name in _NOT_ARCHITECTURE or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        default = parameter.default
        kind = type(default) if default is not None else str
        fields.append((name, kind, field(default=default, metadata={"help": f"RewardConfig.{name} (new models)"})))
    return dataclasses.make_dataclass("RewardArchitectureArguments", fields)


def reward_config_kwargs(architecture: Any) -> dict[str, Any]:
    """The `RewardConfig` keyword arguments held by a `reward_architecture_arguments` instance."""
    return dataclasses.asdict(architecture)
