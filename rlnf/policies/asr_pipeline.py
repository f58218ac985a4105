"""Make a Whisper policy work in ``pipeline("automatic-speech-recognition")`` with the prefix it was trained on.

Two things stop it. (1) The pipeline (``tokenizer._decode_asr``) reads every id above ``<|notimestamps|>`` as a
timestamp. OpenAI's vocabularies end with the special tokens, but a policy built from scratch with the
special tokens first (``rlnf.policies.tiny_whisper``) has all its ordinary tokens above ``<|notimestamps|>``,
and the pipeline returns ``''``: `move_special_tokens_last` re-numbers the vocabulary (embedding rows, tied
output rows, tokenizer, config and generation-config ids), which changes no probability. (2) Whisper's
``generate`` builds its own prefix from the generation config: without ``task`` it drops ``<|transcribe|>``,
and with a ``lang_to_id`` but no ``language`` it detects a language and inserts its token; rlnf trains with
``decoder_prefix_ids(language, task)``: `set_generation_prefix` writes that prefix into the config.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

NO_TIMESTAMPS = "<|notimestamps|>"


def pipeline_ready(tokenizer: Any) -> bool:
    """True when no ordinary token has an id above ``<|notimestamps|>`` (or there is no such token)."""
    no_ts = tokenizer.convert_tokens_to_ids(NO_TIMESTAMPS)
    if no_ts is None or no_ts == tokenizer.unk_token_id:
        return True
    special = set(tokenizer.all_special_ids)
    return all(i in special or _is_timestamp(tokenizer, i) for i in range(no_ts + 1, len(tokenizer)))


def _is_timestamp(tokenizer: Any, token_id: int) -> bool:
    token = tokenizer.convert_ids_to_tokens(token_id)
    return isinstance(token, str) and token.startswith("<|") and token[2:-2].replace(".", "", 1).isdigit()


def special_last_order(tokenizer: Any) -> list[int]:
    """Old ids in their new order: ordinary tokens, then special tokens, ``<|notimestamps|>`` last among them
    (followed only by timestamp tokens, if any)."""
    no_ts = tokenizer.convert_tokens_to_ids(NO_TIMESTAMPS)
    special = set(tokenizer.all_special_ids) | {no_ts}
    ids = range(len(tokenizer))
    stamps = [i for i in ids if _is_timestamp(tokenizer, i)]
    ordinary = [i for i in ids if i not in special and i not in stamps]
    specials = [i for i in ids if i in special and i != no_ts]
    return ordinary + specials + [no_ts] + stamps


def _remap_tokenizer(tokenizer: Any, new_id: dict[int, int]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp, "tokenizer.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model"]["vocab"] = {token: new_id[i] for token, i in data["model"]["vocab"].items()}
        for token in data["added_tokens"]:
            token["id"] = new_id[token["id"]]
        for entry in ((data.get("post_processor") or {}).get("special_tokens") or {}).values():
            entry["ids"] = [new_id[i] for i in entry["ids"]]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return type(tokenizer).from_pretrained(tmp)


def _remap_ids(config: Any, new_id: dict[int, int]) -> None:
    def one(value: Any) -> Any:
        return new_id.get(value, value) if isinstance(value, int) else value

    for name in (
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "decoder_start_token_id",
        "no_timestamps_token_id",
        "prev_sot_token_id",
    ):
        if getattr(config, name, None) is not None:
            value = getattr(config, name)
            setattr(config, name, [one(v) for v in value] if isinstance(value, list) else one(value))
    for name in ("suppress_tokens", "begin_suppress_tokens"):
        if getattr(config, name, None):
            setattr(config, name, [one(v) for v in getattr(config, name)])
    for name in ("lang_to_id", "task_to_id"):
        if getattr(config, name, None):
            setattr(config, name, {k: one(v) for k, v in getattr(config, name).items()})
    if getattr(config, "forced_decoder_ids", None):
        config.forced_decoder_ids = [[pos, one(i)] for pos, i in config.forced_decoder_ids]


def move_special_tokens_last(model: Any, processor: Any) -> tuple[Any, Any]:
    """Re-number ``model`` (in place) and ``processor``'s tokenizer so the ASR pipeline decodes them; returns
    ``(model, processor)`` unchanged when the vocabulary is already in Whisper's order."""
    tokenizer = processor.tokenizer
    if pipeline_ready(tokenizer):
        return model, processor
    order = special_last_order(tokenizer)
    new_id = {old: new for new, old in enumerate(order)}
    rows = model.get_input_embeddings().weight.shape[0]
    index = torch.tensor(order + list(range(len(order), rows)))  # rows beyond the tokenizer stay in place
    with torch.no_grad():
        embeddings = model.get_input_embeddings()
        embeddings.weight.copy_(embeddings.weight[index].clone())
        output = model.get_output_embeddings()
        if output is not None and output.weight.data_ptr() != embeddings.weight.data_ptr():
            output.weight.copy_(output.weight[index].clone())
    _remap_ids(model.config, new_id)
    if getattr(model, "generation_config", None) is not None:
        _remap_ids(model.generation_config, new_id)
    processor.tokenizer = _remap_tokenizer(tokenizer, new_id)
    return model, processor


