"""`rlnf` command line: `rlnf score AUDIO TEXT [--model PATH]` and friends."""

from __future__ import annotations

import argparse
import importlib
import sys

DEFAULT_REWARD_MODEL = "RobotsMali/reward-model"

# Sub-commands implemented elsewhere: name -> (module, help). Each module has `add_arguments` and `run`.
_COMMANDS = {
    "eval-reward": ("rlnf.trainers.reward_model_evaluation", "evaluate a reward model on (audio, text, score) data"),
}


def _score(args: argparse.Namespace) -> int:
    import torch

    from .reward_model import RewardModel, RewardModelProcessor

    processor = RewardModelProcessor.from_pretrained(args.model)
    model = RewardModel.from_pretrained(args.model).eval()
    batch = processor(audios=[args.audio], texts=[args.text], sampling_rate=args.sampling_rate)
    with torch.inference_mode():
        score = float(model(**batch).logits[0])
    print(f"{score:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlnf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score how well TEXT transcribes AUDIO, in [0, 1]")
    score.add_argument("audio", help="an audio file (anything soundfile reads)")
    score.add_argument("text", help="the transcript to score")
    score.add_argument(
        "--model",
        default=DEFAULT_REWARD_MODEL,
        help="reward model: a local folder, a hub id, or 'demo' (the shipped demo reward model); offline, a hub id "
        "must already be in the Hugging Face cache",
    )
    score.add_argument("--sampling_rate", type=int, default=None, help="only for raw arrays; files carry theirs")
    score.set_defaults(func=_score)
    for name, (module, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] in _COMMANDS:  # delegated commands parse their own arguments
        return int(importlib.import_module(_COMMANDS[argv[0]][0]).main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"rlnf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
