"""Several processes train like one: the same tiny run on 1 process and on 2 CPU processes (gloo, launched with
``accelerate launch --config_file accelerate_configs/cpu_2proc.yaml``) at the same global batch gives the same
per-step losses and metrics and the same final weights.

* GRPO (`ASRGRPOTrainer`, ``tests/distributed_scripts/grpo_tiny.py``): 2 steps of 2 clips x G=4 completions, 8 per
  device on 1 process, 4 per device on 2, beta > 0 (reference model and KL), AdamW.
* GRPO with a TDT policy (``tests/distributed_scripts/grpo_tdt_tiny.py``): the same run with a tiny random
  ``ParakeetForTDT`` (the CTC twin of this test is in ``tests/test_ctc_policy.py``).
* Reward model (``recipes/train_reward_model.py``, unchanged): 3 steps at a global batch of 8 rows, then the
  recipe's own evaluation and saving; the 2-process model must load with ``RewardModel.from_pretrained``.

Every run is a subprocess with a timeout (a hang fails the test instead of blocking it) and must exit with 0.
``pytest -s`` shows the wall time of each 2-process run and the largest differences between the layouts.

Why the two layouts can agree, and what the tolerances allow for: see the two tests' docstrings.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from process_group import run_process_group

ROOT = Path(__file__).resolve().parents[1]
CPU_2PROC = ROOT / "accelerate_configs" / "cpu_2proc.yaml"
GRPO_SCRIPT = Path(__file__).resolve().parent / "distributed_scripts" / "grpo_tiny.py"
REWARD_RECIPE = ROOT / "recipes" / "train_reward_model.py"
TIMEOUT = 240  # seconds per launch; a run takes 10-20 s on 2 busy cores
GLOBAL_BATCH = 8
# Log entries that measure time, not training, and Trainer's FLOPs estimate (it counts the audio tensor of each
# process's batch, where the reward recipe has each clip once, so 2 processes each count the batch's clip).
NOT_COMPARED = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos")


# ----------------------------------------------------------------------------------------------------- launching
def _accelerate() -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "accelerate.commands.accelerate_cli"]


def launch(script: Path, *args: str, processes: int, timeout: float = TIMEOUT) -> float:
    """Run ``script`` on 1 process (plain python) or 2 CPU processes (accelerate + gloo); return the wall time.

    Fails the test on a non-zero exit or when the run is still going after ``timeout`` s (the whole process
    group is killed then, so no worker is left behind).
    """
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "OMP_NUM_THREADS": "1",
    }
    if processes == 1:
        command = [sys.executable, str(script), *args]
    elif processes == 2:
        env["ACCELERATE_USE_CPU"] = "1"  # required with accelerate 1.15, see accelerate_configs/cpu_2proc.yaml
        command = [*_accelerate(), "launch", "--config_file", str(CPU_2PROC), str(script), *args]
    else:
        raise ValueError(processes)
    returncode, out, seconds = run_process_group(
        command, env=env, cwd=ROOT, timeout=timeout, what=f"{processes}-process run of {script.name}"
    )
    assert returncode == 0, f"{processes}-process run of {script.name} exited with {returncode}:\n{out[-6000:]}"
    return seconds


def assert_logs_match(one: list[dict], two: list[dict], *, rtol: float, atol: float) -> float:
    """Every numeric entry of the 1-process log_history (timings and FLOPs aside) is in the 2-process one, and close.

    Returns the largest absolute per-step loss difference.
    """
    assert len(one) == len(two), (one, two)
    worst_loss = 0.0
    for a, b in zip(one, two, strict=True):
        assert a.get("step") == b.get("step")
        for key, value in a.items():
            if key in NOT_COMPARED or not isinstance(value, (int, float)):
                continue
            assert key in b, f"step {a.get('step')}: {key} logged by 1 process only"
            assert b[key] == pytest.approx(value, rel=rtol, abs=atol), (
                f"step {a.get('step')}: {key} = {value!r} on 1 process, {b[key]!r} on 2"
            )
            if key == "loss":
                worst_loss = max(worst_loss, abs(value - b[key]))
    return worst_loss


# ---------------------------------------------------------------------------------------------------- GRPO
def build_policy(folder: Path) -> None:
    """The tiny Whisper both layouts load (built once: the BPE tokenizer training need not be reproducible).

    Its EOS logit is raised so that completions end at different lengths: with equal lengths the GRPO loss of
    the first step is a sum of advantages, i.e. zero up to rounding, and would say nothing; with unequal ones it
    is of order 0.1 and the per-rank padding to different lengths is exercised too.
    """
    from rlnf.policies.tiny_whisper import build_tiny_whisper
    from rlnf.testing import BAMBARA_SAMPLE

    model, processor = build_tiny_whisper(
        BAMBARA_SAMPLE * 2, d_model=32, layers=1, heads=2, max_source_positions=50, max_target_positions=16,
        vocab_size=200,
    )  # fmt: skip
    eos = processor.tokenizer.eos_token_id
    embed = model.get_decoder().embed_tokens.weight  # tied to proj_out; the EOS (= padding) row starts at 0
    with torch.no_grad():
        embed[eos] = 0.02 * torch.randn(embed.shape[1], generator=torch.Generator().manual_seed(0))
        model.get_decoder().layer_norm.bias += 4.0 * embed[eos] / embed[eos].pow(2).sum()  # EOS logit + 4
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def read_grpo_run(folder: Path, world: int) -> tuple[list[dict], dict, list[dict[str, torch.Tensor]]]:
    records = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(world)]
    states = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(world)]
    for record in records:
        assert record["world"] == world and record["deterministic"]
    samples = {(s["step"], s["row"]): s["ids"] for record in records for s in record["sampled"]}
    return [record["log_history"] for record in records], samples, states


def test_grpo_two_processes_train_like_one(tmp_path):
    """1 process x 8 completions per step == 2 processes x 4 (same seeds, data, fp32, deterministic algorithms).

    Sampling: TRL seeds each process differently and samples with one batched ``torch.multinomial`` per token,
    so torch's generator can never give both layouts the same completions. The script keys the sampler's noise
    by (generation call, global row, position) instead (Gumbel-max on the final warped scores: exact samples of
    the policy at temperature 1, see grpo_tiny.py), so both layouts draw the SAME completions token for token;
    rewards (character overlap + length) still differ within each group. Everything downstream is the
    production path: encoder once per clip, reward gathering and group normalisation across ranks, the
    reference/KL pass, DDP's all-reduce, AdamW.

    Tolerances. Both layouts then compute the same float32 math in a different order (GEMMs over 1 clip
    instead of 2, per-rank partial sums, a gloo all-reduce of two partial gradients); each such difference is a
    few ulps (float32 eps 1.2e-7; measured: losses 3e-8, grad norms 1e-7 relative, weights 3e-7).
    * logged metrics (loss, grad_norm, rewards, kl, entropy, lengths ...): rel 1e-5 (~100 ulps), abs 1e-6 for
      values at 0 (kl of step 1). A sampling divergence would change rewards and loss by O(0.1).
    * final weights: abs 1e-5, 1 % of one AdamW step (lr 1e-3: Adam moves every parameter with a gradient by
      ~lr per step), so a gradient that is not averaged over ranks shows up; a wrong gradient SCALE, which
      Adam's normalisation hides from the weights, shows up in grad_norm and loss. The weights must move by
      over 100x the tolerance, and the two ranks must hold bit-identical weights (DDP keeps replicas in sync).
    """
    policy = tmp_path / "policy"
    build_policy(policy)
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir()
    two_dir.mkdir()
    launch(GRPO_SCRIPT, str(policy), str(one_dir), str(GLOBAL_BATCH), processes=1)
    wall = launch(GRPO_SCRIPT, str(policy), str(two_dir), str(GLOBAL_BATCH // 2), processes=2)

    (log_one,), samples_one, (state_one,) = read_grpo_run(one_dir, 1)
    (log_two, log_two_rank1), samples_two, (state_two, state_two_rank1) = read_grpo_run(two_dir, 2)

    # Same completions, token for token, and they are real samples: not all alike within a group.
    assert len(samples_one) == 2 * GLOBAL_BATCH and samples_one == samples_two
    for step in (0, 1):
        for group in range(0, GLOBAL_BATCH, 4):
            completions = {tuple(samples_one[(step, row)]) for row in range(group, group + 4)}
            assert len(completions) > 1, f"step {step}: every completion of clip {group // 4} is the same"

    steps_one = [entry for entry in log_one if "loss" in entry]
    assert len(steps_one) == 2
    assert all(entry["reward_std"] > 0.01 and abs(entry["loss"]) > 1e-3 for entry in steps_one), steps_one
    assert steps_one[1]["kl"] > 0
    worst_loss = assert_logs_match(log_one, log_two, rtol=1e-5, atol=1e-6)
    assert_logs_match(log_two, log_two_rank1, rtol=1e-5, atol=1e-6)  # both ranks log the same global values

    from safetensors.torch import load_file

    initial = load_file(policy / "model.safetensors")
    assert state_one.keys() == state_two.keys()
    moved = max((state_one[k] - initial[k]).abs().max().item() for k in initial if k in state_one)
    assert moved > 100 * 1e-5, f"training barely moved the weights ({moved:.2e}): the comparison would be vacuous"
    worst_weight = 0.0
    for key in state_one:
        assert torch.equal(state_two[key], state_two_rank1[key]), f"{key}: the two ranks' replicas diverged"
        torch.testing.assert_close(state_two[key], state_one[key], rtol=0, atol=1e-5, msg=key)
        if state_one[key].is_floating_point():
            worst_weight = max(worst_weight, (state_two[key] - state_one[key]).abs().max().item())
    print(
        f"\nGRPO, 2 CPU processes: {wall:.1f} s wall (launch to exit); 1 vs 2 processes: largest per-step loss "
        f"difference {worst_loss:.2e}, largest weight difference {worst_weight:.2e} (weights moved up to "
        f"{moved:.2e})"
    )


def test_tdt_grpo_two_processes_train_like_one(tmp_path):
    """A TDT policy: 1 process x 8 completions per step == 2 CPU processes x 4, with the production sampler drawing
    from keyed Gumbel noise (``tests/distributed_scripts/grpo_tdt_tiny.py``): same completions token for token,
    per-step losses and metrics, weights. Scoring is the production path: log p(y|x) by the forward algorithm
    over all alignments, the encoder once per clip, its BatchNorm on running statistics in every pass.

    Tolerances as for CTC (``tests/test_ctc_policy.py``): float32 sums in another order; logged metrics rel 1e-5,
    weights abs 5e-5 = 5 % of one AdamW step (lr 1e-3), where a gradient not averaged over ranks moves weights
    by ~1e-3 and a wrong gradient scale shows in grad_norm."""
    from safetensors.torch import load_file

    from rlnf.policies.transducer import tiny_parakeet_tdt

    script = Path(__file__).resolve().parent / "distributed_scripts" / "grpo_tdt_tiny.py"
    model, processor = tiny_parakeet_tdt()
    policy = tmp_path / "policy"
    model.save_pretrained(policy)
    processor.save_pretrained(policy)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    launch(script, str(policy), str(one), str(GLOBAL_BATCH), processes=1)
    wall = launch(script, str(policy), str(two), str(GLOBAL_BATCH // 2), processes=2)
    (log_one,), samples_one, (state_one,) = read_grpo_run(one, 1)
    (log_two, log_two_rank1), samples_two, (state_two, state_two_rank1) = read_grpo_run(two, 2)

    assert len(samples_one) == 2 * GLOBAL_BATCH and samples_one == samples_two
    for step in (0, 1):
        for group in range(0, GLOBAL_BATCH, 4):
            completions = {tuple(samples_one[(step, row)]) for row in range(group, group + 4)}
            assert len(completions) > 1, f"step {step}: every completion of clip {group // 4} is the same"
    steps = [entry for entry in log_one if "loss" in entry]  # loss_type "grpo": the step-1 loss is 0 (mean advantage)
    assert len(steps) == 2 and all(entry["reward_std"] > 0.01 and entry["grad_norm"] > 0.1 for entry in steps)
    assert steps[1]["kl"] > 0
    worst_loss = assert_logs_match(log_one, log_two, rtol=1e-5, atol=1e-6)
    assert_logs_match(log_two, log_two_rank1, rtol=1e-5, atol=1e-6)
    initial = load_file(policy / "model.safetensors")
    moved = max((state_one[k] - initial[k]).abs().max().item() for k in initial if k in state_one)
    assert moved > 1e-3, f"training barely moved the weights ({moved:.2e})"
    worst_weight = 0.0
    for key in state_one:
        assert torch.equal(state_two[key], state_two_rank1[key]), f"{key}: the two ranks' replicas diverged"
        torch.testing.assert_close(state_two[key], state_one[key], rtol=0, atol=5e-5, msg=key)
        if state_one[key].is_floating_point():
            worst_weight = max(worst_weight, (state_two[key] - state_one[key]).abs().max().item())
    print(
        f"\nTDT GRPO, 2 CPU processes: {wall:.1f} s wall; 1 vs 2 processes: largest per-step loss difference "
        f"{worst_loss:.2e}, largest weight difference {worst_weight:.2e} (weights moved up to {moved:.2e})"
    )


# ------------------------------------------------------------------------------------------------ reward model
ROWS_PER_CLIP = GLOBAL_BATCH


def write_scorer_jsonl(folder: Path, clips: int = 10) -> Path:
    """Scorer rows with exactly ``ROWS_PER_CLIP`` transcripts per clip, scores 0-100."""
    import soundfile as sf

    from rlnf.testing import BAMBARA_SAMPLE, sine_clip

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in range(clips):
        sf.write(folder / f"clip{c}.wav", sine_clip(0.5 + 0.03 * c, 150 + 25 * c, seed=c), 16000)
        ref, other = BAMBARA_SAMPLE[c], BAMBARA_SAMPLE[(c + 5) % len(BAMBARA_SAMPLE)]
        texts = [
            (ref, 100.0), (ref[: len(ref) // 2], 50.0), (other, 5.0), (f"{ref} {other}", 40.0),
            (" ".join(ref.split()[:-1]) or ref[:2], 70.0), (ref.upper(), 90.0), (other[: len(other) // 2], 2.0),
            (ref.replace(" ", ""), 60.0),
        ]  # fmt: skip
        assert len(texts) == ROWS_PER_CLIP
        rows += [{"audio": f"clip{c}.wav", "text": t, "score": s, "reference": ref, "clip_id": c} for t, s in texts]
    path = folder / "scores.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


REWARD_ARGS = [
    "--max_steps", "3", "--embed_dim", "16", "--lstm_hidden", "16", "--audio_conv_channels", "16",
    "--audio_conv_layers", "2", "--head_hidden", "32", "--num_attention_heads", "2", "--tokenizer_vocab_size", "60",
    "--per_device_eval_batch_size", "16", "--report_to", "none", "--logging_steps", "1", "--disable_tqdm", "true",
    "--dataloader_pin_memory", "false", "--eval_split_size", "2", "--test_split_size", "2", "--seed", "7",
    "--torch_threads", "1", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "false",
    "--fusion_type", "late", "--augment_audio", "false",  # flags over the demo YAML (alignment, augmentation)
    "--dropout", "0",  # dropout masks are drawn per process
    "--optim", "sgd", "--learning_rate", "0.5",  # see the test's docstring
]  # fmt: skip


def test_reward_recipe_two_processes_train_like_one(tmp_path):
    """``recipes/train_reward_model.py`` on 2 CPU processes x 4 rows == 1 process x 8 rows; the model loads.

    What makes the layouts comparable (the recipe itself is unchanged; these are its own flags and data):
    * one clip per global batch (8 rows per clip, kept together by the recipe's clip-grouped sampler, which
      accelerate shards batch by batch): the audio encoder's BatchNorm takes its statistics from each process's
      own rows (DDP has no SyncBatchNorm), so they equal the single-process statistics only when each process
      sees the same clip(s) as the whole batch;
    * ``--dropout 0``: dropout masks are drawn per process;
    * ``--optim sgd``: the update is then linear in the gradient. With AdamW, the convolution biases in front of
      BatchNorm (whose gradient is exactly 0: BatchNorm subtracts the batch mean) get Adam steps of up to ``lr``
      driven by float32 noise alone: 8e-4 apart after 3 steps, a real but meaningless difference.

    Tolerances: per-step loss and grad_norm rel 1e-5 (measured ~1e-7); parameters and BatchNorm running means
    abs 1e-6 (measured <= 3e-8, while the parameters move by 4e-5 ... 1e-2). BatchNorm running variances rel 1e-2:
    their unbiasing factor count/(count-1) counts the clip's T frames once on 1 process (each clip encoded once
    per batch) but 4 times per rank under DDP (rows expanded), a relative difference of ~0.75/T per update
    (T ~ 50-80 frames here) times the momentum; measured 1e-3.
    """
    from safetensors.torch import load_file
    from transformers import set_seed

    from rlnf.reward_model import RewardConfig, RewardModel, RewardModelProcessor

    data = write_scorer_jsonl(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, processes in ((one, 1), (two, 2)):
        seconds = launch(
            REWARD_RECIPE, "--dataset_name", str(data), "--output_dir", str(folder), *REWARD_ARGS,
            "--per_device_train_batch_size", str(GLOBAL_BATCH // processes), processes=processes,
        )  # fmt: skip
    wall = seconds  # of the 2-process run

    # The 2-process run saved a complete, loadable model (and the recipe's reports).
    model = RewardModel.from_pretrained(two)
    processor = RewardModelProcessor.from_pretrained(two)
    assert len(processor.tokenizer) <= model.config.vocab_size
    for name in ("eval_results.json", "test_metrics.json", "train_results.json", "trainer_state.json"):
        assert (two / name).is_file(), name

    logs = [json.loads((d / "trainer_state.json").read_text())["log_history"] for d in (one, two)]
    assert len([entry for entry in logs[0] if "loss" in entry]) == 3
    worst_loss = assert_logs_match(*logs, rtol=1e-5, atol=1e-7)
    evals = [json.loads((d / "eval_results.json").read_text()) for d in (one, two)]
    assert evals[0]["eval_n"] == evals[1]["eval_n"]  # the 2-process eval gathers every row exactly once
    assert evals[1]["eval_loss"] == pytest.approx(evals[0]["eval_loss"], rel=1e-4)  # BN running_var, see above

    weights = [load_file(d / "model.safetensors") for d in (one, two)]
    assert weights[0].keys() == weights[1].keys()
    set_seed(7)  # the recipe's initial weights: set_seed(seed) right before the model is built
    initial = RewardModel(RewardConfig.from_pretrained(one))
    moved = max((weights[0][k] - p.detach()).abs().max().item() for k, p in initial.named_parameters())
    assert moved > 1e-3, f"training barely moved the weights ({moved:.2e})"
    worst_weight = 0.0
    for key, value in weights[0].items():
        if key.endswith("running_var"):
            torch.testing.assert_close(weights[1][key], value, rtol=1e-2, atol=0, msg=key)
            continue
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=1e-6, msg=key)
        if value.is_floating_point():
            worst_weight = max(worst_weight, (weights[1][key] - value).abs().max().item())
    # What was saved is what loads.
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[1][key]), key
    print(
        f"\nreward recipe, 2 CPU processes: {wall:.1f} s wall (launch to exit); 1 vs 2 processes: largest per-step "
        f"loss difference {worst_loss:.2e}, largest weight difference {worst_weight:.2e} (weights moved up to "
        f"{moved:.2e})"
    )
