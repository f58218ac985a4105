"""AudioTextReward vs. the naive path, side by side, on a full-size (published-shape) random RewardModel.

Scores ``clips`` x ``group`` (clip, hypothesis) rows the way TRL passes them (each clip repeated once per
hypothesis) two ways:

* naive: ``processor`` + ``model`` over every row, ``batch_size`` rows at a time (features and audio encoder
  once per ROW);
* ``AudioTextReward``: features and audio encoder once per unique clip, text encoder per distinct hypothesis.

and measures the marginal cost of one more hypothesis for an already-seen clip, two ways:

* ``marginal_vs_text_encoder_g9_g8``: (time at G+1 - time at G) / (tokenize + encode_text of those ``clips``
  extra hypotheses alone);
* ``marginal_vs_text_encoder_one``: tokenize + encode_text + score of 1 hypothesis against a cached clip
  encoding / tokenize + encode_text of that hypothesis alone.

Goals: ``speedup >= 5`` at G=8 on 2 cores; both marginal ratios ``<= 1.5``. Prints one JSON line.

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
from typing import Any

import torch

from rlnf import RewardModel, RewardModelProcessor
from rlnf.rewards.functions import AudioTextReward
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


def race(functions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """(min, median) wall seconds per function; runs are interleaved so that load from other processes on
    the machine hits every contender alike. One warm-up run each."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: (min(values), statistics.median(values)) for name, values in times.items()}


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
        "--audio-form", choices=["dict", "array"], default="dict",
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

    # One more hypothesis per clip: G+1 vs G, compared with the text encoder alone on those extra texts.
    more_audios, more_texts = trl_rows(clips, args.group + 1, args.audio_form)
    extra_texts = [more_texts[c * (args.group + 1) + args.group] for c in range(args.clips)]
    timings = race({
        "naive": lambda: naive_scores(model, processor, audios, texts, args.batch_size),
        "reward": lambda: reward(completions=texts, audio=audios),
        "reward_more": lambda: reward(completions=more_texts, audio=more_audios),
        "extra_texts": text_encoder(model, processor, extra_texts),
    }, args.repeats)
    one = race({
        "score": encode_and_score_one(model, processor, clips[0]),
        "text": text_encoder(model, processor, hypotheses(1, seed=999)),
    }, args.repeats * 20)
    (naive_s, naive_median), (reward_s, reward_median) = timings["naive"], timings["reward"]
    reward_more_s, extra_text_s = timings["reward_more"][0], timings["extra_texts"][0]
    one_score_s, one_text_s = one["score"][0], one["text"][0]

    print(json.dumps({
        "benchmark": "reward_function",
        "clips": args.clips, "group": args.group, "seconds": args.seconds, "rows": len(texts),
        "batch_size": args.batch_size, "threads": torch.get_num_threads(), "audio_form": args.audio_form,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "naive_s": round(naive_s, 4), "naive_median_s": round(naive_median, 4),
        "reward_s": round(reward_s, 4), "reward_median_s": round(reward_median, 4),
        "speedup": round(naive_s / reward_s, 2),
        "max_abs_score_diff": max_abs_diff,
        "reward_g_plus_1_s": round(reward_more_s, 4),
        "marginal_per_hypothesis_ms": round(1000 * (reward_more_s - reward_s) / args.clips, 3),
        "text_encoder_per_hypothesis_ms": round(1000 * extra_text_s / args.clips, 3),
        "marginal_vs_text_encoder_g9_g8": round((reward_more_s - reward_s) / extra_text_s, 2),
        "one_hypothesis_encode_and_score_ms": round(1000 * one_score_s, 3),
        "one_hypothesis_text_encoder_ms": round(1000 * one_text_s, 3),
        "marginal_vs_text_encoder_one": round(one_score_s / one_text_s, 2),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other work on the machine
    }))


if __name__ == "__main__":
    main()
