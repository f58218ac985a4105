"""`rlnf` command line: `rlnf score AUDIO TEXT [--model PATH]`, `rlnf transcribe AUDIO... [--model PATH]` and
friends."""

from __future__ import annotations

import argparse
import importlib
import sys

DEFAULT_REWARD_MODEL = "RobotsMali/reward-model"

# Sub-commands implemented elsewhere: name -> ("module" or "module:function", help). The function (default `main`)
# takes the arguments after the command name and returns an exit code.
_COMMANDS = {
    "eval-reward": ("rlnf.trainers.reward_model_evaluation", "evaluate a reward model on (audio, text, score) data"),
    "convert-nemo": (
        "rlnf.nemo:convert_main",
        "convert a NeMo .nemo Parakeet (TDT, CTC or hybrid TDT-CTC; file or hub id) into transformers folders",
    ),
    "export-nemo": (
        "rlnf.nemo:export_main",
        "write a (tuned) transformers Parakeet folder back into a copy of the .nemo it was converted from",
    ),
}


def _score(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from .reward_model import RewardModel, RewardModelProcessor

    hf_logging.disable_progress_bar()  # one number on stdout, nothing else on stderr unless it fails

    processor = RewardModelProcessor.from_pretrained(args.model)
    model = RewardModel.from_pretrained(args.model).eval()
    batch = processor(audios=[args.audio], texts=[args.text], sampling_rate=args.sampling_rate)
    with torch.inference_mode():
        score = float(model(**batch).logits[0])
    print(f"{score:.4f}")
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    """Greedy transcripts by any policy family, one ``AUDIO<TAB>TEXT`` line per file, decoded as rlnf evaluates
    (no FFmpeg needed)."""
    import torch
    from transformers import AutoProcessor

    from .assets import resolve_model_path
    from .policies.base import load_policy_model, transcribe

    path = resolve_model_path(args.model, "policy", option="--model")
    model = load_policy_model(path).eval()  # any policy family: Whisper, CTC
    processor = AutoProcessor.from_pretrained(path)
    saved = getattr(model, "generation_config", None)  # the prefix the training recipe saved
    language = args.language or getattr(saved, "language", None)
    task = args.task or getattr(saved, "task", None) or "transcribe"
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    texts = transcribe(
        model, processor, args.audio, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        language=language, task=None if task == "none" else task, device=device,
    )  # fmt: skip
    for audio, text in zip(args.audio, texts):
        print(f"{audio}\t{text}")
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
    asr = commands.add_parser("transcribe", help="greedy transcripts of audio files with an ASR policy")
    asr.add_argument("audio", nargs="+", help="audio files (anything soundfile reads)")
    asr.add_argument("--model", default="demo", help="policy folder or hub id ('demo': the shipped demo policy)")
    asr.add_argument("--batch_size", type=int, default=8)
    asr.add_argument("--max_new_tokens", type=int, default=128, help="longest transcript, in tokens")
    asr.add_argument("--language", default=None, help="language token of the prefix (default: the model's)")
    asr.add_argument("--task", default=None, help="transcribe / translate / none (default: the model's)")
    asr.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    asr.set_defaults(func=_transcribe)
    for name, (module, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] in _COMMANDS:  # delegated commands parse their own arguments
        module, _, function = _COMMANDS[argv[0]][0].partition(":")
        return int(getattr(importlib.import_module(module), function or "main")(argv[1:]) or 0)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"rlnf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
