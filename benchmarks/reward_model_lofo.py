"""Leave-one-family-out: how well does the demo reward model rank the errors of a policy family it never saw?

    python benchmarks/reward_model_lofo.py                          # every family of the demo YAML's policies
    python benchmarks/reward_model_lofo.py --holdout demo-ctc --max_steps 100   # a quick look at one

For each policy F of the reward-model demo YAML's ``demo_policies`` (Whisper ``demo``, CTC ``demo-ctc``, TDT
``demo-tdt``), one `recipes/train_reward_model.py` run with ``--demo_holdout_policy F``: F's samples are left out
of training and validation; the held-out splits keep them. The figure is Pearson (and Spearman) on F's samples
of the held-out splits (``test``: source-domain sentences never trained on; ``target_test``: the target domain's
speakers and channels), beside the same figures of a model that did see F (``--with_all``: the run of the demo
YAML itself, e.g. the shipped model's ``test_metrics.json``). Writes ``reward_model_lofo.{json,md}``.

Each run is the demo YAML's recipe (its steps unless ``--max_steps``; no checkpoints), so "unseen" and "seen"
differ only in the held-out family's rows. Runs already finished are reused (delete the folder to rerun).
A benchmark, not a test: minutes per run on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "train_reward_model.py"
DEMO_YAML = ROOT / "recipes" / "reward_model_demo.yaml"
SPLITS = ("test", "target_test")
METRICS = ("pearson", "spearman", "n")


def family_figures(metrics: dict, policy: str) -> dict[str, float | None]:
    """``<split>_<metric>`` of ``policy``'s samples alone, from a ``test_metrics.json``."""
    return {f"{s}_{m}": metrics.get(f"{s}_policy_{policy}_{m}") for s in SPLITS for m in METRICS}


def run_holdout(policy: str, args: argparse.Namespace) -> dict:
    out = Path(args.output_dir) / f"without-{policy}"
    metrics_file = out / "test_metrics.json"
    if not metrics_file.exists():
        command = [
            sys.executable, str(RECIPE), "--demo_holdout_policy", policy, "--output_dir", str(out),
            "--save_strategy", "no", "--load_best_model_at_end", "false", "--eval_strategy", "no",
            "--seed", str(args.seed), *args.extra,
        ]  # fmt: skip
        if args.max_steps is not None:
            command += ["--max_steps", str(args.max_steps)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with open(out / "log.txt", "w") as log:
            code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if code != 0 or not metrics_file.exists():
            raise RuntimeError(f"holdout {policy} failed (exit {code}); see {out / 'log.txt'}")
        print(f"  without {policy}: done in {time.time() - started:.0f} s", flush=True)
    return family_figures(json.loads(metrics_file.read_text()), policy)


def markdown(rows: dict[str, dict]) -> str:
    lines = [
        "| held-out family | test Pearson (unseen) | test Pearson (seen) | target_test Pearson (unseen) "
        "| target_test Pearson (seen) | n test / target_test |",
        "|---|---|---|---|---|---|",
    ]

    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for policy, row in rows.items():
        unseen, seen = row["unseen"], row["seen"] or {}
        lines.append(
            f"| {policy} | {f(unseen['test_pearson'])} | {f(seen.get('test_pearson'))} "
            f"| {f(unseen['target_test_pearson'])} | {f(seen.get('target_test_pearson'))} "
            f"| {unseen['test_n']} / {unseen['target_test_n']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--holdout", nargs="+", default=None, help="policies to hold out (default: every one)")
    parser.add_argument("--max_steps", type=int, default=None, help="default: the demo YAML's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with_all", default=str(ROOT / "rlnf/assets/demo-reward-model/test_metrics.json"),
                        help="test_metrics.json of a model trained on every family (the 'seen' column)")  # fmt: skip
    parser.add_argument("--output_dir", default="outputs/reward-model-lofo")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more recipe flags, after --")
    args = parser.parse_args(argv)
    args.extra = [a for a in args.extra if a != "--"]
    policies = args.holdout or yaml.safe_load(DEMO_YAML.read_text())["demo_policies"]
    seen_file = Path(args.with_all)
    seen = json.loads(seen_file.read_text()) if seen_file.is_file() else None
    rows = {p: {"unseen": run_holdout(p, args), "seen": family_figures(seen, p) if seen else None} for p in policies}
    out = Path(args.output_dir)
    (out / "reward_model_lofo.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = markdown(rows)
    (out / "reward_model_lofo.md").write_text(table + "\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
