"""AudioTextReward vs. the naive path, side by side, on a full-size (published-shape) random RewardModel.

Scores ``clips`` x ``group`` (clip, hypothesis) rows the way TRL passes them (each clip repeated once per
hypothesis) two ways:

* naive: ``processor`` + ``model`` over every row, ``batch_size`` rows at a time (features and audio encoder
  once per ROW);
* ``AudioTextReward``: features and audio encoder once per unique clip, text encoder per distinct hypothesis.

and measures the marginal cost of one more hypothesis for an already-seen clip, two ways:

* ``marginal_vs_text_encoder_g9_g8``: (time at G+1 - time at G) / (tokenize + encode_text of those ``clips``
  extra hypotheses alone); the same for 2G (``g16_g8``), whose larger difference stands out of timing noise;
* ``marginal_vs_text_encoder_one``: tokenize + encode_text + score of 1 hypothesis against a cached clip
  encoding / tokenize + encode_text of that hypothesis alone.

Goals: ``speedup >= 5`` at G=8 on 2 cores; both marginal ratios ``<= 1.5``. Prints one JSON line with
wall-clock figures (min over interleaved repeats) and, for the ratios, CPU-time figures too: on a machine
shared with other work, CPU time is the steadier measure.

    python benchmarks/bench_reward_function.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from rlnf import RewardModel, RewardModelProcessor
from rlnf.rewards.audio_text_reward import AudioTextReward
from rlnf.testing import BAMBARA_SAMPLE, sine_clip, write_published_layout


def hypotheses(count: int, seed: int) -> list[str]:
    """Bambara-like hypotheses of 6-14 words (about a 5 s utterance)."""
    words = " ".join(BAMBARA_SAMPLE).lower().split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(6, 14))) for _ in range(count)]


def trl_rows(clips: list[Any], group: int, form: str, seed: int = 0) -> tuple[list[Any], list[str]]:
    """Rows as TRL passes them: clip c repeated ``group`` times, a fresh object per row (like datasets)."""
    audios, texts = [], []
    for c, clip in enumerate(clips):
        for text in hypotheses(group, seed=seed + c):
            audios.append({"array": clip.copy(), "sampling_rate": 16000} if form == "dict" else clip)
            texts.append(text)
    return audios, texts


def naive_scores(model: RewardModel, processor: RewardModelProcessor, audios, texts, batch_size) -> list:
    """The straightforward path: processor + full model on every row."""
    scores = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = slice(start, start + batch_size)
            scores += model(**processor(audios=audios[rows], texts=texts[rows])).logits.tolist()
    return scores


def race(functions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Per function: min and median wall seconds, and min CPU seconds (all threads of this process).

    Runs are interleaved so that load from other processes hits every contender alike; CPU time is the
    steadier measure on a shared machine (it does not count time spent waiting for a core). One warm-up each.
    """
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: {"wall": min(wall[name]), "wall_median": statistics.median(wall[name]), "cpu": min(cpu[name])}
        for name in functions
    }


def text_encoder(model, processor, texts: list[str]) -> Callable[[], Any]:
    """Tokenize + text encoder alone: the least work one more hypothesis can cost."""

    def run():
        with torch.inference_mode():
            tokens = processor.tokenize(texts)
            model.encode_text(tokens["text"], tokens["text_attention_mask"])

    return run


