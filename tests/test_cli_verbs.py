"""The packaged recipes (`rlnf grpo|rloo|ppo|sft|train-reward`, like `trl grpo`) and rlnf's user-facing errors: one
`error: ...` line, last, exit code 2, no traceback (under `python recipes/...`, the verbs and their launcher);
bugs keep their traceback. Tiny settings as in tests/test_recipes.py."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_recipes import grpo_flags

from rlnf import cli, errors
from rlnf.launch import RECIPE_VERBS, LaunchError, split_launch_flags, verb_launch_command

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def _env() -> dict[str, str]:
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", errors.ERROR_FILE_ENV, errors.TRACEBACK_ENV, "ACCELERATE_USE_CPU")
    return {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1",
    }  # fmt: skip


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _assert_one_error_line_last(result: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """The run failed with ``code``; its output ends with ONE ``error:`` line holding the needles; no traceback."""
    output = result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, output[-3000:]
    assert lines and lines[-1].startswith("error: "), output[-3000:]
    assert all(needle in lines[-1] for needle in needles), lines[-1]
    assert sum(line.startswith("error: ") for line in output.splitlines()) == 1, output[-3000:]
    assert "Traceback" not in output and "CalledProcessError" not in output, output[-3000:]
    return lines[-1]


def tiny_grpo_flags(assets: dict[str, Path], output: Path, *extra: str) -> list[str]:
    """tests/test_recipes.py's tiny-run flags, one step."""
    return grpo_flags(assets, output, "--max_steps", "1", *extra)


