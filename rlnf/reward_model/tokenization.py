"""The reward model's SentencePiece tokenizer, in the original's T5-style id convention, and its trainer.

The published model was trained on ids from transformers 4.x's slow ``T5Tokenizer``: ``sentencepiece``'s own
segmentation, then ``</s>``; ids ``n .. n+99`` are ``<extra_id_*>`` and ``</s>``, ``<pad>`` come after them
(``n`` = number of pieces) unless the model has them as pieces. transformers 5 converts ``spiece.model`` to a
different segmentation, so this tokenizer runs ``sentencepiece`` itself.
"""

from __future__ import annotations

import re
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
            vocab_file=vocab_file,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            extra_ids=extra_ids,
            legacy=True,
            **kwargs,
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

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
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