def encode_and_score_one(model, processor, clip) -> Callable[[], Any]:
    """Tokenize + text encoder + fusion head for one hypothesis against an already-encoded clip."""
    text = hypotheses(1, seed=999)
    with torch.inference_mode():
        features = processor.extract_audio([clip])
        cached = model.encode_audio(features["audio"], features["audio_attention_mask"])
    index = torch.zeros(1, dtype=torch.long)

    def run():
        with torch.inference_mode():
            tokens = processor.tokenize(text)
            encoding = model.encode_text(tokens["text"], tokens["text_attention_mask"])
            model.score(cached.select(index), encoding)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--group", type=int, default=8, help="hypotheses per clip (GRPO's G)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--audio-form",
        choices=["dict", "array"],
        default="dict",
        help="dict: a fresh {'array', 'sampling_rate'} per row (compared by content); array: one object",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    folder = write_published_layout(tempfile.mkdtemp(prefix="rlnf-bench-"))
    model = RewardModel.from_pretrained(folder).eval()
    processor = RewardModelProcessor.from_pretrained(folder)
    clips = [sine_clip(args.seconds, 150 + 25 * i, seed=i) for i in range(args.clips)]
    reward = AudioTextReward(model, processor, batch_size=args.batch_size, device="cpu")

    audios, texts = trl_rows(clips, args.group, args.audio_form)
    fast = reward(completions=texts, audio=audios)
    naive = naive_scores(model, processor, audios, texts, args.batch_size)
    max_abs_diff = max(abs(a - b) for a, b in zip(fast, naive, strict=True))

    # More hypotheses for already-seen clips: G+1 (as asked) and 2G (a difference large enough to stand out of
    # the timing noise on a shared machine), each against the text encoder alone on exactly the added texts.
    contenders = {
        "naive": lambda: naive_scores(model, processor, audios, texts, args.batch_size),
        "reward": lambda: reward(completions=texts, audio=audios),
    }
    for extra in sorted({1, args.group}):
        more_audios, more_texts = trl_rows(clips, args.group + extra, args.audio_form)
        size = args.group + extra
        added = [more_texts[c * size + g] for c in range(args.clips) for g in range(args.group, size)]
        contenders[f"reward_plus_{extra}"] = partial(reward, completions=more_texts, audio=more_audios)
        contenders[f"text_encoder_{extra}"] = text_encoder(model, processor, added)
    timings = race(contenders, args.repeats)
    one = race(
        {
            "score": encode_and_score_one(model, processor, clips[0]),
            "text": text_encoder(model, processor, hypotheses(1, seed=999)),
        },
        args.repeats * 20,
    )

    def ms(seconds: float) -> float:
        return round(1000 * seconds, 2)

    def marginal(extra: int, clock: str) -> float:
        added = timings[f"reward_plus_{extra}"][clock] - timings["reward"][clock]
        return round(added / timings[f"text_encoder_{extra}"][clock], 2)

    naive_t, reward_t = timings["naive"], timings["reward"]
    result = {
        "benchmark": "reward_function",
        "clips": args.clips,
        "group": args.group,
        "seconds": args.seconds,
        "rows": len(texts),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "audio_form": args.audio_form,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "max_abs_score_diff": max_abs_diff,
        "naive_ms": ms(naive_t["wall"]),
        "naive_median_ms": ms(naive_t["wall_median"]),
        "reward_ms": ms(reward_t["wall"]),
        "reward_median_ms": ms(reward_t["wall_median"]),
        "speedup": round(naive_t["wall"] / reward_t["wall"], 2),
        "speedup_cpu_time": round(naive_t["cpu"] / reward_t["cpu"], 2),
    }
    for extra in sorted({1, args.group}):
        g = args.group + extra
        result[f"reward_g{g}_ms"] = ms(timings[f"reward_plus_{extra}"]["wall"])
        result[f"marginal_per_hypothesis_g{g}_ms"] = ms(
            (timings[f"reward_plus_{extra}"]["wall"] - reward_t["wall"]) / (extra * args.clips)
        )
        result[f"text_encoder_per_hypothesis_g{g}_ms"] = ms(
            timings[f"text_encoder_{extra}"]["wall"] / (extra * args.clips)
        )
        result[f"marginal_vs_text_encoder_g{g}_g{args.group}"] = marginal(extra, "wall")
        result[f"marginal_vs_text_encoder_g{g}_g{args.group}_cpu_time"] = marginal(extra, "cpu")
    result.update(
        {
            "one_hypothesis_encode_and_score_ms": ms(one["score"]["wall"]),
            "one_hypothesis_text_encoder_ms": ms(one["text"]["wall"]),
            "marginal_vs_text_encoder_one": round(one["score"]["wall"] / one["text"]["wall"], 2),
            "marginal_vs_text_encoder_one_cpu_time": round(one["score"]["cpu"] / one["text"]["cpu"], 2),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other work on the machine
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