# ----------------------------------------------------------------------------------------------- packaging
def test_wheel_holds_the_recipes_their_yamls_and_the_assets(tmp_path: Path) -> None:
    """Built from a copy of the checkout (no build/ folder written into the shared tree)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
        check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    source = tmp_path / "src"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("rlnf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    for recipe in ("__init__.py", "grpo_asr.py", "sft_asr.py", "train_reward_model.py", "build_demo_corpus.py"):
        assert f"rlnf/recipes/{recipe}" in names
    yamls = {p.name for p in RECIPES.glob("*.yaml")}
    assert {"grpo_asr_demo.yaml", "rloo_asr_demo.yaml", "ppo_asr_demo.yaml", "sft_asr_demo.yaml"} <= yamls
    assert {f"rlnf/recipes/{name}" for name in yamls} <= names
    assets = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rlnf" / "assets").rglob("*") if p.is_file()}
    assets = {name for name in assets if "__pycache__" not in name}
    assert assets and assets <= names, sorted(assets - names)
    code = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rlnf").rglob("*.py")}
    assert code <= names, sorted(code - names)
    assert "Requires-Dist: espeakng-loader" in metadata  # `pip install .` is enough to build the demo corpus
    assert "rlnf = rlnf.cli:main" in entry_points


# ----------------------------------------------------------------------------------------------- verbs
@pytest.mark.parametrize(
    ("verb", "module", "first"),
    [
        ("grpo", "grpo_asr", ["--trainer", "grpo"]),
        ("rloo", "grpo_asr", ["--trainer", "rloo"]),
        ("ppo", "grpo_asr", ["--trainer", "ppo"]),
        ("sft", "sft_asr", []),
        ("train-reward", "train_reward_model", []),
    ],
)
def test_each_verb_runs_its_recipe(verb: str, module: str, first: list[str], monkeypatch) -> None:
    import importlib

    recipe = importlib.import_module(f"rlnf.recipes.{module}")
    assert Path(recipe.__file__).resolve().parent == RECIPES.resolve()  # the checkout's recipes/, one copy
    calls = []
    monkeypatch.setattr(recipe, "main", lambda argv: calls.append((argv, sys.argv[0])))
    assert cli.main([verb, "--max_steps", "1"]) == 0
    assert calls == [([*first, "--max_steps", "1"], f"rlnf {verb}")]
    assert RECIPE_VERBS[verb][0] == module


def test_verb_help_shows_the_launcher_flags_and_the_recipe_flags(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["grpo", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--num_processes N" in out and "--accelerate_config FILE" in out
    assert "usage: rlnf grpo" in out and "--reward_funcs" in out


def test_console_script_dispatches_the_verb(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("rlnf")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rlnf.cli"]
    result = _run([*command, "rloo", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: rlnf rloo" in result.stdout and "rlnf.recipes.grpo_asr" in result.stdout
    assert "--num_generations" in result.stdout  # RLOO's config fields


def test_split_launch_flags() -> None:
    launch, rest = split_launch_flags(["--num_processes", "2", "--max_steps", "3", "--accelerate_config=a.yaml"])
    assert launch == {"num_processes": "2", "accelerate_config": "a.yaml"} and rest == ["--max_steps", "3"]
    with pytest.raises(LaunchError, match="--num_processes needs a value"):
        split_launch_flags(["--num_processes", "--max_steps", "3"])


def test_launch_command(tmp_path: Path) -> None:
    command = verb_launch_command("rlnf.recipes.grpo_asr", {"num_processes": "2"}, ["--trainer", "rloo"])
    assert command[:4] == [sys.executable, "-m", "accelerate.commands.launch", "--quiet"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    assert command[-4:] == ["--module", "rlnf.recipes.grpo_asr", "--trainer", "rloo"]
    config = tmp_path / "acc.yaml"
    config.write_text("distributed_type: NO\n")
    command = verb_launch_command("rlnf.recipes.sft_asr", {"accelerate_config": str(config)}, [])
    assert command[command.index("--config_file") + 1] == str(config) and "--multi_gpu" not in command
    with pytest.raises(LaunchError, match="no such file"):
        verb_launch_command("rlnf.recipes.sft_asr", {"accelerate_config": str(tmp_path / "nope.yaml")}, [])
    with pytest.raises(LaunchError, match="whole number"):
        verb_launch_command("rlnf.recipes.sft_asr", {"num_processes": "0"}, [])


def test_verb_refusals_are_one_error_line(capsys) -> None:
    for argv, needle in [
        (["grpo", "--trainer", "ppo"], "sets --trainer itself"),
        (["sft", "--num_processes", "two"], "--num_processes must be a whole number"),
    ]:
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith("error: ") and needle in err and "Traceback" not in err


def test_tiny_grpo_run_through_the_verb(assets: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "grpo"
    assert cli.main(["grpo", *tiny_grpo_flags(assets, output)]) == 0
    results = json.loads((output / "results.json").read_text())
    assert results["global_steps"] == 1
    assert (output / "config.json").exists() and (output / "README.md").exists()


def test_tiny_sft_run_through_the_verb(assets: dict[str, Path], tmp_path: Path, capsys, caplog) -> None:
    output = tmp_path / "sft"
    assert cli.main([
        "sft", "--dataset_name", str(assets["csv"]), "--eval_split_size", "0.25", "--output_dir", str(output),
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--tiny_d_model", "32", "--tiny_layers", "1",
        "--tiny_vocab_size", "300", "--tiny_window_seconds", "2", "--eval_max_new_tokens", "4", "--logging_steps", "1",
    ]) == 0  # fmt: skip
    results = json.loads((output / "sft_results.json").read_text())
    assert results["global_steps"] == 2 and (results["train_samples"], results["eval_samples"]) == (6, 2)
    assert (output / "model.safetensors").is_file() and "supervised fine-tuning" in (output / "README.md").read_text()
    out = capsys.readouterr().out
    assert "step 1/2 | loss " in out and "{'loss'" not in out  # the RL recipes' compact line, not the dict
    assert "no --model_name_or_path: training the demo's tiny whisper" in caplog.text  # own data, random model


def test_tiny_reward_model_run_through_the_verb(tmp_path: Path, capsys) -> None:
    from test_reward_training import TINY, write_scorer_jsonl

    from rlnf.reward_model import RewardModel

    data, output = write_scorer_jsonl(tmp_path / "data", clips=8), tmp_path / "reward"
    assert cli.main(["train-reward", "--dataset_name", str(data), "--output_dir", str(output), "--max_steps", "2",
                     *TINY]) == 0  # fmt: skip
    metrics = json.loads((output / "test_metrics.json").read_text())
    assert metrics["test_n"] > 0 and math.isfinite(metrics["test_mse"])
    assert RewardModel.from_pretrained(output).config.embed_dim == 16  # the flags reached the recipe, not the YAML's
    out = capsys.readouterr().out
    assert "step 2/2 | loss " in out and "{'loss'" not in out  # the RL recipes' compact line, not the dict


def test_two_processes_through_the_verb_end_with_the_error(tmp_path: Path) -> None:
    """`rlnf grpo --num_processes 2`: accelerate launch --quiet under the hood; the workers' error comes once, after
    the launcher's failure summary."""
    script = Path(sys.executable).with_name("rlnf")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rlnf.cli"]
    result = _run([*command, "grpo", "--num_processes", "2", "--max_stepz", "1"], cwd=tmp_path, timeout=240)
    _assert_one_error_line_last(result, "not used by the HfArgumentParser", "--max_stepz")
    assert "accelerate.commands.launch --quiet --multi_gpu --num_processes 2" in result.stderr


