"""The code examples of the docs, as tests/test_docs_examples.py runs them: the fenced blocks of README.md,
docs/*.md and benchmarks/README.md, split into Python blocks and shell commands, and the ways to run a shell
command in this process (recipes, the ``rlnf`` console script, ``python -m``) or only parse its flags."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = ("README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md"))), "benchmarks/README.md")
CHECKED_LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell"}
UNCHECKED_LANGUAGES = {"", "csv"}  # a directory layout, a data file: no code
_FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Example:
    """One Python block, or one shell command (continuation lines joined), of a doc file."""

    kind: str  # "python" or "shell"
    doc: str  # path relative to the repository root
    line: int  # 1-based line of its first line in the doc
    code: str

    @property
    def id(self) -> str:
        return f"{self.doc}:L{self.line}"


def fenced_blocks(doc: str) -> list[tuple[str, int, str]]:
    """``(language, first code line, code)`` of every fenced block of ``doc`` (relative to the root)."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j])), None)
        if end is None:
            raise ValueError(f"{doc}:{i + 1}: a fenced block that is never closed")
        blocks.append((opening.group(1).lower(), i + 2, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


def shell_commands(code: str, first_line: int) -> list[tuple[int, str]]:
    """``(line, command)`` for each command of a shell block: comment-only and blank lines dropped, lines ending
    in a backslash joined with the next."""
    commands, pending, start = [], "", 0
    for offset, raw in enumerate(code.splitlines()):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not pending:
            start = first_line + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        commands.append((start, " ".join((pending + raw).split())))
        pending = ""
    if pending:
        raise ValueError(f"line {start}: a command ends with a line continuation")
    return commands


def collect_examples() -> list[Example]:
    examples = []
    for doc in DOC_FILES:
        for language, line, code in fenced_blocks(doc):
            kind = CHECKED_LANGUAGES.get(language)
            if kind == "python":
                examples.append(Example("python", doc, line, code))
            elif kind == "shell":
                examples += [Example("shell", doc, at, command) for at, command in shell_commands(code, line)]
    return examples


# ----------------------------------------------------------------------------------------------- shell commands
@dataclass
class Command:
    """A shell command line: leading ``NAME=value`` assignments, then the argv (comments stripped)."""

    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Command:
        tokens = shlex.split(text, comments=True)
        env = {}
        while tokens and _ASSIGNMENT.match(tokens[0]):
            name, value = tokens.pop(0).split("=", 1)
            env[name] = value
        return cls(env, tokens)

    @property
    def program(self) -> str | None:
        """What the command runs, for the runners below: ``console``, ``module``, ``script``, ``accelerate``,
        ``bash`` or ``sbatch``; None for anything else (pip, venv, chains with ``&&``)."""
        argv = self.argv
        if not argv or "&&" in argv or "|" in argv:
            return None
        if argv[0] in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
            return "module"
        if argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
            return "script"
        if argv[:2] == ["accelerate", "launch"]:
            return "accelerate"
        if argv[0] == "bash" and len(argv) > 1 and argv[1].endswith(".sh"):
            return "bash"
        if argv[0] == "sbatch":
            return "sbatch"
        if argv[0] in console_scripts():
            return "console"
        return None


def console_scripts() -> dict[str, str]:
    """rlnf's console scripts (``[project.scripts]``): name -> ``module:function``."""
    found = entry_points(group="console_scripts")
    return {ep.name: ep.value for ep in found if ep.value.split(".")[0].split(":")[0] == "rlnf"}


class Parsed(Exception):
    """Raised in place of running a script once its arguments are parsed (parse-only checks)."""


@contextlib.contextmanager
def parse_only() -> Iterator[None]:
    """Scripts stop with `Parsed` right after their argument parser accepted the command line: TRL's
    ``TrlParser.parse_args_and_config`` (the recipes) and ``ArgumentParser.parse_args`` (argparse scripts)."""
    from trl import TrlParser

    trl_parse, argparse_parse = TrlParser.parse_args_and_config, argparse.ArgumentParser.parse_args

    def trl_then_stop(self, *args, **kwargs):
        raise Parsed(trl_parse(self, *args, **kwargs))

    def argparse_then_stop(self, *args, **kwargs):
        raise Parsed(argparse_parse(self, *args, **kwargs))

    TrlParser.parse_args_and_config = trl_then_stop
    argparse.ArgumentParser.parse_args = argparse_then_stop
    try:
        yield
    finally:
        TrlParser.parse_args_and_config = trl_parse
        argparse.ArgumentParser.parse_args = argparse_parse


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = list(argv)
    try:
        yield
    finally:
        sys.argv = saved


def _exit_code(run) -> int:
    try:
        value = run()
    except SystemExit as done:
        return 0 if done.code is None else done.code if isinstance(done.code, int) else 1
    return value if isinstance(value, int) else 0


def run_script(path: str, args: list[str]) -> int:
    """``python PATH ARGS`` in this process (as ``__main__``); its exit status."""
    with _argv([path, *args]):
        return _exit_code(lambda: runpy.run_path(path, run_name="__main__"))


def run_module(name: str, args: list[str]) -> int:
    """``python -m NAME ARGS`` in this process; its exit status."""
    with _argv([name, *args]):
        return _exit_code(lambda: runpy.run_module(name, run_name="__main__", alter_sys=True))


def run_console(argv: list[str]) -> int:
    """An rlnf console script (``rlnf score ...``) in this process, through its entry point; its exit status."""
    (entry,) = entry_points(group="console_scripts", name=argv[0])
    return _exit_code(lambda: entry.load()(argv[1:]))


def accelerate_arguments(argv: list[str]) -> argparse.Namespace:
    """``accelerate launch ...`` parsed by accelerate's own parser (``training_script``, ``training_script_args``,
    ``config_file`` ...); a config file it names must exist."""
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(argv[2:])
    if args.config_file is not None and not Path(args.config_file).is_file():
        raise FileNotFoundError(f"accelerate --config_file {args.config_file}: no such file")
    return args


def sbatch_recipe(command: Command) -> tuple[str, list[str]]:
    """(recipe script, its argv) that an ``sbatch recipes/slurm/X.sbatch FLAGS`` job runs on each node: the
    script's ``SCRIPT``/``RECIPE_CONFIG`` (the command's variables, else the script's defaults), then FLAGS.
    The sbatch file must exist and pass ``bash -n``."""
    position = next(i for i, arg in enumerate(command.argv) if arg.endswith(".sbatch"))
    path = Path(command.argv[position])
    subprocess.run(["bash", "-n", str(path)], check=True, capture_output=True, text=True)
    text = path.read_text(encoding="utf-8")

    def setting(name: str) -> str:
        default = re.search(rf"^{name}=\$\{{{name}:-([^}}]+)\}}", text, re.MULTILINE)
        assert default, f"{path}: no {name}=${{{name}:-...}} line"
        return command.env.get(name, default.group(1))

    return setting("SCRIPT"), ["--config", setting("RECIPE_CONFIG"), *command.argv[position + 1 :]]


def captured(run) -> tuple[int, str]:
    """(exit status, stdout) of ``run()``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run()
    return code, out.getvalue()


def launch_argv(command: Command) -> list[str]:
    """The argv to start ``command`` as a real process, with this interpreter for ``python``/``accelerate``."""
    argv = list(command.argv)
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    if argv[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *argv[2:]]
    return argv


def environment(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
