"""The prepared GPU check (run through benchmarks/gpu_check.sh): GRPO steps of a Whisper-small-shaped random
policy on one CUDA GPU, bf16, 30 s inputs, G = 8, the reward model on the GPU, with and without LoRA; and the
policy's log-probs and a GRPO-shaped loss of one fixed batch in bf16 autocast against fp32.

    python benchmarks/gpu_check.py                 # on a CUDA machine (gpu_check.sh installs what is missing)
    python benchmarks/gpu_check.py --device cpu --tiny --steps 1 --warmup 0    # smoke test of the code path

Each training configuration runs in its own subprocess (clean peak-memory numbers). Prints one JSON line per
configuration and a final summary line: seconds per step, peak GPU memory, completion tokens per second,
encoder rows per clip (1 per pass when the encoder runs once per clip; G per pass if it ran once per sample),
and the precision check (PASS when bf16 stays within the tolerances below).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                      "TOKENIZERS_PARALLELISM": "false"}.items():  # fmt: skip
    os.environ.setdefault(_name, _value)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # rlnf from this checkout, no install needed

from rlnf.testing import BAMBARA_SAMPLE as TEXTS  # noqa: E402

LOGP_TOLERANCE = 0.05  # mean |log p_bf16 - log p_fp32| per token (bf16 keeps ~3 significant digits)
LOSS_TOLERANCE = 0.02  # relative difference of the loss
STEP_LOSS_TOLERANCE = 1e-3  # the trainer's loss of one step: its policy term is ~0 on-policy, its KL term is small


def _policy(opts: argparse.Namespace):
    from rlnf.policies.tiny_whisper import build_tiny_whisper

    if opts.tiny:
        return build_tiny_whisper(TEXTS * 4, d_model=64, layers=2, heads=2, max_source_positions=1500,
                                  max_target_positions=448, seed=0)  # fmt: skip
    return build_tiny_whisper(  # Whisper-small's shape: 768 wide, 12 + 12 layers, 12 heads, 30 s, 51865 ids
        TEXTS * 4, d_model=768, layers=12, heads=12, ffn_dim=3072, max_source_positions=1500,
        max_target_positions=448, model_vocab_size=51865, seed=0,
    )  # fmt: skip


def _clips(count: int, folder: Path, seconds: float) -> list[str]:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        paths.append(str(folder / f"clip{i}.wav"))
        sf.write(paths[-1], audio.astype(np.float32), 16000)
    return paths


def run_training(mode: str, opts: argparse.Namespace) -> dict:
    """GRPO steps in bf16 (``full`` or ``lora``): step time, peak memory, tokens/s, encoder rows per clip."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from rlnf.rewards.audio_text_reward import AudioTextReward
    from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.durations: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            if opts.device == "cuda":
                torch.cuda.synchronize()
            self.starts.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if opts.device == "cuda":
                torch.cuda.synchronize()
            self.durations.append(time.perf_counter() - self.starts[-1])

    policy, processor = _policy(opts)
    steps = opts.warmup + opts.steps
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    paths = _clips(opts.clips * steps, folder, opts.seconds)
    dataset = Dataset.from_dict({"audio": paths, "text": [TEXTS[i % len(TEXTS)] for i in range(len(paths))]})
    reward = AudioTextReward.from_pretrained("demo", device=opts.device)  # the shipped reward model, on the GPU
    args = ASRGRPOConfig(
        output_dir=str(folder / "out"), per_device_train_batch_size=opts.generations * opts.clips,
        num_generations=opts.generations, max_completion_length=opts.max_completion_length, max_steps=steps,
        beta=0.04, learning_rate=1e-5, logging_steps=1, save_strategy="no", report_to=[], seed=0,
        shuffle_dataset=False, bf16=opts.device == "cuda", use_cpu=opts.device == "cpu", pad_features_to="30s",
        gradient_checkpointing=opts.gradient_checkpointing, dataloader_num_workers=0,
    )  # fmt: skip
    peft_config = LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    timer = StepTimer()
    trainer = ASRGRPOTrainer(policy, [reward], args=args, train_dataset=dataset, processing_class=processor,
                             callbacks=[timer], peft_config=peft_config if mode == "lora" else None)  # fmt: skip
    rows: list[int] = []
    trainer.model.get_encoder().register_forward_hook(lambda _m, _a, out: rows.append(out[0].shape[0]))
    if opts.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    seconds = statistics.median(timer.durations[opts.warmup :])
    log = [row for row in trainer.state.log_history if "completions/mean_length" in row]
    tokens = statistics.mean(row["completions/mean_length"] for row in log) * opts.generations * opts.clips
    result = {
        "config": f"bf16 {mode}" if opts.device == "cuda" else f"{opts.device} {mode}",
        "seconds_per_step": round(seconds, 3),
        "completion_tokens_per_second": round(tokens / seconds, 1),
        "encoder_rows_per_clip_per_step": sum(rows) / (steps * opts.clips),
        "naive_rows_per_clip_per_step_would_be": sum(rows) / (steps * opts.clips) * opts.generations,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "loss_last_step": trainer.state.log_history[-2].get("loss") if len(trainer.state.log_history) > 1 else None,
    }
    if opts.device == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["gpu"] = torch.cuda.get_device_name()
    return result