# ----------------------------------------------------------------------------------------------- errors
def test_missing_dataset_file_under_python_recipes_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    result = _run(
        [sys.executable, str(RECIPES / "grpo_asr.py"), "--dataset_name", str(missing), "--output_dir",
         str(tmp_path / "out")], cwd=tmp_path,
    )  # fmt: skip
    _assert_one_error_line_last(result, str(missing))


def test_reward_typo_is_one_line(assets: dict[str, Path], tmp_path: Path, capsys) -> None:
    import importlib

    recipe = importlib.import_module("rlnf.recipes.grpo_asr")
    flags = tiny_grpo_flags(assets, tmp_path / "out", "--reward_funcs", "wer", "reward_modle")
    with pytest.raises(SystemExit) as stop:
        errors.run_main(lambda: recipe.main(flags))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: unknown reward 'reward_modle' (did you mean")
    assert "Traceback" not in err


BUG_SCRIPT = """\
import runpy
import sys

import rlnf.recipe_support


def broken(*args, **kwargs):
    return 1 / 0  # a bug, not the user's doing


rlnf.recipe_support.load_train_eval = broken
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_bug_under_python_recipes_keeps_its_traceback(tmp_path: Path) -> None:
    script = tmp_path / "bug.py"
    script.write_text(BUG_SCRIPT)
    result = _run(
        [sys.executable, str(script), str(RECIPES / "grpo_asr.py"), "--output_dir", str(tmp_path / "out")],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("ZeroDivisionError")
    assert not any(line.startswith("error: ") for line in result.stderr.splitlines())


@dataclass
class _Config:
    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def _caught(function, *args) -> BaseException:
    try:
        function(*args)
    except Exception as error:
        return error
    raise AssertionError("no error")


def test_which_errors_are_the_users() -> None:
    from rlnf.data.scorer_data import ScorerDatasetError
    from rlnf.launch import check_world_size
    from rlnf.trainers.choice import trainer_classes

    assert errors.is_user_error(_caught(trainer_classes, "nope"))  # a `raise ValueError` of rlnf's checks
    assert errors.is_user_error(_caught(check_world_size, 1, {"WORLD_SIZE": "2"}))  # LaunchError (a RuntimeError)
    assert errors.is_user_error(ScorerDatasetError("bad rows"))
    assert errors.is_user_error(_caught(_Config, 0))  # config validation (a dataclass' __post_init__)
    assert errors.is_user_error(_caught(open, "/nonexistent/rlnf/file"))  # a missing path, wherever found
    assert not errors.is_user_error(_caught(int, "x"))  # a ValueError raised outside rlnf's checks: a bug
    assert not errors.is_user_error(_caught(np.zeros(2).reshape, 3))
    assert not errors.is_user_error(_caught(lambda: 1 / 0))
    assert not errors.is_user_error(RuntimeError("boom"))


def test_run_main(monkeypatch, capsys, tmp_path: Path) -> None:
    from rlnf.trainers.choice import trainer_classes

    for name in ("RANK", errors.ERROR_FILE_ENV, errors.TRACEBACK_ENV):
        monkeypatch.delenv(name, raising=False)
    assert errors.run_main(lambda: 7) == 7
    with pytest.raises(ZeroDivisionError):
        errors.run_main(lambda: 1 / 0)
    with pytest.raises(SystemExit) as stop:
        errors.run_main(lambda: trainer_classes("nope"))
    assert (
        stop.value.code == 2
        and capsys.readouterr().err == "error: --trainer must be one of grpo, rloo, ppo, got 'nope'\n"
    )
    monkeypatch.setenv(errors.TRACEBACK_ENV, "1")  # the escape hatch: every traceback
    with pytest.raises(ValueError, match="--trainer must be one of"):
        errors.run_main(lambda: trainer_classes("nope"))
    monkeypatch.delenv(errors.TRACEBACK_ENV)
    # Another rank speaks only after a grace period (the launcher stops it first when rank 0 failed the same way).
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(errors, "OTHER_RANK_GRACE_SECONDS", 0.0)
    with pytest.raises(SystemExit):
        errors.run_main(lambda: trainer_classes("nope"))
    assert capsys.readouterr().err.startswith("error: (rank 1) --trainer must be one of")
    # Under the verbs' launcher the message goes to a file, printed by the verb after the launch.
    monkeypatch.setenv(errors.ERROR_FILE_ENV, str(tmp_path / "error"))
    with pytest.raises(SystemExit):
        errors.run_main(lambda: trainer_classes("nope"))
    assert capsys.readouterr().err == ""
    assert (tmp_path / "error.1").read_text().startswith("--trainer must be one of")
