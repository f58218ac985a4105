"""`rlnf` command line: the recipes (`rlnf grpo|rloo|ppo|sft|train-reward [flags]`, like `trl grpo`), `rlnf score
AUDIO TEXT [--model PATH]`, `rlnf transcribe AUDIO... [--model PATH]` and friends."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

DEFAULT_REWARD_MODEL = "RobotsMali/reward-model"

# Sub-commands implemented elsewhere: name -> ("module" or "module:function", help). The function (default `main`)
# takes the arguments after the command name and returns an exit code.
_COMMANDS = {
    # The recipes (rlnf.recipes = recipes/ of a checkout), on their demo YAMLs; flags override them field by field.
    # --num_processes N / --accelerate_config FILE: through `accelerate launch --quiet` (rlnf.launch).
    "grpo": ("rlnf.launch:grpo", "GRPO of a speech-to-text policy (recipes/grpo_asr.py; the demo without flags)"),
    "rloo": ("rlnf.launch:rloo", "RLOO of a speech-to-text policy (recipes/grpo_asr.py --trainer rloo)"),
    "ppo": ("rlnf.launch:ppo", "PPO with a critic (recipes/grpo_asr.py --trainer ppo)"),
    "sft": ("rlnf.launch:sft", "supervised fine-tuning of a speech-to-text policy (recipes/sft_asr.py)"),
    "train-reward": ("rlnf.launch:train_reward", "train a reward model (recipes/train_reward_model.py)"),
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


def _eval_reward(args: argparse.Namespace) -> int:
    """``rlnf eval-reward``: writes ``eval_<split>_metrics.json`` (+ ``eval_<split>.png``) to ``--output_dir`` and
    prints the metrics as one JSON line."""
    import json

    from .data.scorer_data import load_scorer_dataset, score_range_for_scale
    from .reward_model.modeling import RewardModel
    from .reward_model.processing import RewardModelProcessor
    from .trainers.reward_model_evaluation import (
        _finite_or_none,
        evaluate_reward_model,
        plot_reward_evaluation,
        write_metrics_json,
    )

    score_range_for_scale(args.score_scale)
    splits = load_scorer_dataset(
        args.dataset, args.dataset_config, audio_column=args.audio_column, text_column=args.text_column,
        seed=args.seed, demo_options=_eval_demo_options(args) if args.dataset == "demo" else None,
    )  # fmt: skip
    args.split = _choose_split(list(splits), args.split, args.dataset)
    dataset = splits[args.split]
    if args.max_samples is not None:
        dataset = dataset.select(range(min(args.max_samples, len(dataset))))
    processor = RewardModelProcessor.from_pretrained(args.model)
    model = RewardModel.from_pretrained(args.model).eval()
    metrics, details = evaluate_reward_model(
        model,
        processor,
        dataset,
        score_scale=args.score_scale,
        audio_column=args.audio_column,
        text_column=args.text_column,
        score_column=args.score_column,
        clip_column=args.clip_column,
        reference_column=args.reference_column,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    metrics = {"model": str(args.model), "dataset": args.dataset, "split": args.split, **metrics}
    output = Path(args.output_dir)
    json_path = write_metrics_json(metrics, output / f"eval_{args.split}_metrics.json")
    print(json.dumps({k: _finite_or_none(v) for k, v in metrics.items()}))
    print(f"rlnf eval-reward: metrics written to {json_path}", file=sys.stderr)
    if not args.no_plot:
        png = plot_reward_evaluation(
            details, metrics, output / f"eval_{args.split}.png", title=f"{args.model} on {args.dataset}:{args.split}"
        )
        print(f"rlnf eval-reward: plot written to {png}", file=sys.stderr)
    return 0


def _choose_split(splits: list[str], asked: str | None, dataset: str) -> str:
    """``--split``, by default ``test``, or the data's only split when none was asked for: a CSV/JSONL file loads
    as one ``train`` split, and evaluating it should not need a flag."""
    name = asked or "test"
    if name in splits:
        return name
    if asked is None and len(splits) == 1:
        print(f"rlnf eval-reward: evaluating split {splits[0]!r}, the only one of {dataset}", file=sys.stderr)
        return splits[0]
    options = " or ".join(f"--split {split}" for split in splits)
    raise ValueError(f"{dataset} has no split {name!r}; pass {options}")


def _eval_demo_options(args: argparse.Namespace) -> dict:
    """The demo rows of the reward recipe's YAML (default: the shipped one, whose ``test_metrics.json`` reports
    them), for ``args.split`` only; ``--demo_policies`` overrides its policies."""
    from importlib.resources import files

    import yaml

    from .data.scorer_data import demo_options

    path = args.demo_config or str(files("rlnf.recipes") / "reward_model_demo.yaml")
    try:
        options = demo_options(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    except OSError as error:
        raise FileNotFoundError(f"--demo_config {path}: {error.strerror or error}") from error
    if args.demo_policies is not None:
        options["policies"] = [p for p in args.demo_policies if p.strip().lower() not in ("none", "null", "")]
    if options.get("holdout_policy") not in options.get("policies", ()):
        options.pop("holdout_policy", None)  # only training rows leave it out: no effect on a held-out split
    print(f"rlnf eval-reward: demo rows of {path} (policy samples: {options.get('policies') or 'none'})",
          file=sys.stderr)  # fmt: skip
    return {**options, "splits": [args.split or "test"]}


def _add_eval_reward(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval-reward",
        help="evaluate a reward model on (audio, text, score) data",
        description="`rlnf eval-reward`: how well a reward model's scores track human/synthetic scores, and whether "
        "it notices a transcript that belongs to another clip.",
    )
    parser.add_argument("--model", required=True, help="reward model folder (model + processor) or hub id")
    parser.add_argument(
        "--dataset",
        required=True,
        help="'demo' (synthetic scorer data from the demo corpus), a hub id, a local folder "
        "(audiofolder layout) or a .jsonl/.csv file",
    )
    parser.add_argument("--dataset_config", default=None, help="hub dataset configuration (e.g. partially-reviewed)")
    parser.add_argument(
        "--split", default=None, help="split to evaluate (default: test, or the data's only split, e.g. a CSV's)"
    )
    parser.add_argument("--output_dir", default="reward-eval", help="where the JSON and PNG go")
    parser.add_argument("--score_scale", type=float, default=100.0, help="100: scores are 0-100; 1: scores are 0-1")
    parser.add_argument("--audio_column", default="audio")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--score_column", default="score")
    parser.add_argument("--clip_column", default=None, help="clip identity (default: clip_id if present, else audio)")
    parser.add_argument("--reference_column", default="reference")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_samples", type=int, default=None, help="evaluate the first N rows only")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the shuffled pairs (the recipe's test report uses 0)"
    )
    parser.add_argument("--no_plot", action="store_true")
    parser.add_argument(
        "--demo_config",
        default=None,
        help="--dataset demo: the reward recipe YAML whose demo_* options build the rows (default: the shipped "
        "recipes/reward_model_demo.yaml, so --split test/target_test are the rows of its test_metrics.json)",
    )
    parser.add_argument(
        "--demo_policies", nargs="*", default=None,
        help="--dataset demo: the policies whose samples join the synthetic rows (default: the YAML's; 'none': "
        "synthetic rows only)",
    )  # fmt: skip
    # Also an error message and exit code 2: a missing plotting library.
    parser.set_defaults(func=_eval_reward, errors=(ImportError,))


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
    _add_eval_reward(commands)
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
    except (ValueError, FileNotFoundError, OSError, *getattr(args, "errors", ())) as error:
        print(f"rlnf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
