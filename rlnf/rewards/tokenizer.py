"""The reward model's SentencePiece tokenizer, in the original's T5-style id convention, and its trainer.

The published model was trained on ids from transformers 4.x's slow ``T5Tokenizer``: ``sentencepiece``'s own
segmentation, then ``</s>``; ids ``n .. n+99`` are ``<extra_id_*>`` and ``</s>``, ``<pad>`` come after them
(``n`` = number of pieces) unless the model has them as pieces. transformers 5 converts ``spiece.model`` to a
different segmentation, so this tokenizer runs ``sentencepiece`` itself.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

_EXTRA_ID = re.compile(r"<extra_id_(\d+)>")


class RewardTokenizer(SentencePieceBackend):
    """SentencePiece ids + ``</s>``, exactly as the original ``T5Tokenizer`` produced them."""

    vocab_files_names = {"vocab_file": "spiece.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        extra_ids: int = 100,
        **kwargs: Any,
    ) -> None:
        self._extra_ids = extra_ids
        kwargs.pop("additional_special_tokens", None)
        kwargs.pop("extra_special_tokens", None)
        kwargs.pop("legacy", None)
        super().__init__(
            vocab_file=vocab_file, eos_token=eos_token, unk_token=unk_token, pad_token=pad_token,
            extra_ids=extra_ids, legacy=True, **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size() + self._extra_ids

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        match = _EXTRA_ID.fullmatch(token)
        if match and int(match.group(1)) < self._extra_ids:
            return self.vocab_size - 1 - int(match.group(1))
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        pieces = self.sp_model.get_piece_size()
        if index < pieces:
            return self.sp_model.id_to_piece(index)
        return f"<extra_id_{self.vocab_size - 1 - index}>"

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        ids = token_ids_0 + [self.eos_token_id]
        return ids if token_ids_1 is None else ids + token_ids_1 + [self.eos_token_id]

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            return [int(i in self.all_special_ids) for i in token_ids_0]
        mask = [0] * len(token_ids_0) + [1]
        return mask if token_ids_1 is None else mask + [0] * len(token_ids_1) + [1]

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        """Ids of each text: the pieces ``sentencepiece`` gives, then ``</s>`` (the fast path of the processor)."""
        return [ids + [self.eos_token_id] for ids in self.sp_model.encode(texts)]


def train_tokenizer(
    texts: str | os.PathLike | Iterable[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 2048,
    *,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
) -> Any:
    """Train a SentencePiece model on ``texts`` (a text file or strings) and save a processor to ``output_dir``.

    ``vocab_size`` counts pieces; the model's embedding needs ``len(processor.tokenizer)`` rows (pieces + 100
    extra ids + ``</s>`` + ``<pad>``). SentencePiece may return fewer pieces than asked on little text
    (``hard_vocab_limit=False``), so read the size from the tokenizer, never assume it.
    """
    import sentencepiece as spm

    from .processing import RewardFeatureExtractor, RewardModelProcessor

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(texts, (str, os.PathLike)) and Path(texts).is_file():
            corpus = Path(texts)
        else:
            if isinstance(texts, str):
                raise FileNotFoundError(f"train_tokenizer: {texts!r} is not a file (pass a list to train on strings)")
            lines = [line.strip() for line in texts if isinstance(line, str) and line.strip()]
            if not lines:
                raise ValueError("train_tokenizer: no non-empty text to train on")
            corpus = Path(tmp) / "corpus.txt"
            corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        prefix = Path(tmp) / "spiece"
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, hard_vocab_limit=False, bos_id=-1, eos_id=-1,
            unk_id=0, pad_id=-1, minloglevel=2,
        )
        tokenizer = RewardTokenizer(vocab_file=str(prefix) + ".model")
        processor = RewardModelProcessor(RewardFeatureExtractor(), tokenizer)
        processor.save_pretrained(output_dir)
    return RewardModelProcessor.from_pretrained(output_dir)
