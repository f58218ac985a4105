"""A tiny, fully deterministic ASRGRPOTrainer run, launched by ``tests/test_distributed_equivalence.py``.

    python grpo_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                        # 1 process
    ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_2proc.yaml \\
        grpo_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                           # 2 processes

The global batch must be the same in both layouts (8 completions = 2 clips x G=4 per step): 8 with one
process, 4 with two. Each rank writes ``OUT_DIR/rank<r>.json`` (log_history, the completions it sampled with
their global row numbers) and ``OUT_DIR/rank<r>.pt`` (final state dict); the test compares them.

Sampling. TRL seeds every process differently (``set_seed(seed, device_specific=True)``) and draws one batched
``torch.multinomial`` per token over the rows of that process, so 1 and 2 processes cannot draw the same
samples from torch's generator. Here the randomness of the sampler is instead keyed by (generation call,
global row, token position): `KeyedGumbelSampling`, appended after all of transformers' processors and
warpers, adds Gumbel noise drawn from ``torch.Generator().manual_seed(key)`` to the final (temperature/top-k
warped) scores and keeps only the argmax. By the Gumbel-max trick that argmax is an exact sample from the
distribution TRL's sampler would draw from; ``torch.multinomial`` then picks it with probability 1. Everything
else is the production path unchanged: encoder once per clip, ``generate_from_encoder``, reward gathering
and group normalisation across ranks, log-prob and KL passes, DDP gradient all-reduce, optimizer.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import GenerationMixin, LogitsProcessor  # noqa: E402

from rlnf.testing import BAMBARA_SAMPLE, sine_clip  # noqa: E402
from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer  # noqa: E402

G = 4  # completions per clip
CLIPS_PER_STEP = 2
GLOBAL_BATCH = G * CLIPS_PER_STEP
STEPS = 2
NOISE_SEED = 1234


class KeyedGumbelSampling(LogitsProcessor):
    """Gumbel-max sampling whose noise depends on (call, global row, position), not on the process layout."""

    def __init__(self, call: int, first_global_row: int):
        self.call = call
        self.first_global_row = first_global_row

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows, vocab = scores.shape
        key = zlib.crc32(f"{NOISE_SEED}/{self.call}/{input_ids.shape[1]}".encode())
        uniform = torch.rand(GLOBAL_BATCH, vocab, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
        uniform = uniform[self.first_global_row : self.first_global_row + rows].clamp(1e-12, 1 - 1e-12)
        gumbel = -torch.log(-torch.log(uniform))
        choice = (scores.double().cpu() + gumbel).argmax(-1).to(scores.device)
        one_hot = torch.full_like(scores, -float("inf"))
        return one_hot.scatter_(1, choice[:, None], 0.0)


def install_keyed_sampling(rank: int, per_device_batch: int) -> None:
    """Append `KeyedGumbelSampling` to the processors of every ``generate`` call of this process."""
    original = GenerationMixin._get_logits_processor
    calls = {"n": 0}

    def get_logits_processor(self, *args, **kwargs):
        processors = original(self, *args, **kwargs)
        processors.append(KeyedGumbelSampling(calls["n"], rank * per_device_batch))
        calls["n"] += 1
        return processors

    GenerationMixin._get_logits_processor = get_logits_processor


class OverlapReward:
    """Deterministic reward that varies within a group: character overlap with the reference + a length term.

    Also records what this rank sampled (global row -> completion ids) so the test can check both layouts drew
    the same completions.
    """

    __name__ = "overlap"

    def __init__(self, rank: int, per_device_batch: int):
        self.first_global_row = rank * per_device_batch
        self.sampled: list[dict] = []

    def __call__(self, completions, completion_ids, text, trainer_state=None, **kwargs):
        step = trainer_state.global_step if trainer_state is not None else -1
        for i, ids in enumerate(completion_ids):
            self.sampled.append({"step": step, "row": self.first_global_row + i, "ids": list(map(int, ids))})
        return [
            len(set(hyp) & set(ref)) / len(set(ref)) + 0.05 * len(ids)
            for hyp, ref, ids in zip(completions, text, completion_ids, strict=True)
        ]


def dataset() -> Dataset:
    rows = [
        {
            "audio": {"array": sine_clip(0.6 + 0.1 * i, 170.0 + 60 * i, seed=i), "sampling_rate": 16000},
            "text": BAMBARA_SAMPLE[i],
        }
        for i in range(CLIPS_PER_STEP * STEPS)
    ]
    return Dataset.from_list(rows)


def main(policy_dir: str, out_dir: str, per_device_batch: int) -> None:
    torch.set_num_threads(1)
    out = Path(out_dir)
    args = ASRGRPOConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=per_device_batch,
        num_generations=G,
        max_completion_length=6,
        max_steps=STEPS,
        learning_rate=1e-3,
        beta=0.04,  # the KL term and the reference pass take part too
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        full_determinism=True,  # torch.use_deterministic_algorithms(True) and fixed seeds
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=True,
        bf16=False,  # fp32 throughout
        disable_tqdm=True,
        eval_normalizer="none",
    )
    rank = args.process_index
    install_keyed_sampling(rank, per_device_batch)
    reward = OverlapReward(rank, per_device_batch)
    trainer = ASRGRPOTrainer(policy_dir, [reward], args=args, train_dataset=dataset())
    trainer.train()

    world = trainer.accelerator.num_processes
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, out / f"rank{rank}.pt")
    record = {
        "rank": rank,
        "world": world,
        "per_device_batch": per_device_batch,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "log_history": trainer.state.log_history,
        "sampled": reward.sampled,
        "checksum": float(sum(v.double().abs().sum() for v in state.values() if v.is_floating_point())),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record, default=float))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