def set_generation_prefix(generation_config: Any, language: str | None = None, task: str | None = "transcribe") -> Any:
    """Make Whisper's ``generate`` (and so the pipeline) start with rlnf's prefix: ``<|startoftranscript|>``,
    the language token if ``language``, the task token if ``task``, ``<|notimestamps|>``."""
    generation_config.task = task
    if language:
        generation_config.language = language
    else:  # no language token: never let generate detect one
        generation_config.language = None
        if hasattr(generation_config, "lang_to_id"):
            del generation_config.lang_to_id
    return generation_config


def prepare_for_asr_pipeline(
    model: Any, processor: Any, *, language: str | None = None, task: str | None = "transcribe"
) -> tuple[Any, Any]:
    """`move_special_tokens_last` then `set_generation_prefix`: save the result and the ASR pipeline decodes it
    as rlnf does (greedy with ``generate_kwargs={"num_beams": 1}``; the pipeline's default is beam search)."""
    model, processor = move_special_tokens_last(model, processor)
    set_generation_prefix(model.generation_config, language, task)
    return model, processor


def convert_folder(folder: str | Path, *, language: str | None = None, task: str | None = "transcribe") -> bool:
    """Rewrite the saved Whisper policy in ``folder`` for the ASR pipeline: vocabulary in Whisper's order, rlnf's
    decoder prefix and no sampling settings (a GRPO run leaves its sampling temperature in the model's generation
    config) in ``generation_config.json``. Returns whether the vocabulary had to be renumbered."""
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, GenerationConfig

    processor = AutoProcessor.from_pretrained(folder)
    renumber = not pipeline_ready(processor.tokenizer)
    if renumber:
        model = AutoModelForSpeechSeq2Seq.from_pretrained(folder)
        model, processor = move_special_tokens_last(model, processor)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    generation = GenerationConfig.from_pretrained(folder)
    generation.do_sample, generation.temperature, generation.top_p, generation.top_k = False, None, None, None
    set_generation_prefix(generation, language, task).save_pretrained(folder)
    return renumber


if __name__ == "__main__":  # python -m rlnf.policies.asr_pipeline FOLDER [FOLDER ...]
    import sys

    for path in sys.argv[1:]:
        print(f"{path}: {'renumbered' if convert_folder(path) else 'vocabulary already in order'}, prefix set")


__all__ = [
    "convert_folder",
    "move_special_tokens_last",
    "pipeline_ready",
    "prepare_for_asr_pipeline",
    "set_generation_prefix",
    "special_last_order",
]