def run_precision(opts: argparse.Namespace) -> dict:
    """Per-token log-probs and a GRPO-shaped loss of one fixed batch (one clip, G transcripts): bf16 autocast vs
    fp32, same weights. The loss is -(A * mean token log-prob).mean() with fixed advantages A."""
    import numpy as np
    import torch

    from rlnf.audio import load_audio

    policy, processor = _policy(opts)
    policy = policy.to(opts.device).float().eval()
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-precision-"))
    audio = load_audio(_clips(1, folder, opts.seconds)[0])
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    features = features.to(opts.device).repeat(opts.generations, 1, 1)
    generator = torch.Generator().manual_seed(0)
    ordinary = len(processor.tokenizer) - 8  # the tiny tokenizer's ordinary ids (special tokens last or first)
    tokens = torch.randint(8, ordinary, (opts.generations, opts.max_completion_length), generator=generator)
    prefix = torch.tensor(processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|transcribe|>",
                                                                     "<|notimestamps|>"]))  # fmt: skip
    decoder = torch.cat([prefix.expand(opts.generations, -1), tokens], dim=1).to(opts.device)
    advantages = torch.linspace(-1.0, 1.0, opts.generations, device=opts.device)

    def logps(autocast: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(opts.device, dtype=torch.bfloat16, enabled=autocast):
            logits = policy(input_features=features, decoder_input_ids=decoder[:, :-1]).logits
        logits = logits[:, len(prefix) - 1 :].float()
        return torch.log_softmax(logits, -1).gather(-1, decoder[:, len(prefix) :, None]).squeeze(-1)

    fp32, bf16 = logps(False), logps(True)
    loss32 = -(advantages * fp32.mean(1)).mean().item()
    loss16 = -(advantages * bf16.mean(1)).mean().item()
    diff = (bf16 - fp32).abs()
    result = {
        "config": "precision: bf16 autocast vs fp32, one clip x G transcripts",
        "logp_mean_abs_diff": float(diff.mean()),
        "logp_max_abs_diff": float(diff.max()),
        "loss_fp32": loss32,
        "loss_bf16": loss16,
        "loss_relative_diff": abs(loss16 - loss32) / max(abs(loss32), 1e-8),
        "sequence_logp_fp32_mean": float(np.mean(fp32.sum(1).tolist())),
    }
    result.update(_trainer_step_losses(opts, policy, processor, folder))
    result["pass"] = (
        result["logp_mean_abs_diff"] < LOGP_TOLERANCE
        and result["loss_relative_diff"] < LOSS_TOLERANCE
        and result["step_loss_abs_diff"] < STEP_LOSS_TOLERANCE
    )
    return result


def _trainer_step_losses(opts: argparse.Namespace, policy, processor, folder: Path) -> dict:
    """The trainer's own GRPO loss of one generated batch (one clip x G, beta 0.04, the reward model), computed in
    fp32 and again under bf16 autocast from the same completions, rewards and reference log-probs."""
    import torch
    from datasets import Dataset

    from rlnf.rewards.audio_text_reward import AudioTextReward
    from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer

    paths = _clips(1, folder, opts.seconds)
    dataset = Dataset.from_dict({"audio": paths, "text": [TEXTS[0]]})
    args = ASRGRPOConfig(
        output_dir=str(folder / "step"), per_device_train_batch_size=opts.generations,
        num_generations=opts.generations, max_completion_length=opts.max_completion_length, beta=0.04,
        report_to=[], seed=0, bf16=False, use_cpu=opts.device == "cpu", pad_features_to="30s",
    )  # fmt: skip
    reward = AudioTextReward.from_pretrained("demo", device=opts.device)
    trainer = ASRGRPOTrainer(policy, [reward], args=args, train_dataset=dataset, processing_class=processor)
    rows = [dict(trainer.train_dataset[0]) for _ in range(opts.generations)]
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this calls around
    batch = trainer._generate_and_score_completions(rows)
    with torch.no_grad():
        fp32 = float(trainer.compute_loss(trainer.model, batch))
        with torch.autocast(opts.device, dtype=torch.bfloat16):
            bf16 = float(trainer.compute_loss(trainer.model, batch))
    return {"step_loss_fp32": fp32, "step_loss_bf16": bf16, "step_loss_abs_diff": abs(bf16 - fp32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="a small policy (smoke test of the code path)")
    parser.add_argument("--clips", type=int, default=1, help="unique clips per step")
    parser.add_argument("--generations", type=int, default=8, help="G: transcripts per clip")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (the window is 30 s anyway)")
    parser.add_argument("--max-completion-length", type=int, default=64)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--only", choices=["full", "lora", "precision"], help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.only:  # child process: one configuration, its JSON as the last stdout line
        result = run_precision(opts) if opts.only == "precision" else run_training(opts.only, opts)
        print(json.dumps(result), flush=True)
        return
    results, failed = [], []
    for only in ("precision", "full", "lora"):
        start = time.perf_counter()
        child = [sys.executable, str(Path(__file__).resolve()), "--only", only, *sys.argv[1:]]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(f"--- {only} failed (exit {done.returncode}) ---\n{done.stderr[-6000:]}\n")
            failed.append(only)
            continue
        results.append({**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - start})
        print(json.dumps(results[-1]), flush=True)
    precision = next((r for r in results if "pass" in r), None)
    print(json.dumps({"gpu_check": "done", "failed": failed, "precision_pass": precision and precision["pass"]}))
    sys.exit(1 if failed or not (precision and precision["pass"]) else 0)


if __name__ == "__main__":
    main()
