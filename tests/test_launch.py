"""Launch tooling: SLURM -> `accelerate launch` command, accelerate YAMLs, and real 2-process CPU runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from process_group import run_process_group

from rlnf.errors import LaunchError
from rlnf.launch import SlurmEnvError, build_launch_command, check_world_size, expand_nodelist, main

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "accelerate_configs"
SBATCH = ROOT / "recipes" / "slurm" / "grpo_asr.sbatch"

TWO_NODES_RANK1 = {
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_NNODES": "2",
    "SLURM_NODEID": "1",
    "SLURM_PROCID": "1",
    "SLURM_GPUS_ON_NODE": "4",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
}


def _flags(command: list[str]) -> dict[str, str]:
    """`--flag value` pairs of an accelerate command (up to the script); `--quiet` (no value) maps to ""."""
    flags, i = {}, 2
    while i < len(command) and command[i].startswith("--"):
        if command[i] == "--quiet":
            flags[command[i]], i = "", i + 1
            continue
        flags[command[i]] = command[i + 1]
        i += 2
    return flags


# ----------------------------------------------------------------------------------------------- command
def test_command_for_two_nodes_of_four_gpus_rank1() -> None:
    command = build_launch_command(
        TWO_NODES_RANK1,
        accelerate_config="accelerate_configs/multi_gpu.yaml",
        script_args=["--config", "recipes/grpo_asr_demo.yaml"],
    )
    assert command[:2] == ["accelerate", "launch"]
    flags = _flags(command)
    assert "--quiet" in flags  # a failed worker: its error and one summary, no launcher traceback
    assert flags["--config_file"] == "accelerate_configs/multi_gpu.yaml"
    assert flags["--num_machines"] == "2"
    assert flags["--num_processes"] == "8"
    assert flags["--machine_rank"] == "1"
    assert flags["--main_process_ip"] == "gpu07"
    assert flags["--main_process_port"] == "29500"
    assert flags["--rdzv_backend"] == "c10d"
    assert flags["--max_restarts"] == "0"
    assert "--monitor_interval" in flags
    assert command[-3:] == ["recipes/grpo_asr.py", "--config", "recipes/grpo_asr_demo.yaml"]


def test_command_options_and_overrides() -> None:
    env = {
        "SLURM_NNODES": "3",
        "SLURM_PROCID": "0",
        "SLURM_GPUS_PER_NODE": "a100:2",
        "SLURM_NODELIST": "a,b,c",
        "MASTER_PORT": "31000",
    }
    flags = _flags(build_launch_command(env, rdzv_backend="static"))
    assert (flags["--num_processes"], flags["--machine_rank"], flags["--main_process_ip"]) == ("6", "0", "a")
    assert (flags["--main_process_port"], flags["--rdzv_backend"]) == ("31000", "static")
    flags = _flags(build_launch_command({**env, "MASTER_ADDR": "10.0.0.5"}, gpus_per_node=8))
    assert (flags["--num_processes"], flags["--main_process_ip"]) == ("24", "10.0.0.5")
    with pytest.raises(ValueError, match="rdzv_backend"):
        build_launch_command(env, rdzv_backend="etcd")


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("SLURM_JOB_NUM_NODES", "SLURM_NNODES"), "SLURM_JOB_NUM_NODES"),
        (("SLURM_NODEID", "SLURM_PROCID"), "SLURM_NODEID"),
        (("SLURM_GPUS_ON_NODE",), "SLURM_GPUS_ON_NODE"),
        (("SLURM_JOB_NODELIST",), "SLURM_JOB_NODELIST"),
    ],
)
def test_missing_variable_is_named(removed: tuple[str, ...], named: str) -> None:
    env = {k: v for k, v in TWO_NODES_RANK1.items() if k not in removed}
    with pytest.raises(SlurmEnvError, match=named):
        build_launch_command(env)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SLURM_NNODES": "3"}, "SLURM_NNODES=3"),
        ({"SLURM_PROCID": "5"}, "SLURM_PROCID=5"),
        ({"SLURM_NODEID": "2", "SLURM_PROCID": "2"}, "SLURM_NODEID"),
        ({"SLURM_JOB_NODELIST": "gpu[07-09]"}, "SLURM_JOB_NODELIST"),
        ({"SLURM_JOB_NODELIST": "gpu[07-08"}, "SLURM_JOB_NODELIST"),
        ({"SLURM_STEP_NUM_TASKS": "8"}, "SLURM_STEP_NUM_TASKS"),
        ({"SLURM_GPUS_ON_NODE": "0"}, "SLURM_GPUS_ON_NODE"),
        ({"SLURM_JOB_NUM_NODES": "two", "SLURM_NNODES": ""}, "SLURM_JOB_NUM_NODES"),
        ({"MASTER_PORT": "http"}, "MASTER_PORT"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT"),
    ],
)
def test_inconsistent_or_malformed_variable_is_named(changes: dict[str, str], named: str) -> None:
    with pytest.raises(SlurmEnvError, match=named):
        build_launch_command({**TWO_NODES_RANK1, **changes})


# ----------------------------------------------------------------------------------------------- nodelists
@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("gpu[01-04]", ["gpu01", "gpu02", "gpu03", "gpu04"]),
        ("a,b", ["a", "b"]),
        ("node17", ["node17"]),
        ("n[1-2,5]", ["n1", "n2", "n5"]),
        ("gpu[8-11]", ["gpu8", "gpu9", "gpu10", "gpu11"]),
        ("gpu[098-101]", ["gpu098", "gpu099", "gpu100", "gpu101"]),
        ("a[1-2],b[07],c", ["a1", "a2", "b07", "c"]),
        ("r[1-2]-n[1-2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]),
        ("gpu-[3-4].cluster", ["gpu-3.cluster", "gpu-4.cluster"]),
    ],
)
def test_expand_nodelist(nodelist: str, hosts: list[str]) -> None:
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize(
    ("nodelist", "problem"),
    [
        ("", "empty nodelist"),
        ("gpu[01-04", "unbalanced '\\['"),
        ("gpu01-04]", "unbalanced '\\]'"),
        ("gpu[04-01]", "descending range '04-01'"),
        ("gpu[a-b]", "bad range 'a-b'"),
        ("a,,b", "empty host name"),
        ("n[[1]]", "nested brackets"),
    ],
)
def test_expand_nodelist_rejects_malformed(nodelist: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        expand_nodelist(nodelist)


def test_expand_nodelist_prefers_scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "x1\\nx2\\n"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert expand_nodelist("weird{syntax}", use_scontrol=True) == ["x1", "x2"]
    assert expand_nodelist("gpu[1-2]", use_scontrol=False) == ["gpu1", "gpu2"]


# ----------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def slurm_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SLURM_") or name in ("MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no scontrol
    return monkeypatch


def test_main_dry_run_prints_command(slurm_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in TWO_NODES_RANK1.items():
        slurm_env.setenv(name, value)
    rc = main(["--dry-run", "--config", "accelerate_configs/multi_gpu.yaml", "--", "--config", "recipes/x.yaml"])
    out = capsys.readouterr().out.split()
    assert rc == 0
    assert out[0].endswith("accelerate") and out[1] == "launch"
    flags = _flags(out)
    assert (flags["--num_processes"], flags["--machine_rank"]) == ("8", "1")
    assert flags["--main_process_ip"] == "gpu07"
    assert out[-3:] == ["recipes/grpo_asr.py", "--config", "recipes/x.yaml"]


def test_main_reports_missing_variable(slurm_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run"]) == 2
    assert "SLURM_JOB_NUM_NODES" in capsys.readouterr().err


def test_sbatch_runs_one_launcher_per_node_with_fail_fast(tmp_path: Path) -> None:
    """The sbatch script, with a fake `srun` that records its options and runs the launcher with --dry-run."""
    record = tmp_path / "srun_args.txt"
    fake_srun = tmp_path / "srun"
    fake_srun.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/bash
            printf '%s\\n' "$@" > {record}
            while [[ "$1" == --* ]]; do shift; done   # drop srun's own options
            python=$1; shift 2                        # "<python> -m"
            exec "$python" -m "$1" --dry-run "${{@:2}}"
            """
        )
    )
    fake_srun.chmod(fake_srun.stat().st_mode | stat.S_IEXEC)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
        **TWO_NODES_RANK1,
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "SLURM_SUBMIT_DIR": str(ROOT),
        "SLURM_JOB_ID": "4242",
        "SLURM_CPUS_PER_TASK": "32",
        "ACCELERATE_CONFIG": "accelerate_configs/deepspeed_zero2.yaml",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        ["bash", str(SBATCH), "--learning_rate", "1e-6"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    srun_args = record.read_text().splitlines()
    assert "--kill-on-bad-exit=1" in srun_args and "--ntasks-per-node=1" in srun_args
    assert "--cpus-per-task=32" in srun_args
    command = result.stdout.strip().splitlines()[-1].split()
    flags = _flags(command)
    assert flags["--config_file"] == "accelerate_configs/deepspeed_zero2.yaml"
    assert (flags["--num_processes"], flags["--machine_rank"]) == ("8", "1")
    assert flags["--main_process_ip"] == "gpu07"
    assert flags["--main_process_port"] == str(29500 + 4242 % 1000)
    assert command[-5:] == [
        "recipes/grpo_asr.py", "--config", "recipes/grpo_asr_whisper_small.yaml", "--learning_rate", "1e-6"
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------- YAMLs
EXPECTED_CONFIGS = {
    "single_gpu.yaml": {"distributed_type": "NO", "num_processes": 1, "use_cpu": False},
    "multi_gpu.yaml": {"distributed_type": "MULTI_GPU", "use_cpu": False},
    "deepspeed_zero2.yaml": {"distributed_type": "DEEPSPEED", "deepspeed_config.zero_stage": 2},
    "deepspeed_zero3.yaml": {
        "distributed_type": "DEEPSPEED",
        "deepspeed_config.zero_stage": 3,
        "deepspeed_config.zero3_init_flag": True,
        "deepspeed_config.zero3_save_16bit_model": True,
    },
    "fsdp2.yaml": {
        "distributed_type": "FSDP",
        "mixed_precision": "bf16",
        "fsdp_config.fsdp_version": 2,
        "fsdp_config.fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    },
    "cpu_2proc.yaml": {"distributed_type": "MULTI_GPU", "use_cpu": True, "num_processes": 2},
}


def test_every_config_is_known() -> None:
    assert sorted(p.name for p in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED_CONFIGS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CONFIGS))
def test_config_parses_with_accelerate_and_keeps_its_promise(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(CONFIG_DIR / name))
    assert isinstance(config, ClusterConfig)
    for key, expected in EXPECTED_CONFIGS[name].items():
        if "." in key:
            section, field = key.split(".")
            value = getattr(config, section)[field]
        else:
            value = getattr(config, key)
        value = getattr(value, "value", value)  # DistributedType enum -> str
        assert value == expected, f"{name}: {key}={value!r}, expected {expected!r}"
    if config.distributed_type.value in ("DEEPSPEED", "FSDP", "MULTI_GPU") and name != "cpu_2proc.yaml":
        assert config.mixed_precision == "bf16"


# ----------------------------------------------------------------------------------------------- real runs
def _accelerate_launch() -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "accelerate.commands.accelerate_cli"]


def _run_cpu_2proc(
    script: Path, *script_args: str, timeout: float, use_cpu_env: bool = True
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`accelerate launch --config_file accelerate_configs/cpu_2proc.yaml script ...`, own process group."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"},
        **({"ACCELERATE_USE_CPU": "1"} if use_cpu_env else {}),  # required: see accelerate_configs/cpu_2proc.yaml
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
    }
    config = str(CONFIG_DIR / "cpu_2proc.yaml")
    command = [*_accelerate_launch(), "launch", "--config_file", config, str(script), *script_args]
    returncode, out, seconds = run_process_group(command, env=env, cwd=ROOT, timeout=timeout, what="2-process launch")
    return subprocess.CompletedProcess(command, returncode, out, None), seconds


