"""Supervised fine-tuning of a speech-to-text policy: the warm start GRPO needs.

A random policy learns nothing from RL in minutes: it never samples a transcript good enough to reward. Users
need this step anyway before RL. With no arguments it reads recipes/sft_asr_demo.yaml: it builds a tiny
Whisper-shaped policy (tokenizer trained on the training sentences) and fine-tunes it on the Bambara demo
corpus, on CPU. CTC models (any ``AutoModelForCTC`` checkpoint, or ``--tiny_architecture parakeet_ctc``) train
with the model's own CTC loss instead. Flags override that YAML field by field; `--config` chooses another base:

    python recipes/sft_asr.py                                             # -> outputs/demo-whisper-sft
    python recipes/sft_asr.py --config recipes/sft_asr_ctc_demo.yaml      # -> outputs/demo-ctc-sft (CTC)
    python recipes/sft_asr.py --max_steps 50 --output_dir outputs/sft-try
    accelerate launch -q recipes/sft_asr.py --config my_sft.yaml --model_name_or_path openai/whisper-small \
        --dataset_name my_data.csv --dataset_test_split none --eval_split_size 200

Writes the policy (usable in `pipeline("automatic-speech-recognition")` and `rlnf transcribe`), an ASR model
card (README.md) and `sft_results.json` (greedy WER/CER on the held-out split before and after).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import (  # noqa: E402
    AutoProcessor,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)
from trl import TrlParser  # noqa: E402

from rlnf.assets import resolve_model_path  # noqa: E402
from rlnf.launch import check_world_size  # noqa: E402
from rlnf.model_cards import asr_model_card, save_card  # noqa: E402
from rlnf.policies.asr_pipeline import prepare_for_asr_pipeline  # noqa: E402
from rlnf.policies.base import (  # noqa: E402
    PolicyOptions,
    load_policy_model,  # noqa: E402
    policy_for,
)
from rlnf.policies.tiny_ctc import demo_parakeet_ctc  # noqa: E402
from rlnf.policies.tiny_whisper import build_tiny_whisper  # noqa: E402
from rlnf.policies.transducer import demo_parakeet_tdt  # noqa: E402
from rlnf.recipe_support import (  # noqa: E402
    ASRScriptArguments,
    finish_run,
    given_flags,
    load_train_eval,
    resume_argument,
    with_base_config,
)
from rlnf.trainers.asr_eval import evaluate_asr  # noqa: E402
from rlnf.trainers.console import use_compact_console  # noqa: E402

DEMO_CONFIG = Path(__file__).with_name("sft_asr_demo.yaml")
logger = logging.getLogger("sft_asr")


@dataclass
class SFTScriptArguments(ASRScriptArguments):
    audio_column: str = field(default="audio", metadata={"help": "column holding the audio"})
    reference_column: str = field(default="text", metadata={"help": "column holding the reference transcript"})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "policy to fine-tune (folder, hub id, 'demo' or 'demo-ctc'); None builds the tiny model "
                  "named by --tiny_architecture"},
    )  # fmt: skip
    tiny_architecture: str = field(
        default="whisper",
        metadata={"help": "tiny model built when no model is given: 'whisper' (BPE trained on the training texts) or "
                  "'parakeet_ctc' (the demo CTC policy's shape: rlnf.policies.tiny_ctc.demo_parakeet_ctc) or "
                  "'parakeet_tdt' (the same encoder with a TDT head: rlnf.policies.transducer.demo_parakeet_tdt)",
                  "choices": ["whisper", "parakeet_ctc", "parakeet_tdt"]},
    )  # fmt: skip
    tiny_d_model: int = field(default=128, metadata={"help": "width of the tiny Whisper built when no model is given"})
    tiny_layers: int = field(default=2, metadata={"help": "encoder and decoder layers of the tiny Whisper"})
    tiny_vocab_size: int = field(default=384, metadata={"help": "BPE vocabulary of the tiny Whisper"})
    tiny_window_seconds: float = field(default=5.0, metadata={"help": "audio window of the tiny Whisper (s)"})
    eval_max_new_tokens: int = field(default=128, metadata={"help": "longest greedy transcript in the WER evaluation"})


def warn_tiny_model_on_own_data(script_args: SFTScriptArguments, argv: list[str]) -> None:
    """Without a model, the recipe builds the demo's tiny random model: right for the demo, a silent surprise on
    one's own data (unless --tiny_architecture asks for it)."""
    if script_args.model_name_or_path or script_args.dataset_name == "demo" or "tiny_architecture" in given_flags(argv):
        return
    logger.warning(
        "no --model_name_or_path: training the demo's tiny %s from random weights, not a pretrained model; pass "
        "--model_name_or_path (e.g. openai/whisper-small, a folder or hub id) to fine-tune one",
        script_args.tiny_architecture,
    )


