"""Supervised fine-tuning of a speech-to-text policy: the warm start GRPO needs.

A random policy learns nothing from RL in minutes: it never samples a transcript good enough to reward. Users
need this step anyway before RL. With no arguments it builds a tiny Whisper-shaped policy (tokenizer trained
on the demo corpus' training sentences) and fine-tunes it on the Bambara demo corpus, on CPU:

    python recipes/sft_asr.py                                   # -> outputs/demo-whisper-sft
    python recipes/sft_asr.py --config recipes/sft_asr_demo.yaml         # the shipped demo policy (rlnf/assets/...)
    accelerate launch recipes/sft_asr.py --model_name_or_path openai/whisper-small --dataset_name ...
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import (  # noqa: E402
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)
from trl import TrlParser  # noqa: E402

from rlnf.data.collators import SpeechSeq2SeqCollator  # noqa: E402
from rlnf.data.loading import load_asr_dataset  # noqa: E402
from rlnf.policies.tiny_whisper import build_tiny_whisper  # noqa: E402
from rlnf.policies.whisper import feature_frames  # noqa: E402
from rlnf.trainers.asr_eval import evaluate_asr  # noqa: E402


@dataclass
class SFTScriptArguments:
    dataset_name: str = field(default="demo", metadata={"help": "'demo' (Bambara demo corpus), a hub id or a local folder/file"})
    dataset_config: str | None = field(default=None, metadata={"help": "hub dataset configuration"})
    audio_column: str = field(default="audio", metadata={"help": "column holding the audio"})
    text_column: str = field(default="text", metadata={"help": "column holding the reference transcript"})
    train_split: str = field(default="train", metadata={"help": "training split"})
    eval_split: str = field(default="validation", metadata={"help": "split for WER/CER before and after"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "policy to fine-tune; None builds a tiny Whisper from the training texts"}
    )
    tiny_d_model: int = field(default=128, metadata={"help": "width of the tiny Whisper built when no model is given"})
    tiny_layers: int = field(default=2, metadata={"help": "encoder and decoder layers of the tiny Whisper"})
    tiny_vocab_size: int = field(default=384, metadata={"help": "BPE vocabulary of the tiny Whisper"})
    eval_max_new_tokens: int = field(default=128, metadata={"help": "longest greedy transcript in the WER evaluation"})
    tiny_window_seconds: float = field(default=5.0, metadata={"help": "audio window of the tiny Whisper (s)"})


def build_policy(script_args: SFTScriptArguments, train_texts: list[str]):
    if script_args.model_name_or_path:
        model = AutoModelForSpeechSeq2Seq.from_pretrained(script_args.model_name_or_path)
        return model, AutoProcessor.from_pretrained(script_args.model_name_or_path)
    return build_tiny_whisper(
        train_texts, d_model=script_args.tiny_d_model, layers=script_args.tiny_layers,
        vocab_size=script_args.tiny_vocab_size, max_source_positions=int(script_args.tiny_window_seconds * 50),
    )


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if "--output_dir" not in argv and "--config" not in argv:
        argv = [*argv, "--output_dir", "outputs/demo-whisper-sft"]
    parser = TrlParser((SFTScriptArguments, Seq2SeqTrainingArguments))
    script_args, training_args = parser.parse_args_and_config(args=argv)
    set_seed(training_args.seed)
    data = load_asr_dataset(
        script_args.dataset_name, script_args.dataset_config,
        audio_column=script_args.audio_column, text_column=script_args.text_column,
    )
    train, held_out = data[script_args.train_split], data[script_args.eval_split]
    model, processor = build_policy(script_args, list(train[script_args.text_column]))
    frames = feature_frames(model.config, processor.feature_extractor, "model")
    collator = SpeechSeq2SeqCollator(
        processor, frames=frames, audio_column=script_args.audio_column, text_column=script_args.text_column
    )
    columns = {
        "audio_column": script_args.audio_column, "reference_column": script_args.text_column,
        "max_new_tokens": script_args.eval_max_new_tokens,
    }
    before = evaluate_asr(model, processor, held_out, **columns)
    training_args.remove_unused_columns = False
    trainer = Seq2SeqTrainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=held_out, data_collator=collator,
        processing_class=processor.feature_extractor,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    after = evaluate_asr(model, processor, held_out, **columns)
    results = {
        "before": {k: before[k] for k in ("wer", "cer")}, "after": {k: after[k] for k in ("wer", "cer")},
        "examples": [{"reference": r, "hypothesis": h} for r, h in zip(held_out[script_args.text_column][:5], after["hypotheses"])],
        "train_samples": len(train), "eval_samples": len(held_out),
    }
    if trainer.is_world_process_zero():
        trainer.save_model(training_args.output_dir)
        processor.save_pretrained(training_args.output_dir)
        Path(training_args.output_dir, "sft_results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return results


if __name__ == "__main__":
    main()
