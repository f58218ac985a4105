"""The CTC path on the Bambara demo corpus: SFT warm start of a tiny Parakeet CTC policy, then GRPO per seed.

1. SFT (transformers' ``Trainer`` + `rlnf.policies.ctc.CTCCollator`, the model's own CTC loss) on the SOURCE
   domain (``sft_train``), from random weights: `rlnf.policies.tiny_ctc.demo_parakeet_ctc`.
2. GRPO (``ASRGRPOTrainer``, G = 8, 2 clips/step, rewards: the shipped demo reward model 0.25 + wer 1.0, beta
   0.04, ``loss_type="grpo"``, sequence-level ratios) on the TARGET domain (``rl_train``), one run per seed.
3. Greedy WER/CER on the first ``--eval-clips`` clips of ``test`` (target domain) before and after each run.

    python benchmarks/ctc_demo_learning.py                        # SFT 1500 steps (~10 min), GRPO 300 x 3 seeds
    python benchmarks/ctc_demo_learning.py --sft-dir outputs/ctc-sft --grpo-steps 100 --seeds 0

Prints one JSON line per GRPO seed and a summary line (relative WER drop per seed; goal >= 10 % on every seed).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
}.items():
    os.environ.setdefault(_name, _value)  # fmt: skip


def sft(folder: Path, steps: int, eval_clips: int) -> dict:
    """Train the demo CTC policy on sft_train and save it (with its processor) to ``folder``."""
    from transformers import Trainer, TrainingArguments

    from rlnf.data.demo_corpus import load_demo_corpus
    from rlnf.policies.ctc import CTCCollator
    from rlnf.policies.tiny_ctc import demo_parakeet_ctc
    from rlnf.trainers.asr_eval import evaluate_asr

    corpus = load_demo_corpus()
    model, processor = demo_parakeet_ctc()
    args = TrainingArguments(
        output_dir=str(folder / "trainer"), per_device_train_batch_size=16, max_steps=steps, learning_rate=2e-3,
        lr_scheduler_type="cosine", warmup_steps=min(100, steps // 10), weight_decay=0.01, logging_steps=100,
        save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False, dataloader_num_workers=0,
        seed=0, disable_tqdm=True,
    )  # fmt: skip
    start = time.perf_counter()
    collator = CTCCollator(processor, main_input_name=model.main_input_name)
    Trainer(model=model, args=args, train_dataset=corpus["sft_train"], data_collator=collator).train()
    seconds = time.perf_counter() - start
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    result = {"sft_steps": steps, "sft_seconds": round(seconds, 1)}
    for split in ("sft_validation", "test"):
        rates = evaluate_asr(model, processor, corpus[split].select(range(eval_clips)))
        result[split] = {"wer": rates["wer"], "cer": rates["cer"]}
    return result


def grpo(folder: Path, steps: int, seed: int, learning_rate: float, eval_clips: int) -> dict:
    """GRPO from the SFT policy in ``folder`` on rl_train; greedy WER/CER on test before and after."""
    from transformers import AutoProcessor

    from rlnf import ASRGRPOConfig, ASRGRPOTrainer, get_reward_funcs
    from rlnf.assets import resolve_model_path
    from rlnf.data.demo_corpus import load_demo_corpus
    from rlnf.policies.base import load_policy_model

    corpus = load_demo_corpus()
    model, processor = load_policy_model(str(folder)), AutoProcessor.from_pretrained(folder)
    funcs, weights = get_reward_funcs(
        ["reward_model", "wer"], weights=[0.25, 1.0], reward_model_path=resolve_model_path("demo", "reward_model"),
        audio_column="audio", reference_column="text",
    )  # fmt: skip
    args = ASRGRPOConfig(
        output_dir=str(folder / f"grpo-seed{seed}"), per_device_train_batch_size=16, num_generations=8,
        max_steps=steps, learning_rate=learning_rate, lr_scheduler_type="constant", beta=0.04, temperature=1.0,
        loss_type="grpo", importance_sampling_level="sequence", reward_weights=weights, logging_steps=10,
        save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=seed, eval_strategy="no",
        eval_sampled_rewards=False, per_device_eval_batch_size=16, disable_tqdm=True,
    )  # fmt: skip
    trainer = ASRGRPOTrainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=corpus["rl_train"],
        eval_dataset=corpus["test"].select(range(eval_clips)), processing_class=processor,
    )  # fmt: skip
    before = trainer.evaluate()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    after = trainer.evaluate()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {
        "seed": seed,
        "grpo_steps": steps,
        "learning_rate": learning_rate,
        "before": {"wer": before["eval_wer"], "cer": before["eval_cer"]},
        "after": {"wer": after["eval_wer"], "cer": after["eval_cer"]},
        "relative_wer_drop": (before["eval_wer"] - after["eval_wer"]) / before["eval_wer"],
        "reward_first_log": rewards[0],
        "reward_last_log": rewards[-1],
        "grpo_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft-dir", type=Path, default=Path("outputs/demo-ctc-sft"))
    parser.add_argument("--sft-steps", type=int, default=1500, help="0: reuse the policy already in --sft-dir")
    parser.add_argument("--grpo-steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-clips", type=int, default=200, help="clips of test (and sft_validation) scored")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()

    import torch

    torch.set_num_threads(opts.threads)
    if opts.sft_steps:
        print(json.dumps({"sft": sft(opts.sft_dir, opts.sft_steps, opts.eval_clips)}), flush=True)
    runs = [grpo(opts.sft_dir, opts.grpo_steps, s, opts.learning_rate, opts.eval_clips) for s in opts.seeds]
    for run in runs:
        print(json.dumps(run), flush=True)
    drops = [round(r["relative_wer_drop"], 4) for r in runs]
    print(json.dumps({"relative_wer_drop_per_seed": drops, "goal_at_least": 0.10, "met": min(drops) >= 0.10}))


if __name__ == "__main__":
    main()
