"""Reward-model throughput on CPU: one processor+model call over 64 pairs vs. 64 calls of one pair.

What a GRPO reward costs per completion depends on batching: this measures both ways side by side in one
run (interleaved repeats, so machine load hits both alike), for the published architecture (random weights,
908k parameters with vocab 2048) on 5 s clips, and the extra peak memory of the batched call.

Peak memory: each measurement runs in a fresh subprocess that loads the model, scores one pair (so lazy
initialisation is not counted), resets the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``, Linux)
and reads ``VmHWM - VmRSS`` after the call: the extra resident memory the call needed at its peak, torch
tensors included (tracemalloc would miss them: torch allocates outside Python's allocator). Where the reset is
unavailable it falls back to the ``ru_maxrss`` delta, a lower bound (the earlier peak may hide part of it).

    python benchmarks/bench_reward_model.py [--pairs 64] [--seconds 5] [--repeats 5] [--threads 2]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _setup(threads: int, pairs: int, seconds: float, fusion_type: str, folder: str) -> tuple[Any, Any, list, list]:
    import torch

    from rlnf.reward_model import RewardConfig, RewardModel, train_tokenizer
    from rlnf.testing import BAMBARA_SAMPLE, sine_clip

    torch.set_num_threads(threads)
    processor = train_tokenizer(BAMBARA_SAMPLE * 3, folder, vocab_size=120)
    torch.manual_seed(0)
    model = RewardModel(RewardConfig(fusion_type=fusion_type)).eval()  # published shape: vocab 2048, 128/256 dims
    clips = [sine_clip(seconds, 120.0 + 7.0 * i, seed=i) for i in range(pairs)]
    texts = [" ".join(BAMBARA_SAMPLE[(i + j) % len(BAMBARA_SAMPLE)] for j in range(2)) for i in range(pairs)]
    return model, processor, clips, texts


def _batched(model: Any, processor: Any, clips: list, texts: list) -> tuple[float, float]:
    import torch

    start = time.perf_counter()
    batch = processor(audios=clips, texts=texts)
    middle = time.perf_counter()
    with torch.inference_mode():
        model(**batch)
    return middle - start, time.perf_counter() - middle


def _single(model: Any, processor: Any, clips: list, texts: list) -> float:
    import torch

    start = time.perf_counter()
    for clip, text in zip(clips, texts, strict=True):
        batch = processor(audios=[clip], texts=[text])
        with torch.inference_mode():
            model(**batch)
    return time.perf_counter() - start


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_child(args: argparse.Namespace) -> None:
    """Subprocess body: extra peak resident memory of one call, in MB."""
    with tempfile.TemporaryDirectory() as folder:
        model, processor, clips, texts = _setup(args.threads, args.pairs, args.seconds, args.fusion_type, folder)
        _single(model, processor, clips[:1], texts[:1])  # warm-up: lazy allocations are not the call's cost
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            method = "VmHWM-reset"
        except OSError:
            method = "ru_maxrss-delta"
        before_rss = _status_kb("VmRSS")
        before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if args.peak_child == "batched":
            _batched(model, processor, clips, texts)
        else:
            _single(model, processor, clips, texts)
        if method == "VmHWM-reset" and before_rss is not None and _status_kb("VmHWM") is not None:
            extra_kb = _status_kb("VmHWM") - before_rss
        else:
            extra_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_max
        print(
            json.dumps(
                {
                    "extra_peak_mb": round(extra_kb / 1024, 1),
                    "rss_mb": round((before_rss or 0) / 1024, 1),
                    "method": method,
                }
            )
        )


def _peak(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--peak_child",
        mode,
        "--pairs",
        str(args.pairs),
        "--seconds",
        str(args.seconds),
        "--threads",
        str(args.threads),
        "--fusion_type",
        args.fusion_type,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fusion_type", default="late", choices=["late", "cross_attention"])
    parser.add_argument("--peak_child", default=None, choices=["batched", "single"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        _peak_child(args)
        return {}
    import torch

    with tempfile.TemporaryDirectory() as folder:
        model, processor, clips, texts = _setup(args.threads, args.pairs, args.seconds, args.fusion_type, folder)
        _batched(model, processor, clips[:8], texts[:8])  # warm-up (first-call allocations, mel filters)
        _single(model, processor, clips[:2], texts[:2])
        load_before = os.getloadavg()[0]
        batched, single = [], []
        for _ in range(args.repeats):  # interleaved, so a burst of machine load hits both modes alike
            batched.append(_batched(model, processor, clips, texts))
            single.append(_single(model, processor, clips, texts))
        load_after = os.getloadavg()[0]
        parameters = model.num_parameters()
    batched_total = sorted(p + m for p, m in batched)
    best = min(batched, key=lambda pm: pm[0] + pm[1])
    median_b = batched_total[len(batched_total) // 2]
    median_s = sorted(single)[len(single) // 2]
    peak_b, peak_s = _peak(args, "batched"), _peak(args, "single")
    report = {
        "benchmark": "reward_model_throughput", "fusion_type": args.fusion_type, "parameters": parameters,
        "pairs": args.pairs, "clip_seconds": args.seconds, "threads": args.threads, "repeats": args.repeats,
        "batched_pairs_per_s": round(args.pairs / median_b, 2),
        "single_pairs_per_s": round(args.pairs / median_s, 2),
        "speedup_batched_vs_single": round(median_s / median_b, 2),
        "batched_best_pairs_per_s": round(args.pairs / min(batched_total), 2),
        "single_best_pairs_per_s": round(args.pairs / min(single), 2),
        "batched_best_processor_s": round(best[0], 3), "batched_best_model_s": round(best[1], 3),
        "batched_extra_peak_mb": peak_b["extra_peak_mb"], "single_extra_peak_mb": peak_s["extra_peak_mb"],
        "baseline_rss_mb": peak_b["rss_mb"], "peak_method": peak_b["method"],
        "load_avg_1min": [round(load_before, 2), round(load_after, 2)], "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(),
    }  # fmt: skip
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
