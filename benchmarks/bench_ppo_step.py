"""One training step of GRPO, RLOO and PPO (separate / shared / audio critic) on a Whisper-tiny-shaped policy.

Every trainer runs in its own subprocess (fair peak-memory numbers) on the same random policy, data, seed and
rewards (the reward model, published shape with random weights, plus ``wer``), with the SAME number of
completions per step: ``--clips`` clips x ``--generations`` samples (PPO samples G per clip too, so the audio
work is equal and the difference is the algorithm). PPO runs one epoch over one mini-batch per rollout, so one
PPO step is one rollout + one update, like one GRPO/RLOO step (``--ppo-epochs`` changes that).

    python benchmarks/bench_ppo_step.py --steps 1 --warmup 1 --threads 1
    python benchmarks/bench_ppo_step.py --trainers grpo ppo --clips 2 --generations 8

Prints one JSON line: wall and CPU seconds per step of each trainer and their ratios to GRPO (on a shared
machine the CPU-time ratio is the one to read), peak RSS, and for PPO the critic's share of the step's CPU time
(forward time of the critic's own passes, measured with hooks; its backward, about twice the forward, is not
included, so the full share is roughly three times the figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
}.items():
    os.environ.setdefault(_name, _value)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grpo_step import whisper_tiny_workload  # noqa: E402

TRAINERS = ("grpo", "rloo", "ppo", "ppo-shared", "ppo-audio")


def run_one(name: str, opts: argparse.Namespace) -> dict:
    import torch
    from transformers import TrainerCallback

    from rlnf.trainers import (
        ASRGRPOConfig,
        ASRGRPOTrainer,
        ASRPPOConfig,
        ASRPPOTrainer,
        ASRRLOOConfig,
        ASRRLOOTrainer,
    )

    if opts.threads:
        torch.set_num_threads(opts.threads)

    class StepTimer(TrainerCallback):
        """Wall and CPU seconds per step (CPU time of this process: the work done, whatever else the shared
        machine runs; with one torch thread it is the fairer comparison)."""

        def __init__(self):
            self.starts, self.durations, self.cpu = [], [], []

        def on_step_begin(self, args, state, control, **kwargs):
            self.starts.append((time.perf_counter(), time.process_time()))

        def on_step_end(self, args, state, control, **kwargs):
            self.durations.append(time.perf_counter() - self.starts[-1][0])
            self.cpu.append(time.process_time() - self.starts[-1][1])

    policy, processor, rewards, dataset, steps = whisper_tiny_workload(opts)

    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"bench-{name}-"),
        per_device_train_batch_size=opts.generations * opts.clips,
        num_generations=opts.generations,
        max_completion_length=opts.max_completion_length,
        max_steps=steps,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=not torch.cuda.is_available(),
    )
    if name == "grpo":
        trainer_class, args = ASRGRPOTrainer, ASRGRPOConfig(**common, beta=opts.kl, shuffle_dataset=False)
    elif name == "rloo":
        trainer_class, args = ASRRLOOTrainer, ASRRLOOConfig(**common, beta=opts.kl, shuffle_dataset=False)
    else:
        critic = {"ppo": "separate", "ppo-shared": "shared", "ppo-audio": "audio"}[name]
        args = ASRPPOConfig(**common, kl_coef=opts.kl, value_model=critic, num_ppo_epochs=opts.ppo_epochs)
        trainer_class = ASRPPOTrainer
    timer = StepTimer()
    trainer = trainer_class(policy, rewards, args=args, train_dataset=dataset, processing_class=processor,
                            callbacks=[timer])  # fmt: skip

    critic_seconds: list[float] = []
    critic = getattr(trainer, "value_model", None)
    if critic is not None and name != "ppo-shared":  # the shared head is a single matmul inside the policy pass
        clock: dict[str, float] = {}
        critic.register_forward_pre_hook(lambda *_: clock.__setitem__("t", time.process_time()))
        critic.register_forward_hook(lambda *_: critic_seconds.append(time.process_time() - clock["t"]))
    marks: list[int] = []

    class CriticMarks(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(len(critic_seconds))

    trainer.add_callback(CriticMarks())
    trainer.train()
    measured = timer.durations[opts.warmup :]
    measured_cpu = timer.cpu[opts.warmup :]
    per_step_critic = [
        sum(critic_seconds[(marks[i - 1] if i else 0) : marks[i]]) for i in range(opts.warmup, len(marks))
    ]
    result = {
        "trainer": name,
        "seconds_per_step": statistics.median(measured),
        "step_seconds": measured,
        "cpu_seconds_per_step": statistics.median(measured_cpu),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "completion_mean_length": statistics.mean(
            h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
        ),
    }
    if per_step_critic and critic_seconds:
        result["critic_forward_share"] = statistics.median(
            c / s for c, s in zip(per_step_critic, measured_cpu, strict=True)
        )
    if critic is not None:
        result["critic_parameters_m"] = sum(p.numel() for p in critic.parameters()) / 1e6
    if torch.cuda.is_available():
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--clips", type=int, default=2, help="unique clips per step")
    parser.add_argument("--generations", type=int, default=8, help="samples per clip (all trainers)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--kl", type=float, default=0.04, help="KL weight of every trainer (adds the reference)")
    parser.add_argument("--ppo-epochs", type=int, default=1, help="PPO epochs per rollout (1: one update per step)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.child:
        print(json.dumps(run_one(opts.child, opts)), flush=True)
        return
    results = {}
    forwarded = [a for a in sys.argv[1:]]
    for name in opts.trainers:
        child = [sys.executable, str(Path(__file__).resolve()), "--child", name, *forwarded]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"{name} run failed with exit code {done.returncode}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results.get("grpo", next(iter(results.values())))
    base_wall, base_cpu = base["seconds_per_step"], base["cpu_seconds_per_step"]
    print(json.dumps({
        "benchmark": "rl_step_grpo_rloo_ppo",
        "policy": "whisper-tiny-shaped (d_model 384, 4+4 layers, 6 heads, 80 mels, 3000 frames = 30 s, vocab 51865)",
        "clips_per_step": opts.clips,
        "completions_per_step": opts.clips * opts.generations,
        "max_completion_length": opts.max_completion_length,
        "kl": opts.kl,
        "ppo_epochs": opts.ppo_epochs,
        "device": "cuda" if any("cuda_peak_mib" in r for r in results.values()) else "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": opts.threads or "default",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_step": {k: round(r["seconds_per_step"], 3) for k, r in results.items()},
        "cpu_seconds_per_step": {k: round(r["cpu_seconds_per_step"], 3) for k, r in results.items()},
        "cpu_ratio_to_grpo": {k: round(r["cpu_seconds_per_step"] / base_cpu, 2) for k, r in results.items()},
        "wall_ratio_to_grpo": {k: round(r["seconds_per_step"] / base_wall, 2) for k, r in results.items()},
        "peak_rss_mib": {k: round(r["peak_rss_mib"]) for k, r in results.items()},
        "cuda_peak_mib": {k: round(r["cuda_peak_mib"]) for k, r in results.items() if "cuda_peak_mib" in r},
        "critic_forward_share_of_step": {
            k: round(r["critic_forward_share"], 3) for k, r in results.items() if "critic_forward_share" in r
        },
        "critic_parameters_m": {k: round(r["critic_parameters_m"], 2) for k, r in results.items()
                                if "critic_parameters_m" in r},
        "completion_mean_length": {k: r["completion_mean_length"] for k, r in results.items()},
        "step_seconds": {k: r["step_seconds"] for k, r in results.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
