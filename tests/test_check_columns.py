"""rlnf.data.loading.check_columns: the one column check (datasets, row dicts, name lists), exact messages."""

from __future__ import annotations

import re

import datasets
import pytest

from rlnf.data.loading import check_columns, column_names
from rlnf.trainers.asr_eval import evaluate_asr


@pytest.fixture
def table():
    return datasets.Dataset.from_dict({"audio": ["a.wav"], "text": ["i ni ce"], "__row": [0]})


def test_present_columns_pass_in_every_form(table):
    for form in (
        table,
        table.to_iterable_dataset(),
        {"audio": 1, "text": 2},
        [{"audio": 1, "text": 2}],
        ["audio", "text"],
    ):
        check_columns(form, ["audio", "text"])
        check_columns(form, {"audio": "audio_column", None: "reference_column"})  # None: switched off


def test_one_missing_column_message_is_exact(table):
    with pytest.raises(ValueError) as error:
        check_columns(
            table, {"wav": "audio_column", "text": "reference_column"}, where="train_dataset", hidden={"__row"}
        )
    assert str(error.value) == "train_dataset has no column 'wav' (audio_column); its columns are ['audio', 'text']"


def test_several_missing_columns_and_hint(table):
    with pytest.raises(ValueError) as error:
        check_columns(table, ["wav", "ref"], where="eval_dataset", hint="Set reference_column=None")
    assert str(error.value) == (
        "eval_dataset has no columns 'wav', 'ref'; its columns are ['__row', 'audio', 'text']. Set reference_column=None"
    )


def test_row_lists_use_the_columns_every_row_has():
    rows = [{"audio": 1, "text": "a"}, {"audio": 2}]
    assert column_names(rows) == ["audio"]
    with pytest.raises(ValueError, match=re.escape("rows has no column 'text'; its columns are ['audio']")):
        check_columns(rows, ["text"], where="rows")


def test_unknown_columns_are_left_to_the_first_batch():
    def rows():
        yield {"audio": 1}

    stream = datasets.IterableDataset.from_generator(rows)
    assert column_names(stream) is None
    check_columns(stream, ["text"])  # no features: nothing to check here (documented)


def test_not_a_dataset_is_a_type_error():
    with pytest.raises(TypeError, match="expected a dataset, a row dict or column names, got int"):
        check_columns(3, ["audio"])


def test_evaluate_asr_uses_the_shared_check():
    with pytest.raises(ValueError) as error:
        evaluate_asr(None, None, [{"audio": "a.wav", "sentence": "x"}], reference_column="text")
    assert str(error.value) == (
        "evaluation dataset has no column 'text' (reference_column); its columns are ['audio', 'sentence']"
    )
