"""One GRPO step of a wav2vec2-base-shaped CTC policy at G = 8 vs G = 1 samples per clip (issue 12's figure).

A CTC policy samples G transcripts per clip from ONE forward (G frame paths drawn from the same per-frame
distributions) and scores all G with one forward per clip plus a CTC loss over G targets, so a step at G = 8
should cost little more than at G = 1 (goal: <= 1.3x). Each setting runs in its own subprocess (fair peak-memory
numbers) on the same random policy, 10 s clips, seed and rewards (``wer`` plus the reward model, published shape,
random weights).

TRL refuses num_generations < 2 (GRPO needs a group to normalise). The G = 1 run is built with G = 2 and set to
1 before the trainer is created, with ``scale_rewards="none"`` in both runs (a group of one has no std): its
advantages are 0, but every pass (sampling, rewards, reference and policy log-probs, backward, optimizer) runs
as at G = 8. That is the cost the figure compares.

    python benchmarks/bench_ctc_step.py                       # 2 clips/step, 10 s, G = 8 vs 1
    python benchmarks/bench_ctc_step.py --steps 2 --threads 2
    python benchmarks/bench_ctc_step.py --policy demo-tdt --steps 2 --warmup 1 --threads 1   # the TDT demo
    python benchmarks/bench_ctc_step.py --score-memory --threads 1   # TDT scoring pass: 8 x 30 s, 1,024 tokens

Prints one JSON line: seconds per step of both settings, their ratio, peak RSS (and CUDA peak) of each, model
forwards per step and their batch sizes, and the mean transcript length.

``--score-memory`` measures the TDT family's scoring pass instead (`TDTPolicy.log_probs`, what the reference
and policy passes run): G rows of ONE 30 s clip (T = 375 frames at 80 ms), transcripts of 100 labels, a
1,024-token vocabulary plus the blank, durations 0-4, a 640-wide prediction network and joint (soloni's
sizes) on a tiny encoder; forward only (no grad) and forward + backward, at G = 8 and G = 1, each in its own
process. The figure is the peak resident memory above what the process held before the pass (``VmHWM`` reset
through ``/proc/self/clear_refs``; CUDA: ``max_memory_allocated``), next to the size of the full
``[T, U+1, V+D]`` float32 logits lattice of one sample.
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
    os.environ.setdefault(_name, _value)  # fmt: skip

TEXTS = [
    "i ni ce", "i ni sɔgɔma", "a bɛ so kɔnɔ", "ne tɔgɔ ye fanta ye", "an bɛ taa sugu la", "muso ni cɛ bɛ baara la",
    "ɲɔ ni malo sɔngɔ ka gɛlɛn", "sanji bɛ na bi", "tile ka kalan kosɛbɛ", "den fila bɛ yen", "i ka kɛnɛ wa",
]  # fmt: skip
WAV2VEC2_BASE = {  # facebook/wav2vec2-base's architecture (group-norm feature encoder, no attention mask)
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "conv_dim": (512,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "feat_extract_norm": "group", "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
}  # fmt: skip


def run_one(generations: int, opts: argparse.Namespace) -> dict:
    """Build policy, rewards and trainer for one G; run warm-up + timed steps; report timings and memory."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from rlnf.policies.tiny_ctc import tiny_wav2vec2_ctc
    from rlnf.reward_model import RewardConfig, RewardModel, train_tokenizer
    from rlnf.rewards.audio_text_reward import AudioTextReward
    from rlnf.rewards.registry import REWARD_FUNCS
    from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer

    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.starts, self.durations = [], []

        def on_step_begin(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.starts.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.durations.append(time.perf_counter() - self.starts[-1])

    if opts.policy == "demo-tdt":  # the shipped tiny Parakeet TDT (the transducer family's G = 8 vs G = 1 figure)
        from transformers import AutoProcessor

        from rlnf.assets import resolve_demo_path
        from rlnf.policies.base import load_policy_model

        path = resolve_demo_path("demo-tdt", "policy")
        policy, processor = load_policy_model(path), AutoProcessor.from_pretrained(path)
    else:
        policy, processor = tiny_wav2vec2_ctc(**WAV2VEC2_BASE, blank_bias=opts.blank_bias, seed=0)

    with tempfile.TemporaryDirectory() as folder:
        reward_processor = train_tokenizer(TEXTS * 8, folder, vocab_size=128)
    torch.manual_seed(0)
    reward_model = RewardModel(RewardConfig(vocab_size=len(reward_processor.tokenizer))).eval()
    rewards = [AudioTextReward(reward_model, reward_processor, device=device), REWARD_FUNCS["wer"]()]

    # Clips as WAV files: a datasets column of raw float lists would cost a per-ROW copy (G times per clip) in the
    # data loader and accelerate's send_to_device, which is not the policy's cost (2.6M Python floats per step here).
    import soundfile as sf

    rng = np.random.default_rng(0)
    steps = opts.warmup + opts.steps
    audio_dir = Path(tempfile.mkdtemp(prefix="bench-ctc-audio-"))
    paths, texts = [], []
    for i in range(opts.clips * steps):
        t = np.arange(int(opts.seconds * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        paths.append(str(audio_dir / f"clip{i}.wav"))
        sf.write(paths[-1], audio.astype(np.float32), 16000)
        texts.append(TEXTS[i % len(TEXTS)])
    dataset = Dataset.from_dict({"audio": paths, "text": texts})

    args = ASRGRPOConfig(
        output_dir=tempfile.mkdtemp(prefix=f"bench-ctc-g{generations}-"),
        per_device_train_batch_size=max(generations, 2) * opts.clips,
        num_generations=max(generations, 2),
        max_steps=steps,
        beta=opts.beta,
        scale_rewards="none",
        loss_type="grpo",
        importance_sampling_level="sequence",
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        shuffle_dataset=False,
        use_cpu=device == "cpu",
        disable_tqdm=True,
    )
    if generations == 1:  # see the module docstring
        args.num_generations = 1
        args.per_device_train_batch_size = opts.clips
        args.generation_batch_size = opts.clips
    timer = StepTimer()
    trainer = ASRGRPOTrainer(
        policy, rewards, args=args, train_dataset=dataset, processing_class=processor, callbacks=[timer]
    )
    forwards: list[int] = []
    trainer.policy.critic_encoder(trainer.model).register_forward_hook(
        lambda _m, _a, out: forwards.append(out.last_hidden_state.shape[0])
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    measured = timer.durations[opts.warmup :]
    result = {
        "generations": generations,
        "seconds_per_step": statistics.median(measured),
        "step_seconds": measured,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "policy_forwards_per_step": len(forwards) / steps,
        "policy_forward_batch_sizes": sorted(set(forwards)),
        "completion_mean_length": statistics.mean(
            h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
        ),
        "device": device,
    }
    if device == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    return result


def score_memory(rows: int, backward: bool, opts: argparse.Namespace) -> dict:
    """Peak memory and time of one TDT scoring pass over ``rows`` samples of one 30 s clip (module docstring)."""
    import numpy as np
    import torch

    from rlnf.policies.base import ClipBatch, PolicyOptions, policy_for
    from rlnf.policies.tiny_ctc import bambara_parakeet_tokenizer
    from rlnf.policies.transducer import tiny_parakeet_tdt

    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = bambara_parakeet_tokenizer([chr(0x4E00 + i) for i in range(opts.vocab - 2)])  # + <unk>, word start
    model, processor = tiny_parakeet_tdt(
        tokenizer, hidden_size=64, num_mel_bins=80, decoder_hidden_size=640, max_symbols_per_step=10
    )
    model.to(device).train()
    policy = policy_for(model, processor, PolicyOptions(max_completion_length=None))
    policy.configure_sampling({"temperature": 1.0})
    audio = np.random.default_rng(0).standard_normal(int(opts.seconds * 16000)).astype(np.float32) * 0.1
    clips = ClipBatch(policy.clip_inputs([audio], device, torch.float32), torch.zeros(rows, dtype=torch.long))
    labels = torch.randint(0, policy.blank, (rows, opts.labels), generator=torch.Generator().manual_seed(0))
    ids = torch.cat([labels, torch.full((rows, 1), policy.blank)], dim=1).to(device)
    mask = torch.ones_like(ids)
    frames = int(policy.frames(model, clips)[0])

    def rss_kib(field: str) -> int:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field)))

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = rss_kib("VmRSS") * 1024
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        logps, _ = policy.log_probs(model, clips, ids, mask, ids.size(1))
        if backward:
            logps.sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = rss_kib("VmHWM") * 1024 - before
    outputs = policy.vocab_size + len(policy.durations)
    return {
        "rows": rows,
        "backward": backward,
        "seconds": time.perf_counter() - start,
        "peak_extra_gib": peak / 2**30,
        "frames": frames,
        "labels": opts.labels,
        "outputs": outputs,
        "full_lattice_gib_per_row": 4 * frames * (opts.labels + 1) * outputs / 2**30,
        "finite": bool(torch.isfinite(logps).all()),
        "device": device.type,
    }


def run_score_memory(opts: argparse.Namespace) -> None:
    results = []
    for rows, backward in ((8, False), (8, True), (1, False), (1, True)):
        child = [sys.executable, str(Path(__file__).resolve()), "--score-memory-child", f"{rows},{int(backward)}",
                 *sys.argv[1:]]  # fmt: skip
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"score-memory run {rows} rows, backward={backward} failed ({done.returncode})")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = results[0]
    print(json.dumps({
        "benchmark": "tdt_scoring_pass_memory",
        "setting": f"one {opts.seconds:g} s clip (T = {first['frames']} frames), {opts.labels}-label transcripts, "
                   f"{first['outputs']} joint outputs (vocabulary + blank + 5 durations), prediction network and "
                   "joint 640 wide, tiny encoder",
        "device": first["device"],
        "torch_threads": opts.threads or "default",
        "full_lattice_gib_per_row": round(first["full_lattice_gib_per_row"], 3),
        "peak_extra_gib": {f"{r['rows']} row{'s' * (r['rows'] > 1)}, {'forward + backward' if r['backward'] else 'forward'}":
                           round(r["peak_extra_gib"], 3) for r in results},
        "seconds": {f"{r['rows']} row{'s' * (r['rows'] > 1)}, {'forward + backward' if r['backward'] else 'forward'}":
                    round(r["seconds"], 2) for r in results},
        "all_finite": all(r["finite"] for r in results),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2, help="unique clips per step")
    parser.add_argument("--seconds", type=float, help="clip length (default 10; --score-memory: 30)")
    parser.add_argument("--generations", type=int, default=8, help="G of the grouped run (compared with G = 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--beta", type=float, default=0.04, help="KL weight (0.04 adds the reference pass)")
    parser.add_argument(
        "--blank-bias", type=float, default=5.0, help="added to the blank logit (~1 label per 5 frames)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--policy", choices=["wav2vec2-base", "demo-tdt"], default="wav2vec2-base",
                        help="the CTC wav2vec2-base shape (random) or the shipped demo TDT policy")  # fmt: skip
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--score-memory", action="store_true",
                        help="measure the TDT scoring pass (8 x 30 s, 1,024 tokens) instead of the step")  # fmt: skip
    parser.add_argument("--vocab", type=int, default=1024, help="--score-memory: tokens, not counting the blank")
    parser.add_argument("--labels", type=int, default=100, help="--score-memory: labels per transcript")
    parser.add_argument("--score-memory-child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.seconds = opts.seconds or (30.0 if opts.score_memory or opts.score_memory_child else 10.0)

    if opts.score_memory_child:
        rows, backward = opts.score_memory_child.split(",")
        print(json.dumps(score_memory(int(rows), bool(int(backward)), opts)), flush=True)
        return
    if opts.score_memory:
        run_score_memory(opts)
        return

    if opts.child is not None:  # child process: one setting, result as the last stdout line
        print(json.dumps(run_one(opts.child, opts)), flush=True)
        return

    results = {}
    for generations in (opts.generations, 1):
        child = [sys.executable, str(Path(__file__).resolve()), "--child", str(generations), *sys.argv[1:]]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"G={generations} run failed with exit code {done.returncode}")
        results[generations] = json.loads(done.stdout.strip().splitlines()[-1])

    grouped, single = results[opts.generations], results[1]
    print(json.dumps({
        "benchmark": "ctc_grpo_step_G_vs_1",
        "policy": (
            "the shipped demo TDT (ParakeetForTDT, 0.66 M parameters)" if opts.policy == "demo-tdt" else
            "wav2vec2-base-shaped Wav2Vec2ForCTC (768 x 12 layers, 7-layer conv front end, random weights, "
            "Bambara char vocab 36)"
        ) + f", {opts.seconds:g} s clips",
        "clips_per_step": opts.clips,
        "num_generations": opts.generations,
        "beta": opts.beta,
        "device": grouped["device"],
        "gpu": grouped.get("gpu"),
        "cpu_count": os.cpu_count(),
        "torch_threads": opts.threads or "default",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_step": {f"G={opts.generations}": round(grouped["seconds_per_step"], 3),
                             "G=1": round(single["seconds_per_step"], 3)},
        "ratio": round(grouped["seconds_per_step"] / single["seconds_per_step"], 3),
        "goal_ratio_at_most": 1.3,
        "peak_rss_mib": {f"G={opts.generations}": round(grouped["peak_rss_mib"]), "G=1": round(single["peak_rss_mib"])},
        "cuda_peak_mib": {k: round(v["cuda_peak_mib"]) for k, v in ((f"G={opts.generations}", grouped),
                                                                      ("G=1", single)) if "cuda_peak_mib" in v},
        "policy_forwards_per_step": {f"G={opts.generations}": grouped["policy_forwards_per_step"],
                                     "G=1": single["policy_forwards_per_step"]},
        "policy_forward_batch_sizes": {f"G={opts.generations}": grouped["policy_forward_batch_sizes"],
                                       "G=1": single["policy_forward_batch_sizes"]},
        "completion_mean_length": {f"G={opts.generations}": round(grouped["completion_mean_length"], 1),
                                   "G=1": round(single["completion_mean_length"], 1)},
        "step_seconds": {f"G={opts.generations}": grouped["step_seconds"], "G=1": single["step_seconds"]},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
