"""One GRPO step of a Whisper-tiny-shaped policy: encoder once per clip (rlnf) vs. once per sample (naive).

Each path runs in its own subprocess (fair peak-memory numbers), on the same random policy, data, seed and
rewards (the demo setup: the reward model, published shape and random weights, plus ``wer``). The naive path is
the same trainer with every row treated as its own clip, i.e. what TRL's text path would do: decode, featurise
and encode each of the G copies of a clip, in generation and in every log-prob pass.

    python benchmarks/bench_grpo_step.py                       # G=8, 2 clips/step, 30 s windows
    python benchmarks/bench_grpo_step.py --clips 4 --steps 3 --max-completion-length 64

Prints one JSON line: seconds per step for both paths, their ratio (goal >= 3), peak RSS of each process, and
the reward functions' share of the step time (goal < 10%).
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
}.items():
    os.environ.setdefault(_name, _value)

from rlnf.testing import BAMBARA_SAMPLE as TEXTS  # noqa: E402


class TimedReward:
    """Wraps a reward function and adds up the time spent in it (TRL logs under the wrapped name)."""

    def __init__(self, func, name: str):
        self.func, self.__name__, self.seconds = func, name, 0.0

    def __call__(self, **kwargs):
        start = time.perf_counter()
        try:
            return self.func(**kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def whisper_tiny_workload(opts: argparse.Namespace) -> tuple:
    """Whisper-tiny-shaped random policy (30 s window), a random reward model + wer (timed), and
    ``opts.clips * (warmup + steps)`` 8-12 s clips as WAV files: what every step benchmark compares on."""
    import numpy as np
    import soundfile as sf
    import torch
    from datasets import Dataset

    from rlnf.policies.tiny_whisper import build_tiny_whisper
    from rlnf.reward_model import RewardConfig, RewardModel, train_tokenizer
    from rlnf.rewards.audio_text_reward import AudioTextReward
    from rlnf.rewards.registry import REWARD_FUNCS

    policy, processor = build_tiny_whisper(
        TEXTS * 4,
        d_model=384,
        layers=4,
        heads=6,
        ffn_dim=1536,
        max_source_positions=1500,
        max_target_positions=448,
        model_vocab_size=51865,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as folder:
        reward_processor = train_tokenizer(TEXTS * 8, folder, vocab_size=128)
    torch.manual_seed(0)
    reward_model = RewardModel(RewardConfig(vocab_size=len(reward_processor.tokenizer))).eval()
    rewards = [
        TimedReward(AudioTextReward(reward_model, reward_processor, device="cpu"), "reward_model"),
        TimedReward(REWARD_FUNCS["wer"](), "wer"),
    ]

    # WAV files: a datasets column of raw float lists would add a per-row copy to both paths
    rng = np.random.default_rng(0)
    audio_dir = Path(tempfile.mkdtemp(prefix="bench-audio-"))
    paths, texts = [], []
    steps = opts.warmup + opts.steps
    for i in range(opts.clips * steps):
        seconds = 8.0 + 4.0 * rng.random()
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        paths.append(str(audio_dir / f"clip{i}.wav"))
        sf.write(paths[-1], audio.astype(np.float32), 16000)
        texts.append(TEXTS[i % len(TEXTS)])
    dataset = Dataset.from_dict({"audio": paths, "text": texts})
    return policy, processor, rewards, dataset, steps


def run_one(mode: str, opts: argparse.Namespace) -> dict:
    """Build policy, rewards and trainer; run warm-up + timed steps; report timings and peak memory."""
    import torch
    from transformers import TrainerCallback

    from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer

    if opts.threads:
        torch.set_num_threads(opts.threads)

    class NaiveASRGRPOTrainer(ASRGRPOTrainer):
        """Every row is its own clip: the encoder runs for each of the G copies of a clip."""

        def _clip_key(self, row, position):
            return ("position", position)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.starts, self.durations = [], []

        def on_step_begin(self, args, state, control, **kwargs):
            self.starts.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.durations.append(time.perf_counter() - self.starts[-1])

    policy, processor, rewards, dataset, steps = whisper_tiny_workload(opts)

    args = ASRGRPOConfig(
        output_dir=tempfile.mkdtemp(prefix=f"bench-{mode}-"),
        per_device_train_batch_size=opts.generations * opts.clips,
        num_generations=opts.generations,
        max_completion_length=opts.max_completion_length,
        max_steps=steps,
        beta=opts.beta,
        freeze_encoder=opts.freeze_encoder,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        shuffle_dataset=False,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer_class = ASRGRPOTrainer if mode == "shared" else NaiveASRGRPOTrainer
    timer = StepTimer()
    trainer = trainer_class(
        policy, rewards, args=args, train_dataset=dataset, processing_class=processor, callbacks=[timer]
    )
    encoder_rows: list[int] = []
    encoder = trainer.model.get_encoder()
    encoder.register_forward_hook(lambda _m, _a, out: encoder_rows.append(out.last_hidden_state.shape[0]))

    reward_seconds_per_step = []

    class RewardTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.before = sum(r.seconds for r in rewards)

        def on_step_end(self, args, state, control, **kwargs):
            reward_seconds_per_step.append(sum(r.seconds for r in rewards) - self.before)

    trainer.add_callback(RewardTimer())
    trainer.train()
    measured = timer.durations[opts.warmup :]
    measured_rewards = reward_seconds_per_step[opts.warmup :]
    step = statistics.median(measured)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "mode": mode,
        "seconds_per_step": step,
        "step_seconds": measured,
        "reward_seconds_per_step": statistics.median(measured_rewards),
        "reward_share": statistics.median(r / s for r, s in zip(measured_rewards, measured, strict=True)),
        "peak_rss_mib": peak_kib / 1024,
        "encoder_rows_per_step": sum(encoder_rows) / steps,
        "completion_mean_length": statistics.mean(
            h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
        ),
    }
    if torch.cuda.is_available():
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2, help="unique clips per step")
    parser.add_argument("--generations", type=int, default=8, help="G: samples per clip")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--beta", type=float, default=0.04, help="KL weight (0.04 adds the reference pass)")
    parser.add_argument("--freeze-encoder", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--mode", choices=["shared", "naive"], help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.mode:  # child process: one path, result as the last stdout line
        print(json.dumps(run_one(opts.mode, opts)), flush=True)
        return

    results = {}
    for mode in ("shared", "naive"):
        child = [sys.executable, str(Path(__file__).resolve()), "--mode", mode, *sys.argv[1:]]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"{mode} run failed with exit code {done.returncode}")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])

    shared, naive = results["shared"], results["naive"]
    print(
        json.dumps(
            {
                "benchmark": "grpo_step_encoder_once_per_clip",
                "policy": "whisper-tiny-shaped (d_model 384, 4+4 layers, 6 heads, 80 mels, 3000 frames, vocab 51865)",
                "clips_per_step": opts.clips,
                "num_generations": opts.generations,
                "max_completion_length": opts.max_completion_length,
                "beta": opts.beta,
                "freeze_encoder": opts.freeze_encoder,
                "device": "cuda" if "cuda_peak_mib" in shared else "cpu",
                "cpu_count": os.cpu_count(),
                "torch_threads": opts.threads or "default",
                "load_average_at_end": [
                    round(x, 2) for x in os.getloadavg()
                ],  # other work on the machine skews timings
                "seconds_per_step": {
                    "encoder_once_per_clip": round(shared["seconds_per_step"], 3),
                    "naive": round(naive["seconds_per_step"], 3),
                },
                "speedup": round(naive["seconds_per_step"] / shared["seconds_per_step"], 2),
                "peak_rss_mib": {
                    "encoder_once_per_clip": round(shared["peak_rss_mib"]),
                    "naive": round(naive["peak_rss_mib"]),
                },
                "cuda_peak_mib": {
                    k: round(v["cuda_peak_mib"])
                    for k, v in (("encoder_once_per_clip", shared), ("naive", naive))
                    if "cuda_peak_mib" in v
                },
                "encoder_rows_per_step": {
                    "encoder_once_per_clip": shared["encoder_rows_per_step"],
                    "naive": naive["encoder_rows_per_step"],
                },
                "reward_share_of_step": {
                    "encoder_once_per_clip": round(shared["reward_share"], 4),
                    "naive": round(naive["reward_share"], 4),
                },
                "reward_seconds_per_step": round(shared["reward_seconds_per_step"], 3),
                "completion_mean_length": shared["completion_mean_length"],
                "step_seconds": {"encoder_once_per_clip": shared["step_seconds"], "naive": naive["step_seconds"]},
            }
        )
    )


if __name__ == "__main__":
    main()