GATHER_SCRIPT = """\
import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

accelerator = Accelerator()
ranks = accelerator.gather(torch.tensor([accelerator.process_index])).tolist()
objects = gather_object([f"rank{accelerator.process_index}"])
# One file per rank: the two processes share stdout, where their lines can interleave.
Path(sys.argv[1], f"rank{accelerator.process_index}.json").write_text(json.dumps({
    "rank": accelerator.process_index, "world": accelerator.num_processes, "ranks": ranks, "objects": objects,
    "backend": accelerator.state.backend, "type": str(accelerator.distributed_type),
}))
accelerator.wait_for_everyone()
accelerator.end_training()
"""


def test_real_two_process_cpu_run(tmp_path: Path) -> None:
    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    result, seconds = _run_cpu_2proc(script, str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
    files = sorted(tmp_path.glob("rank*.json"))
    assert [f.name for f in files] == ["rank0.json", "rank1.json"], result.stdout[-4000:]
    results = [json.loads(f.read_text()) for f in files]
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        assert r["world"] == 2 and r["ranks"] == [0, 1] and r["objects"] == ["rank0", "rank1"]
        assert r["backend"] == "gloo" and r["type"].endswith("MULTI_CPU")
    print(f"2-process CPU gather run: {seconds:.1f} s wall")


FAIL_SCRIPT = """\
import os
import sys
import time

from accelerate import Accelerator

accelerator = Accelerator()
if accelerator.process_index == 0:
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
accelerator.wait_for_everyone()
if accelerator.process_index == 1:
    raise RuntimeError("rank 1 failed on purpose")
print("rank 0 busy (not in a collective)", flush=True)
time.sleep(300)
print("RANK0 SURVIVED", flush=True)
"""


def test_one_failing_process_stops_the_others(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(FAIL_SCRIPT)
    result, seconds = _run_cpu_2proc(script, str(tmp_path / "rank0.pid"), timeout=90)
    assert result.returncode != 0
    assert seconds < 60, f"launch took {seconds:.1f} s to fail"
    assert "rank 1 failed on purpose" in result.stdout
    assert "RANK0 SURVIVED" not in result.stdout
    pid = int((tmp_path / "rank0.pid").read_text())
    with pytest.raises(ProcessLookupError):  # rank 0 was terminated by the launcher, not left running
        os.kill(pid, 0)
    print(f"2-process CPU failure run: {seconds:.1f} s wall")


# ----------------------------------------------------------------------------------------------- world size
def test_check_world_size() -> None:
    check_world_size(1, {})  # plain python
    check_world_size(2, {"WORLD_SIZE": "2"})  # a real 2-process world
    check_world_size(1, {"WORLD_SIZE": "1"})
    with pytest.raises(RuntimeError, match=r"started 2 processes \(WORLD_SIZE=2\).*world of 1.*ACCELERATE_USE_CPU=1"):
        check_world_size(1, {"WORLD_SIZE": "2"})
    with pytest.raises(LaunchError):  # a user error: `error: ...`, no traceback (rlnf.errors.run_main)
        check_world_size(1, {"WORLD_SIZE": "2"})


def test_accelerate_one_process_start_for_two_is_stopped(tmp_path: Path) -> None:
    """`accelerate launch --num_processes 2` without a config starts one process on CPU: the recipe stops."""
    one_process = {"ACCELERATE_MIXED_PRECISION": "no"}  # what `accelerate launch script.py` sets
    check_world_size(1, one_process)
    check_world_size(1, {"MASTER_ADDR": "10.0.0.1"})  # a shell that exports MASTER_ADDR, plain python
    with pytest.raises(LaunchError, match=r"asked for several processes but started only this one.*--num_processes 2"):
        check_world_size(1, {**one_process, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    script = tmp_path / "world.py"
    script.write_text(WORLD_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE", "MASTER", "WORLD_SIZE", "RANK"))}
    for asked, stopped in (("2", True), ("1", False)):
        done = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "-q", "--num_processes", asked, "--num_machines", "1",
             "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tmp_path / asked)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert ("TRAINING WOULD START" not in done.stdout) is stopped, done.stdout + done.stderr
        assert ("started only this one" in done.stderr) is stopped, done.stderr


WORLD_SCRIPT = """\
import sys

from transformers import TrainingArguments

from rlnf.launch import check_world_size

args = TrainingArguments(output_dir=sys.argv[1], use_cpu=False, report_to="none")  # a GPU config on a CPU box
check_world_size(args.world_size)
print("TRAINING WOULD START", flush=True)
"""


def test_two_cpu_processes_without_accelerate_use_cpu_are_stopped(tmp_path: Path) -> None:
    script = tmp_path / "world.py"
    script.write_text(WORLD_SCRIPT)
    result, seconds = _run_cpu_2proc(script, str(tmp_path / "out"), timeout=120, use_cpu_env=False)
    assert result.returncode != 0, result.stdout[-4000:]
    assert "ACCELERATE_USE_CPU=1" in result.stdout and "separate runs writing to one folder" in result.stdout
    assert "TRAINING WOULD START" not in result.stdout
    print(f"2-process launch without ACCELERATE_USE_CPU stopped in {seconds:.1f} s")
