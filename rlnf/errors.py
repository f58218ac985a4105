"""User-facing errors: a bad flag, bad data or a refused configuration ends a command with ONE line,
``error: <message>``, last, without a Python traceback, and exit code 2; a bug keeps its traceback.

An error counts as the user's when it is an ``RlnfUserError`` (the marker rlnf's named error classes inherit);
a ``FileNotFoundError``/``FileExistsError`` (a path the user named, wherever it was found missing); or a
``ValueError``/``ImportError`` that either a ``raise`` statement of rlnf (its checks: their messages say what to
change) or the parsing/validation of a config (``TrlParser``, a dataclass ``__post_init__``: an unknown flag,
TRL's batch-size rules) raised. Other errors, and those classes raised elsewhere (torch, an ``int()`` inside
rlnf), are bugs. ``RLNF_TRACEBACK=1`` shows the traceback of every error.

Under a multi-process launch only rank 0 speaks: another rank that hits the error waits a moment (the launcher
stops it once rank 0 has failed with the same error) and speaks only if it is still running, i.e. if the error
was its own. A launcher that sets ``RLNF_ERROR_FILE`` (the ``rlnf`` verbs) gets the message in
``$RLNF_ERROR_FILE.<rank>`` instead, to print it after ``accelerate launch``'s own failure summary.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import NoReturn, TypeVar

ERROR_FILE_ENV = "RLNF_ERROR_FILE"
TRACEBACK_ENV = "RLNF_TRACEBACK"
EXIT_CODE = 2  # argparse's code for a usage error
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a process ended by SIGINT
INTERRUPTED = (
    "interrupted: a training run continues from its last saved checkpoint with --resume_from_checkpoint true "
    "(same flags otherwise)"
)
OTHER_RANK_GRACE_SECONDS = 3.0
_PATH_TYPES = (FileNotFoundError, FileExistsError)
_CHECK_TYPES = (ValueError, ImportError)
T = TypeVar("T")
_CONFIG_FRAMES = ("__post_init__", "parse_args_and_config", "parse_args_into_dataclasses")


class RlnfUserError(Exception):
    """Marker base class: the message tells the user what to change; no traceback is needed to act on it.

    Mix it in before the builtin class (``class CheckpointError(RlnfUserError, ValueError)``) so that callers
    catching ``ValueError``/``FileNotFoundError`` keep working."""


class LaunchError(RlnfUserError, RuntimeError):
    """A launch that would not run as asked (wrong world size, a launcher flag the recipe cannot take)."""


def _rlnf_dirs() -> tuple[Path, ...]:
    """rlnf's package folder and the recipes' (``recipes/`` in a checkout, ``rlnf/recipes`` in a wheel)."""
    dirs = [Path(__file__).resolve().parent]
    spec = importlib.util.find_spec("rlnf.recipes")
    dirs += [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec is not None else []
    return tuple(dirs)


@functools.lru_cache(maxsize=256)
def _raise_lines(filename: str) -> tuple[tuple[int, int], ...]:
    """(first line, last line) of every ``raise`` statement of a source file."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ()
    return tuple(
        (node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Raise)
    )


def _frames(error: BaseException) -> list[TracebackType]:
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def _raised_by_rlnf_check(error: BaseException) -> bool:
    frames = _frames(error)
    if not frames:
        return False
    innermost = frames[-1]
    filename = innermost.tb_frame.f_code.co_filename
    try:
        path = Path(filename).resolve()
    except OSError:
        return False
    if not any(path.is_relative_to(folder) for folder in _rlnf_dirs()):
        return False
    return any(first <= innermost.tb_lineno <= last for first, last in _raise_lines(str(path)))


def is_user_error(error: BaseException) -> bool:
    """True for an error whose message is all the user needs (see the module docstring for the rule)."""
    if isinstance(error, (RlnfUserError, *_PATH_TYPES)):
        return True
    if not isinstance(error, _CHECK_TYPES):
        return False
    if any(tb.tb_frame.f_code.co_name in _CONFIG_FRAMES for tb in _frames(error)):
        return True
    return _raised_by_rlnf_check(error)


def process_rank() -> int:
    """This process's global rank under a launcher (torchrun and accelerate set ``RANK``); 0 otherwise."""
    value = os.environ.get("RANK", "").strip()
    return int(value) if value.isdigit() else 0


def report_user_error(error: BaseException) -> None:
    """Tell the user once: on stderr from rank 0, or into ``$RLNF_ERROR_FILE.<rank>`` for a launcher to print."""
    message = str(error) or type(error).__name__
    rank = process_rank()
    _close_progress_bars()
    error_file = os.environ.get(ERROR_FILE_ENV, "").strip()
    if error_file:
        Path(f"{error_file}.{rank}").write_text(message, encoding="utf-8")
        return
    if rank != 0:
        time.sleep(OTHER_RANK_GRACE_SECONDS)  # rank 0 usually fails the same way; then the launcher stops us here
        message = f"(rank {rank}) {message}"
    print(f"error: {message}", file=sys.stderr, flush=True)


def _exit(code: int) -> NoReturn:
    """Exit now. In a group of several processes, skip interpreter teardown: it could wait on peers, or print a
    process-group warning after the error line."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _close_progress_bars() -> None:
    """Close tqdm's open bars first: one left open redraws itself over the error line."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        bar.close()


def run_main(main: Callable[[], T]) -> T:
    """Run a command-line entry point (``if __name__ == "__main__": run_main(main)``) and return its result: a user
    error ends it with ``error: <message>`` and exit code 2, Ctrl-C with one line and exit code 130; any other
    exception propagates with its traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        _close_progress_bars()
        if process_rank() == 0:
            print(INTERRUPTED, file=sys.stderr, flush=True)
        _exit(INTERRUPTED_EXIT_CODE)
    except Exception as error:
        if not is_user_error(error) or os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        report_user_error(error)
        _exit(EXIT_CODE)


__all__ = [
    "ERROR_FILE_ENV",
    "EXIT_CODE",
    "INTERRUPTED_EXIT_CODE",
    "TRACEBACK_ENV",
    "LaunchError",
    "RlnfUserError",
    "is_user_error",
    "process_rank",
    "report_user_error",
    "run_main",
]
