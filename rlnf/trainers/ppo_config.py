"""``ASRPPOConfig``: ``transformers.TrainingArguments`` plus the speech fields and PPO's, for `ASRPPOTrainer`.

TRL 1.16 has no PPO config any more; the PPO fields keep the names and defaults of TRL's former ``PPOConfig``
(``num_ppo_epochs``, ``num_mini_batches``, ``cliprange``, ``cliprange_value``, ``vf_coef``, ``gamma``, ``lam``,
``kl_coef``, ``kl_estimator``, ``whiten_rewards``) so a former TRL PPO user finds them. Every field carries
``metadata["help"]`` so ``TrlParser`` turns the config into a CLI and YAML schema.

Batch sizes: a rollout batch is ``per_device_train_batch_size x num_mini_batches`` completions per process
(``num_generations`` per clip); it is scored once, then ``num_ppo_epochs`` passes over it, each split into
``num_mini_batches`` shuffled mini-batches, one Trainer step each (``gradient_accumulation_steps`` of them per
optimizer update). ``max_steps`` counts optimizer updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .grpo_config import _bf16_available
from .speech_config import SpeechConfigMixin


@dataclass
class ASRPPOConfig(SpeechConfigMixin, TrainingArguments):
    r"""Configuration for [`ASRPPOTrainer`]: PPO with a value model for speech-to-text policies.

    The speech fields come from `SpeechConfigMixin` (shared with `ASRGRPOConfig` and `ASRRLOOConfig`).
    """

    # ---- model and rewards -----------------------------------------------------------------------
    model_init_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Keyword arguments for from_pretrained when the policy is given as a path or hub id."},
    )
    reward_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Weight of each reward function in the sequence score (None: all 1.0)."},
    )
    value_model: str = field(
        default="separate",
        metadata={
            "help": "Critic. 'separate' (default): a copy of the policy's encoder-decoder trunk with a value head on "
            "the decoder states (one value per token). 'shared': a value head on the policy's own decoder states "
            "(no second model; the value loss trains the shared trunk). 'audio': one value per clip from "
            "mean-pooled encoder states (the original RLNF critic; the only choice for CTC policies); its "
            "advantage is sequence level (score - value)."
        },
    )

    # ---- rollouts --------------------------------------------------------------------------------
    num_generations: int = field(
        default=1,
        metadata={"help": "Transcripts sampled per clip in a rollout (PPO needs no group; 1 is standard)."},
    )
    num_mini_batches: int = field(
        default=1,
        metadata={
            "help": "Mini-batches per rollout batch: a rollout is per_device_train_batch_size x num_mini_batches "
            "completions per process. A multiple of gradient_accumulation_steps."
        },
    )
    num_ppo_epochs: int = field(
        default=4,
        metadata={"help": "Passes over each rollout batch (reshuffled into mini-batches each time)."},
    )
    max_completion_length: int | None = field(
        default=128,
        metadata={"help": "Maximum sampled tokens per transcript (after the decoder prefix)."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of the rollouts (1.0: off)."})
    top_k: int = field(default=0, metadata={"help": "Top-k sampling of the rollouts (0: off)."})
    generation_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Extra GenerationConfig settings for the rollouts; they override the ones above."},
    )
    ds3_gather_for_generation: bool = field(
        default=True,
        metadata={"help": "Gather ZeRO-3 weights for generation (kept for the shared sampling path)."},
    )

    # ---- PPO -------------------------------------------------------------------------------------
    cliprange: float = field(default=0.2, metadata={"help": "Clip range of the policy ratio."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Clip range of the value around its old value."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor of GAE."})
    lam: float = field(default=0.95, metadata={"help": "Lambda of GAE (bias/variance trade-off)."})
    whiten_rewards: bool = field(
        default=False, metadata={"help": "Scale the per-token rewards to unit variance before GAE."}
    )
    kl_coef: float = field(
        default=0.05,
        metadata={
            "help": "Per-token KL penalty coefficient to the frozen reference (initial value if adaptive_kl). "
            "0 with adaptive_kl=False: no reference model."
        },
    )
    kl_estimator: str = field(
        default="k1",
        metadata={"help": "Per-token KL estimate: 'k1' (log ratio, TRL's former PPO) or 'k3' (always >= 0)."},
    )
    adaptive_kl: bool = field(
        default=False,
        metadata={"help": "Adapt kl_coef towards kl_target (Ziegler et al. 2019), as TRL's former PPO could."},
    )
    kl_target: float = field(default=6.0, metadata={"help": "Target sequence KL of the adaptive controller."})
    kl_horizon: int = field(default=10000, metadata={"help": "Horizon (in samples) of the adaptive controller."})

    # ---- defaults changed from TrainingArguments -------------------------------------------------
    learning_rate: float = field(default=3e-6, metadata={"help": "Initial AdamW learning rate (TRL PPO's)."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep every dataset column: rewards read them."}
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. None (default): on only where a CUDA device supports bf16."},
    )
    eval_sampled_rewards: bool = field(
        default=False,
        metadata={"help": "Not supported by PPO (evaluation is the greedy WER/CER); must stay False."},
    )

    def __post_init__(self) -> None:
        self._check_speech_fields()
        if self.bf16 is None:
            self.bf16 = _bf16_available() and not self.fp16 and not self.use_cpu
        super().__post_init__()
        positive = ("num_generations", "num_mini_batches", "num_ppo_epochs")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.value_model not in ("separate", "shared", "audio"):
            raise ValueError(f"value_model must be 'separate', 'shared' or 'audio', got {self.value_model!r}")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"gamma and lam must lie in [0, 1], got {self.gamma} and {self.lam}")
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple of "
                f"num_generations ({self.num_generations}): a mini-batch holds whole clips' samples"
            )
        if self.num_mini_batches % self.gradient_accumulation_steps:
            raise ValueError(
                f"num_mini_batches ({self.num_mini_batches}) must be a multiple of gradient_accumulation_steps "
                f"({self.gradient_accumulation_steps}): an optimizer update never straddles two PPO epochs"
            )
        if self.per_device_train_batch_size * self.num_mini_batches * self.world_size < 2:
            raise ValueError("a rollout batch needs at least 2 completions (advantages are whitened over it)")
        if self.eval_sampled_rewards:
            raise ValueError("eval_sampled_rewards=True is not supported by ASRPPOTrainer: it reports greedy WER/CER")

    # TRL's repeat sampler and dataloader (reused from GRPOTrainer) read these names.
    @property
    def steps_per_generation(self) -> int:
        return self.num_mini_batches

    @property
    def generation_batch_size(self) -> int:
        """Completions of one rollout batch over all processes."""
        return self.per_device_train_batch_size * self.world_size * self.num_mini_batches


__all__ = ["ASRPPOConfig"]
