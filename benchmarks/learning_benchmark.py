"""Does RL with rlnf make held-out ASR better? N seeds x reward settings, each a full `recipes/grpo_asr.py` run.

    python benchmarks/learning_benchmark.py --seeds 0 1 2                       # the README's table
    python benchmarks/learning_benchmark.py --seeds 0 --settings wer --max_steps 20   # a quick look

Each run is the demo recipe (its YAML, flags on top) in its own output folder; the held-out WER/CER before
and after come from that run's `results.json` (greedy decoding on the test split: target-domain audio,
sentences and speakers that neither the policy nor the reward model trained on). Prints a table (mean ± sd
of WER before/after and the relative change, then every seed) and writes `learning_benchmark.{json,md,png}`.
Runs already finished are reused (delete the folder to rerun), so an interrupted benchmark resumes.

This is a benchmark, not a test: it takes minutes per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "grpo_asr.py"

# name -> extra recipe flags. "rm_only" is reference-free: the RL split's transcripts are never read; the
# test split's references are still used for the held-out WER.
SETTINGS: dict[str, list[str]] = {
    "wer+rm": ["--reward_funcs", "reward_model", "wer"],
    "wer": ["--reward_funcs", "wer", "--reward_weights", "1.0"],
    "rm_only": [
        "--reward_funcs",
        "reward_model",
        "repetition_penalty",
        "empty_penalty",
        "--reward_weights",
        "1.0",
        "1.0",
        "1.0",
        "--reference_column",
        "None",
    ],
}
# the other trainers, each from its own demo YAML (same data, rewards and completions per step as GRPO's), and
# GRPO on the shipped CTC policy (its own YAML: a different policy, so its own before/after)
SETTING_YAML = {"rloo": "rloo_asr_demo.yaml", "ppo": "ppo_asr_demo.yaml"}
SETTINGS.update({name: ["--trainer", name] for name in SETTING_YAML})
SETTING_YAML.update({"ctc": "grpo_asr_ctc_demo.yaml", "ctc_rm_only": "grpo_asr_ctc_demo.yaml"})
SETTINGS.update({"ctc": [], "ctc_rm_only": SETTINGS["rm_only"]})
SETTING_YAML.update({"tdt": "grpo_asr_tdt_demo.yaml", "tdt_rm_only": "grpo_asr_tdt_demo.yaml"})
SETTINGS.update({"tdt": [], "tdt_rm_only": SETTINGS["rm_only"]})


def run_one(setting: str, seed: int, args: argparse.Namespace) -> dict:
    out = Path(args.output_dir) / f"{setting}-seed{seed}"
    results_file = out / "results.json"
    if results_file.exists():
        return {"setting": setting, "seed": seed, **json.loads(results_file.read_text())}
    command = [
        sys.executable,
        str(RECIPE),
        "--config",
        str(ROOT / "recipes" / SETTING_YAML[setting]) if setting in SETTING_YAML else str(args.config),
        *SETTINGS[setting],
        "--seed",
        str(seed),
        "--output_dir",
        str(out),
        "--save_strategy",
        "no",
        *args.extra,
    ]
    if args.max_steps is not None:
        command += ["--max_steps", str(args.max_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(out / "log.txt", "w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0 or not results_file.exists():
        raise RuntimeError(f"{setting} seed {seed} failed (exit {code}); see {out / 'log.txt'}: {shlex.join(command)}")
    print(f"  {setting} seed {seed}: done in {time.time() - started:.0f} s", flush=True)
    return {"setting": setting, "seed": seed, **json.loads(results_file.read_text())}


def relative_change(before: float, after: float) -> float:
    return (after - before) / before


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: list[dict]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for setting in dict.fromkeys(r["setting"] for r in runs):
        rows = [r for r in runs if r["setting"] == setting]
        per_seed = [
            {
                "seed": r["seed"],
                **{
                    f"{m}_{when}": r[f"eval_{when}"][f"eval_{m}"]
                    for m in ("wer", "cer")
                    for when in ("before", "after")
                },
            }
            for r in rows
        ]
        for row in per_seed:
            row["wer_rel"] = relative_change(row["wer_before"], row["wer_after"])
            row["cer_rel"] = relative_change(row["cer_before"], row["cer_after"])

        table[setting] = {
            "per_seed": per_seed,
            **{
                key: mean_sd([row[key] for row in per_seed])
                for key in ("wer_before", "wer_after", "wer_rel", "cer_before", "cer_after", "cer_rel")
            },
        }
    return table


def markdown(table: dict[str, dict]) -> str:
    lines = [
        "| setting | seeds | WER before | WER after | rel. change | CER before | CER after | rel. change |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ms(s: dict, key: str, pct: bool = False) -> str:
        mean, sd = s[key]
        return f"{100 * mean:+.1f} ± {100 * sd:.1f} %" if pct else f"{mean:.3f} ± {sd:.3f}"

    for setting, s in table.items():
        lines.append(
            f"| {setting} | {len(s['per_seed'])} | {ms(s, 'wer_before')} | {ms(s, 'wer_after')} | {ms(s, 'wer_rel', True)} "
            f"| {ms(s, 'cer_before')} | {ms(s, 'cer_after')} | {ms(s, 'cer_rel', True)} |"
        )
    lines += [
        "",
        "| setting | seed | WER before -> after | rel. | CER before -> after | rel. |",
        "|---|---|---|---|---|---|",
    ]
    for setting, s in table.items():
        for row in s["per_seed"]:
            lines.append(
                f"| {setting} | {row['seed']} | {row['wer_before']:.3f} -> {row['wer_after']:.3f} | "
                f"{100 * row['wer_rel']:+.1f} % | {row['cer_before']:.3f} -> {row['cer_after']:.3f} | "
                f"{100 * row['cer_rel']:+.1f} % |"
            )
    return "\n".join(lines) + "\n"


def plot(table: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for i, (setting, s) in enumerate(table.items()):
        for row in s["per_seed"]:
            axis.plot([2 * i, 2 * i + 1], [row["wer_before"], row["wer_after"]], marker="o", color=f"C{i}", alpha=0.7)
        axis.plot([], [], color=f"C{i}", label=f"{setting} ({100 * s['wer_rel'][0]:+.1f} %)")
    axis.set_xticks(range(2 * len(table)), [w for _ in table for w in ("before", "after")])
    axis.set(ylabel="held-out WER (greedy)", title="RL on the target domain, per seed")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["wer+rm", "wer", "rm_only"], choices=list(SETTINGS))
    parser.add_argument("--config", default=str(ROOT / "recipes" / "grpo_asr_demo.yaml"), help="GRPO settings' base")
    parser.add_argument("--output_dir", default=str(ROOT / "outputs" / "learning-benchmark"))
    parser.add_argument("--max_steps", type=int, default=None, help="override the YAML's max_steps")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each with --threads threads)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more recipe flags, for every run")
    args = parser.parse_args(argv)

    jobs = [(setting, seed) for setting in args.settings for seed in args.seeds]
    started = time.time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: run_one(*job, args), jobs))
    table = summarise(runs)
    out = Path(args.output_dir)
    text = markdown(table)
    (out / "learning_benchmark.md").write_text(text)
    (out / "learning_benchmark.json").write_text(json.dumps(table, indent=2) + "\n")
    plot(table, out / "learning_benchmark.png")
    print(text)
    print(f"{len(jobs)} runs in {time.time() - started:.0f} s; written to {out}")
    return table


if __name__ == "__main__":
    main()