def build_policy(script_args: SFTScriptArguments, train_texts: list[str], seed: int):
    if script_args.model_name_or_path:
        path = resolve_model_path(script_args.model_name_or_path)
        return load_policy_model(path), AutoProcessor.from_pretrained(path)
    if script_args.tiny_architecture == "parakeet_ctc":
        return demo_parakeet_ctc(seed=seed)
    if script_args.tiny_architecture == "parakeet_tdt":
        return demo_parakeet_tdt(seed=seed)
    model, processor = build_tiny_whisper(
        train_texts, d_model=script_args.tiny_d_model, layers=script_args.tiny_layers,
        vocab_size=script_args.tiny_vocab_size, max_source_positions=int(script_args.tiny_window_seconds * 50),
    )  # fmt: skip
    return prepare_for_asr_pipeline(model, processor)  # special tokens last, before any training


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = TrlParser((SFTScriptArguments, Seq2SeqTrainingArguments))
    script_args, training_args = parser.parse_args_and_config(args=with_base_config(argv, DEMO_CONFIG))
    check_world_size(training_args.world_size)
    if training_args.process_index == 0:
        warn_tiny_model_on_own_data(script_args, argv)
    set_seed(training_args.seed)
    audio, text = script_args.audio_column, script_args.reference_column
    train, held_out, held_out_name = load_train_eval(
        script_args, audio_column=audio, text_column=text, seed=training_args.seed
    )
    model, processor = build_policy(script_args, list(train[text]), training_args.seed)
    # the family's collator: the model's own loss (Whisper: cross-entropy; CTC: CTC over labels padded with -100)
    collator = policy_for(model, processor, PolicyOptions(max_completion_length=None)).sft_collator(audio, text)
    columns = {"audio_column": audio, "reference_column": text, "max_new_tokens": script_args.eval_max_new_tokens,
               "progress": not training_args.disable_tqdm}  # fmt: skip
    before = evaluate_asr(model, processor, held_out, **columns)
    training_args.remove_unused_columns = False
    trainer = Seq2SeqTrainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=held_out, data_collator=collator,
        processing_class=processor.feature_extractor,
    )  # fmt: skip
    use_compact_console(trainer)  # one short line per log, as in the RL recipes
    trainer.train(resume_from_checkpoint=resume_argument(training_args.resume_from_checkpoint))
    after = evaluate_asr(model, processor, held_out, **columns)
    results = {
        "before": {k: before[k] for k in ("wer", "cer")},
        "after": {k: after[k] for k in ("wer", "cer")},
        "examples": [{"reference": r, "hypothesis": h} for r, h in zip(held_out[text][:5], after["hypotheses"])],
        "train_samples": len(train),
        "eval_samples": len(held_out),
        "global_steps": trainer.state.global_step,
    }
    if trainer.is_world_process_zero():
        output = Path(training_args.output_dir)
        trainer.save_model(output)
        processor.save_pretrained(output)
        card = asr_model_card(
            method="SFT", base_model=script_args.model_name_or_path, dataset=script_args.dataset_name,
            train_split=script_args.dataset_train_split, eval_split=held_out_name,
            before=before, after=after, steps=trainer.state.global_step, model_type=model.config.model_type,
        )  # fmt: skip
        save_card(card, output)
    finish_run(trainer, training_args.output_dir, results, "sft_results.json")
    return results


if __name__ == "__main__":
    from rlnf.errors import run_main

    run_main(main)  # rlnf's errors: one `error: ...` line, exit code 2; bugs keep their traceback
