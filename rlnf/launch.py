"""Launching: the `rlnf grpo|rloo|ppo|sft|train-reward` verbs, and the `accelerate launch` command of one node of a
SLURM multi-node job.

`rlnf VERB [--num_processes N] [--accelerate_config FILE] [recipe flags]` runs a packaged recipe (``rlnf.recipes``,
the folder ``recipes/`` of a checkout): in this process, or, with N > 1 or an accelerate config, through
``accelerate launch --quiet`` (N processes on this machine: torchrun, CPU or GPU); an rlnf error then still ends
the output as one ``error: ...`` line (see ``rlnf.errors``).

Run one copy per node (``srun --ntasks-per-node=1 python -m rlnf.launch -- <recipe args>``): each copy reads
its node's SLURM variables and starts ``accelerate launch`` with the number of machines, this machine's rank,
the total number of processes and the address of the first node. See recipes/slurm/grpo_asr.sbatch.

    python -m rlnf.launch --dry-run --config accelerate_configs/multi_gpu.yaml \
        -- --config recipes/grpo_asr_demo.yaml

The module itself needs only the standard library; it exec's accelerate, so srun's signals reach it directly.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from itertools import product
from pathlib import Path

from .errors import ERROR_FILE_ENV, LaunchError, RlnfUserError, run_main

__all__ = [
    "DEFAULT_ACCELERATE_CONFIG",
    "DEFAULT_MASTER_PORT",
    "DEFAULT_SCRIPT",
    "RECIPE_VERBS",
    "SlurmEnvError",
    "build_launch_command",
    "check_world_size",
    "expand_nodelist",
    "main",
    "resolve_config",
    "run_verb",
    "shipped_configs",
    "split_launch_flags",
    "verb_launch_command",
]

DEFAULT_SCRIPT = "recipes/grpo_asr.py"
DEFAULT_ACCELERATE_CONFIG = "accelerate_configs/multi_gpu.yaml"
DEFAULT_MASTER_PORT = 29500
RDZV_BACKENDS = ("c10d", "static")


class SlurmEnvError(RlnfUserError, ValueError):
    """A SLURM variable is missing, malformed or contradicts another one."""


# ----------------------------------------------------------------------------------------------- nodelists
def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets: ``"a[1,2],b"`` -> ``["a[1,2]", "b"]``."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"nested brackets in nodelist {text!r}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in nodelist {text!r}")
        if char == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced '[' in nodelist {text!r}")
    parts.append("".join(current))
    return parts


def _expand_range_set(ranges: str, text: str) -> list[str]:
    """``"01-03,07"`` -> ``["01", "02", "03", "07"]`` (zero padding kept, as SLURM does)."""
    values: list[str] = []
    for item in ranges.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
        if match is None:
            raise ValueError(f"bad range {item!r} in nodelist {text!r}")
        start, end = match.group(1), match.group(2)
        if end is None:
            values.append(start)
            continue
        if int(end) < int(start):
            raise ValueError(f"descending range {item!r} in nodelist {text!r}")
        width = len(start)
        values.extend(str(i).zfill(width) for i in range(int(start), int(end) + 1))
    return values


def _expand_python(nodelist: str) -> list[str]:
    hosts: list[str] = []
    for item in _split_top_level(nodelist.strip()):
        item = item.strip()
        if not item:
            raise ValueError(f"empty host name in nodelist {nodelist!r}")
        # Alternate literal text and bracket groups: "rack[1-2]-gpu[01-02]" -> product of the groups.
        pieces = re.split(r"\[([^\]]*)\]", item)
        choices = [[piece] if i % 2 == 0 else _expand_range_set(piece, nodelist) for i, piece in enumerate(pieces)]
        hosts.extend("".join(combo) for combo in product(*choices))
    return hosts


def _expand_scontrol(nodelist: str) -> list[str] | None:
    """Hosts from ``scontrol show hostnames``; None when scontrol is absent or fails."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        result = subprocess.run(
            [scontrol, "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    hosts = result.stdout.split()
    return hosts or None


def expand_nodelist(nodelist: str, *, use_scontrol: bool = False) -> list[str]:
    """Expand a SLURM nodelist (``gpu[01-04]``, ``a,b``, ``n[1-2,5]``, ``r[1-2]-n[1-2]``) to host names.

    With ``use_scontrol`` and ``scontrol`` on PATH, SLURM's own ``scontrol show hostnames`` is asked first;
    the built-in parser is the fallback. Raises ValueError on malformed lists.
    """
    if not nodelist or not nodelist.strip():
        raise ValueError("empty nodelist")
    if use_scontrol:
        hosts = _expand_scontrol(nodelist)
        if hosts:
            return hosts
    return _expand_python(nodelist)


# ----------------------------------------------------------------------------------------------- env parsing
def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    """(name, value) of the first variable in `names` that is set and non-empty."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _int_var(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SlurmEnvError(f"{name}={value!r} is not an integer") from None
    if number < minimum:
        raise SlurmEnvError(f"{name}={number} must be >= {minimum}")
    return number


def _consistent_int(env: Mapping[str, str], names: Sequence[str], *, minimum: int, what: str, hint: str) -> int:
    """Read the integer that several SLURM variables carry; they must agree when more than one is set."""
    found = {name: env[name].strip() for name in names if env.get(name, "").strip()}
    if not found:
        raise SlurmEnvError(f"{what}: none of {', '.join(names)} is set. {hint}")
    values = {name: _int_var(name, value, minimum=minimum) for name, value in found.items()}
    if len(set(values.values())) > 1:
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        raise SlurmEnvError(f"{what}: inconsistent SLURM variables ({shown}). {hint}")
    return next(iter(values.values()))


def _gpus_per_node(env: Mapping[str, str], gpus_per_node: int | None) -> int:
    if gpus_per_node is not None:
        if gpus_per_node < 1:
            raise SlurmEnvError(f"gpus_per_node={gpus_per_node} must be >= 1")
        return gpus_per_node
    found = _first(env, ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"))
    if found is None:
        raise SlurmEnvError(
            "GPUs per node unknown: neither SLURM_GPUS_ON_NODE nor SLURM_GPUS_PER_NODE is set. "
            "Request GPUs with `#SBATCH --gpus-per-node=N` or pass --gpus-per-node N "
            "(GPUS_PER_NODE in the sbatch script)."
        )
    name, value = found
    # SLURM_GPUS_PER_NODE may carry a type: "a100:4" or "gpu:a100:4".
    return _int_var(name, value.rsplit(":", 1)[-1], minimum=1)


def build_launch_command(
    env: Mapping[str, str],
    *,
    script: str = DEFAULT_SCRIPT,
    accelerate_config: str = DEFAULT_ACCELERATE_CONFIG,
    script_args: Sequence[str] = (),
    gpus_per_node: int | None = None,
    rdzv_backend: str = "c10d",
    max_restarts: int = 0,
    monitor_interval: float = 1.0,
    accelerate: str = "accelerate",
    use_scontrol: bool = False,
) -> list[str]:
    """The ``accelerate launch`` argv for this node of a SLURM job, from its environment variables.

    Reads SLURM_JOB_NUM_NODES / SLURM_NNODES (number of machines), SLURM_NODEID / SLURM_PROCID (this machine's
    rank; one launcher task per node), SLURM_GPUS_ON_NODE / SLURM_GPUS_PER_NODE unless `gpus_per_node` is
    given, SLURM_JOB_NODELIST / SLURM_NODELIST (its first host is the main process, unless MASTER_ADDR is set)
    and MASTER_PORT (default 29500). `max_restarts=0` makes the node's launcher stop all its processes and
    exit non-zero as soon as one process fails. Raises SlurmEnvError naming the faulty variable.
    """
    if rdzv_backend not in RDZV_BACKENDS:
        raise ValueError(f"rdzv_backend must be one of {RDZV_BACKENDS}, got {rdzv_backend!r}")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
    one_task_hint = "Run exactly one launcher per node: `srun --ntasks-per-node=1 python -m rlnf.launch ...`."

    num_machines = _consistent_int(
        env,
        ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"),
        minimum=1,
        what="number of nodes",
        hint="Are you inside an sbatch/salloc allocation, and does the srun step span every node of the job?",
    )
    machine_rank = _consistent_int(
        env, ("SLURM_NODEID", "SLURM_PROCID"), minimum=0, what="node rank", hint=one_task_hint
    )
    if machine_rank >= num_machines:
        raise SlurmEnvError(f"node rank {machine_rank} (SLURM_NODEID/SLURM_PROCID) >= number of nodes {num_machines}")
    step_tasks = env.get("SLURM_STEP_NUM_TASKS", "").strip()
    if step_tasks and _int_var("SLURM_STEP_NUM_TASKS", step_tasks, minimum=1) != num_machines:
        raise SlurmEnvError(f"SLURM_STEP_NUM_TASKS={step_tasks} but the job has {num_machines} nodes. {one_task_hint}")
    gpus = _gpus_per_node(env, gpus_per_node)

    nodelist_var = _first(env, ("SLURM_JOB_NODELIST", "SLURM_NODELIST"))
    master_addr_var = env.get("MASTER_ADDR", "").strip()
    if nodelist_var is not None:
        name, nodelist = nodelist_var
        try:
            hosts = expand_nodelist(nodelist, use_scontrol=use_scontrol)
        except ValueError as error:
            raise SlurmEnvError(f"{name}={nodelist!r}: {error}") from None
        if len(hosts) != num_machines:
            raise SlurmEnvError(
                f"{name}={nodelist!r} expands to {len(hosts)} hosts but the number of nodes is {num_machines}"
            )
        main_ip = master_addr_var or hosts[0]
    elif master_addr_var:
        main_ip = master_addr_var
    else:
        raise SlurmEnvError("main process address unknown: set SLURM_JOB_NODELIST (or SLURM_NODELIST) or MASTER_ADDR")
    port = _int_var("MASTER_PORT", env.get("MASTER_PORT", "").strip() or str(DEFAULT_MASTER_PORT), minimum=1)
    if port > 65535:
        raise SlurmEnvError(f"MASTER_PORT={port} is not a valid port")

    return [
        accelerate, "launch", "--quiet",  # a failed worker: its error and one summary, no launcher traceback
        "--config_file", str(accelerate_config),
        "--num_machines", str(num_machines),
        "--num_processes", str(num_machines * gpus),
        "--machine_rank", str(machine_rank),
        "--main_process_ip", main_ip,
        "--main_process_port", str(port),
        "--rdzv_backend", rdzv_backend,
        "--max_restarts", str(max_restarts),
        "--monitor_interval", f"{monitor_interval:g}",
        str(script),
        *script_args,
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------- in the worker
def check_world_size(num_processes: int, env: Mapping[str, str] | None = None) -> None:
    """Stop a worker that the launcher started as one of N but that joined a world of another size.

    ``accelerate launch`` with a multi-process config starts N workers through torchrun (``WORLD_SIZE=N``), but
    on a machine without GPUs it does not pass ``use_cpu`` on: each worker then silently trains alone, and all
    of them write to one output folder. Without a config file, ``accelerate launch --num_processes 2`` on such a
    machine starts one process (no ``WORLD_SIZE``, but ``MASTER_ADDR``): stopped too, so that a user who asked
    for two does not wait for one. Called by the recipes with ``TrainingArguments.world_size``.
    """
    env = os.environ if env is None else env
    launched = env.get("WORLD_SIZE", "").strip()
    if not launched and num_processes == 1 and "ACCELERATE_MIXED_PRECISION" in env and "MASTER_ADDR" in env:
        # accelerate's one-process launcher sets MASTER_ADDR only when asked for more than one process
        raise LaunchError(
            "accelerate launch was asked for several processes but started only this one: without a config file "
            "(or --multi_gpu) accelerate starts a single process on a machine without GPUs. Launch with "
            "`rlnf grpo --num_processes 2`, or `accelerate launch -q --config_file accelerate_configs/cpu_2proc.yaml "
            "recipes/grpo_asr.py`; for one process, drop --num_processes (or unset MASTER_ADDR if your shell sets it)."
        )
    if not launched.isdigit() or int(launched) <= 1 or int(launched) == num_processes:
        return
    raise LaunchError(
        f"the launcher started {launched} processes (WORLD_SIZE={launched}) but this one is in a world of "
        f"{num_processes}: the processes would train as {launched} separate runs writing to one folder. On a "
        "machine without GPUs, launch with ACCELERATE_USE_CPU=1 (accelerate launch does not pass use_cpu to its "
        "workers), e.g. `ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_2proc.yaml "
        "recipes/grpo_asr.py`; on GPUs, check that every process sees a GPU."
    )


# ----------------------------------------------------------------------------------------------- rlnf verbs
# `rlnf VERB` -> (recipe module in rlnf.recipes, the arguments it always gets first)
RECIPE_VERBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grpo": ("grpo_asr", ("--trainer", "grpo")),
    "rloo": ("grpo_asr", ("--trainer", "rloo")),
    "ppo": ("grpo_asr", ("--trainer", "ppo")),
    "sft": ("sft_asr", ()),
    "train-reward": ("train_reward_model", ()),
}
LAUNCH_FLAGS = ("--num_processes", "--accelerate_config")  # the verb's own flags; everything else is the recipe's
_LAUNCH_HELP = """\
{prog}: the recipe {module} (recipes/{script} in a checkout), on its demo YAML unless --config names another
(a file, or a shipped YAML by name: grpo_asr_ctc_demo.yaml, or ctc_demo for the recipe's own prefix).
Launcher flags (read by rlnf, not passed to the recipe):
  --num_processes N         N > 1: N processes on this machine (GPUs, or CPU processes without GPUs) through
                            `accelerate launch --quiet`; default 1: this process
  --accelerate_config FILE  launch through `accelerate launch --quiet --config_file FILE` (multi-GPU, DeepSpeed,
                            FSDP: accelerate_configs/ in the repository); --num_processes overrides its count
Several machines: python -m rlnf.launch (SLURM) or accelerate launch -q -m {module} on each.
The recipe's flags:
"""


def split_launch_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``({flag: value} of LAUNCH_FLAGS, the recipe's arguments)``; ``--flag value`` and ``--flag=value``."""
    launch: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        item = argv[i]
        name, equals, value = item.partition("=")
        if name in LAUNCH_FLAGS:
            if not equals:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise LaunchError(f"{name} needs a value")
                value, i = argv[i + 1], i + 1
            launch[name.removeprefix("--")] = value
        else:
            rest.append(item)
        i += 1
    return launch, rest


def _num_processes(launch: Mapping[str, str]) -> int | None:
    if "num_processes" not in launch:
        return None
    value = launch["num_processes"]
    if not value.isdigit() or int(value) < 1:
        raise LaunchError(f"--num_processes must be a whole number >= 1, got {value!r}")
    return int(value)


def verb_launch_command(module: str, launch: Mapping[str, str], recipe_args: Sequence[str]) -> list[str]:
    """The ``accelerate launch --quiet`` argv that runs recipe ``module`` (e.g. ``rlnf.recipes.grpo_asr``) as the
    launcher flags ask: the accelerate config's setup, or ``--num_processes`` workers on this machine."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet"]
    processes = _num_processes(launch)
    config = launch.get("accelerate_config")
    if config is not None:
        if not Path(config).is_file():
            raise LaunchError(f"--accelerate_config {config}: no such file")
        command += ["--config_file", config]
        if processes is not None:
            command += ["--num_processes", str(processes)]
    else:  # N workers on this machine through torchrun (accelerate starts one process unless --multi_gpu)
        command += ["--multi_gpu", "--num_processes", str(processes or 1), "--num_machines", "1"]
        command += ["--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no"]  # 0: a free port
    return [*command, "--module", module, *recipe_args]


def _launch(verb: str, command: list[str]) -> int:
    """Run ``command`` (accelerate launch); a worker's rlnf error is printed after the launcher's own summary."""
    env = dict(os.environ)
    if "--multi_gpu" in command:
        import torch

        if not torch.cuda.is_available():
            env["ACCELERATE_USE_CPU"] = "1"  # torchrun's workers then join one gloo world instead of N worlds of 1
    print(f"rlnf {verb}: {shlex.join(command)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="rlnf-launch-") as folder:
        env[ERROR_FILE_ENV] = str(Path(folder) / "error")
        process = subprocess.Popen(command, env=env)
        try:
            code = process.wait()
        except KeyboardInterrupt:  # the launcher got the Ctrl-C too: give it time to stop its workers
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return 130
        errors = sorted(Path(folder).glob("error.*"), key=lambda path: int(path.suffix[1:]))
        if code != 0 and errors:
            raise RlnfUserError(errors[0].read_text(encoding="utf-8"))  # run_main: `error: ...`, exit code 2
    return code


def shipped_configs() -> dict[str, Path]:
    """The recipe YAMLs installed with rlnf (``rlnf.recipes``: recipes/ of a checkout), by file name."""
    from importlib.resources import files

    folder = Path(str(files("rlnf.recipes")))
    return {path.name: path for path in sorted(folder.glob("*.yaml"))}


def resolve_config(value: str, recipe: str) -> str:
    """``--config VALUE`` of recipe ``recipe`` (e.g. ``grpo_asr``): an existing file as given, else a shipped YAML
    named with or without ``.yaml`` or the recipe's prefix (``ctc_demo`` -> ``grpo_asr_ctc_demo.yaml``), so that
    the YAMLs are usable by name after a plain ``pip install``."""
    if Path(value).is_file():
        return value
    shipped = shipped_configs()
    names = (value, f"{value}.yaml", f"{recipe}_{value}", f"{recipe}_{value}.yaml") if "/" not in value else ()
    for name in names:
        if name in shipped:
            return str(shipped[name])
    raise LaunchError(f"--config {value}: no such file, nor a shipped config (shipped: {', '.join(shipped)})")


def _with_resolved_config(recipe_args: Sequence[str], recipe: str) -> list[str]:
    """``recipe_args`` with the value of ``--config X`` / ``--config=X`` through `resolve_config`."""
    args = list(recipe_args)
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            args[i] = f"--config={resolve_config(arg.split('=', 1)[1], recipe)}"
        elif arg == "--config" and i + 1 < len(args):
            args[i + 1] = resolve_config(args[i + 1], recipe)
    return args


@contextlib.contextmanager
def _negations_described() -> Iterator[None]:
    """HfArgumentParser adds ``--no_X`` for a bool field that defaults to True, with ``--X``'s help: under
    ``--help`` it says ``turn off --X`` instead, so the two do not read as the same switch."""
    original = argparse.ArgumentParser.format_help

    def format_help(parser: argparse.ArgumentParser) -> str:
        for action in parser._actions:
            if action.const is False and action.option_strings[:1] == [f"--no_{action.dest}"]:
                action.help, action.default = f"turn off --{action.dest}", argparse.SUPPRESS  # not "(default: False)"
        return original(parser)

    argparse.ArgumentParser.format_help = format_help
    try:
        yield
    finally:
        argparse.ArgumentParser.format_help = original


def _run_verb(verb: str, argv: list[str]) -> int:
    module_name, fixed = RECIPE_VERBS[verb]
    launch, recipe_args = split_launch_flags(argv)
    if fixed and any(arg == "--trainer" or arg.startswith("--trainer=") for arg in recipe_args):
        raise LaunchError(f"`rlnf {verb}` sets --trainer itself; run `rlnf rloo` or `rlnf ppo` for another trainer")
    module = f"rlnf.recipes.{module_name}"
    if importlib.util.find_spec("rlnf.recipes") is None:
        raise LaunchError("rlnf.recipes is not installed: reinstall rlnf (`pip install -e .` in a checkout)")
    recipe_args = [*fixed, *_with_resolved_config(recipe_args, module_name)]
    asks_help = "-h" in recipe_args or "--help" in recipe_args
    if asks_help:
        print(_LAUNCH_HELP.format(prog=f"rlnf {verb}", module=module, script=f"{module_name}.py"))
    if launch.get("accelerate_config") is None and (_num_processes(launch) or 1) == 1:
        saved, sys.argv = sys.argv, [f"rlnf {verb}", *recipe_args]  # the parser's usage line names the verb
        try:
            with _negations_described() if asks_help else contextlib.nullcontext():
                importlib.import_module(module).main(recipe_args)
        finally:
            sys.argv = saved
        return 0
    return _launch(verb, verb_launch_command(module, launch, recipe_args))


def run_verb(verb: str, argv: Sequence[str]) -> int:
    """``rlnf VERB ARGS`` (``VERB`` in ``RECIPE_VERBS``): the exit code; an rlnf error exits with code 2 after
    printing ``error: <message>`` (``rlnf.errors.run_main``)."""
    return run_main(lambda: _run_verb(verb, list(argv)))


grpo = functools.partial(run_verb, "grpo")
rloo = functools.partial(run_verb, "rloo")
ppo = functools.partial(run_verb, "ppo")
sft = functools.partial(run_verb, "sft")
train_reward = functools.partial(run_verb, "train-reward")


# ----------------------------------------------------------------------------------------------- CLI
def _accelerate_executable() -> str:
    """`accelerate` next to this interpreter (same virtual env) when present, else from PATH."""
    candidate = Path(sys.executable).with_name("accelerate")
    return str(candidate) if candidate.exists() else "accelerate"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rlnf.launch",
        description="Start `accelerate launch` for this node of a SLURM job (one task per node). "
        "Everything after `--` goes to the training script.",
    )
    parser.add_argument("--config", default=DEFAULT_ACCELERATE_CONFIG, help="accelerate config YAML")
    parser.add_argument("--script", default=DEFAULT_SCRIPT, help="training script")
    parser.add_argument("--gpus-per-node", type=int, default=None, help="default: SLURM_GPUS_ON_NODE")
    parser.add_argument("--rdzv-backend", choices=RDZV_BACKENDS, default="c10d")
    parser.add_argument("--max-restarts", type=int, default=0, help="0: fail fast (no elastic restarts)")
    parser.add_argument("--monitor-interval", type=float, default=1.0, help="seconds between worker checks")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: build the command from ``os.environ`` and exec it (or print it with --dry-run)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, script_args = argv, []
    if "--" in argv:
        own, script_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = _parser().parse_args(own)
    try:
        command = build_launch_command(
            os.environ,
            script=args.script,
            accelerate_config=args.config,
            script_args=script_args,
            gpus_per_node=args.gpus_per_node,
            rdzv_backend=args.rdzv_backend,
            max_restarts=args.max_restarts,
            monitor_interval=args.monitor_interval,
            accelerate=_accelerate_executable(),
            use_scontrol=True,
        )
    except (SlurmEnvError, ValueError) as error:
        print(f"rlnf.launch: error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(command))
        return 0
    print(f"rlnf.launch: {shlex.join(command)}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)  # replaces this process: signals from srun reach accelerate directly
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
