"""rlnf.audio.load_audio: every input form gives the same samples; bad input names the item."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from rlnf.audio import audio_key, load_audio, resample
from rlnf.testing import sine_clip


@pytest.fixture
def clip():
    return sine_clip(1.0, seed=1)


@pytest.fixture
def wav_path(tmp_path, clip):
    path = tmp_path / "clip.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    return path


def test_every_form_gives_the_same_samples(clip, wav_path):
    forms = [
        str(wav_path),
        wav_path,
        wav_path.read_bytes(),
        clip,
        torch.from_numpy(clip),
        {"array": clip, "sampling_rate": 16000},
        {"path": str(wav_path), "bytes": None},
        {"path": None, "bytes": wav_path.read_bytes()},
    ]
    for form in forms:
        np.testing.assert_allclose(load_audio(form), clip, atol=1e-7)


def test_torchcodec_decoder_form(clip, wav_path):
    try:
        from torchcodec.decoders import AudioDecoder

        decoder = AudioDecoder(str(wav_path))
    except Exception as error:  # torchcodec or FFmpeg missing on this machine
        pytest.skip(f"torchcodec cannot decode here: {error}")
    np.testing.assert_allclose(load_audio(decoder), clip, atol=1e-6)


def test_int16_pcm_is_scaled(clip):
    pcm = (clip * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm), clip, atol=1e-4)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_stereo_is_downmixed(clip, layout):
    other = sine_clip(1.0, freq=440.0, seed=2)
    stereo = np.stack([clip, other]) if layout == "channels_first" else np.stack([clip, other], axis=1)
    np.testing.assert_allclose(load_audio(stereo), (clip + other) / 2, atol=1e-6)


def test_stereo_file_is_downmixed(tmp_path, clip):
    other = sine_clip(1.0, freq=440.0, seed=2)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([clip, other], axis=1), 16000)
    np.testing.assert_allclose(load_audio(path), (clip + other) / 2, atol=1e-3)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_to_16k_with_a_polyphase_filter(rate):
    seconds, freq = 1.0, 440.0
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    out = load_audio({"array": tone, "sampling_rate": rate})
    assert out.dtype == np.float32 and abs(len(out) - 16000) <= 1
    # The tone survives: compare with the ideal 16 kHz tone away from the edges.
    ideal = 0.5 * np.sin(2 * np.pi * freq * np.arange(len(out)) / 16000)
    assert np.abs(out[400:-400] - ideal[400:-400]).max() < 0.02
    # And the same filter as an independent call of scipy.
    from fractions import Fraction

    f = Fraction(16000, rate)
    np.testing.assert_allclose(out, resample_poly(tone, f.numerator, f.denominator), atol=1e-6)


def test_resample_removes_content_above_the_new_nyquist():
    rate = 48000
    t = np.arange(rate) / rate
    high = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # above 8 kHz: must not alias into the band
    assert np.abs(resample(high, rate)[200:-200]).max() < 0.05


def test_bytes_file_with_its_own_rate(clip):
    buffer = io.BytesIO()
    sf.write(buffer, resample_poly(clip, 2, 1), 32000, format="WAV", subtype="FLOAT")
    out = load_audio(buffer.getvalue())
    assert abs(len(out) - len(clip)) <= 1


@pytest.mark.parametrize(
    "item, message",
    [
        (np.zeros(0, dtype=np.float32), "has 0 samples"),
        (np.array([0.0, np.nan] * 100, dtype=np.float32), "contains NaN or infinite samples"),
        (np.array([0.0, np.inf] * 100, dtype=np.float32), "contains NaN or infinite samples"),
        (
            np.zeros((2, 2, 100), dtype=np.float32),
            "expected 1-D (mono) or 2-D (multi-channel) samples, got shape (2, 2, 100)",
        ),
        (np.array(["a", "b"]), "samples must be real numbers, got dtype <U1"),
        (np.array([1 + 1j, 2j]), "samples must be real numbers, got dtype complex128"),
        ({"foo": 1}, "dict needs 'array', 'bytes' or 'path', got keys ['foo']"),
    ],
)
def test_bad_input_names_the_item(item, message):
    with pytest.raises(ValueError) as error:
        load_audio(item, index=7)
    assert str(error.value) == f"audio item 7: {message}"


def test_unsupported_type_names_the_item():
    with pytest.raises(ValueError, match=r"^audio item 7: unsupported type int; expected a path, bytes, an array"):
        load_audio(12345, index=7)
    with pytest.raises(ValueError, match=r"^audio item 7: unsupported type int for a clip identity$"):
        audio_key(12345, index=7)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="audio item 3.*not found"):
        load_audio(tmp_path / "nope.wav", index=3)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(ValueError, match="audio item 4: cannot decode"):
        load_audio(corrupt, index=4)


def test_audio_key_identifies_duplicates(clip, wav_path):
    assert audio_key(clip) == audio_key(clip.copy())
    assert audio_key(clip) != audio_key(clip * 0.5)
    assert audio_key(str(wav_path)) == audio_key({"path": str(wav_path), "bytes": None})
    assert audio_key({"array": clip, "sampling_rate": 16000}) == audio_key(
        {"array": clip.copy(), "sampling_rate": 16000}
    )
    assert audio_key({"array": clip, "sampling_rate": 16000}) != audio_key({"array": clip, "sampling_rate": 8000})


# ---- PCM, dtypes, amplitudes ------------------------------------------------------------------------------


def test_unsigned_8bit_pcm_is_offset_binary():
    # 8-bit WAV stores 128 as silence: 0 -> -1, 64 -> -0.5, 128 -> 0, 192 -> 0.5, 255 -> 127/128.
    pcm = np.array([0, 64, 128, 192, 255] * 40, dtype=np.uint8)
    expected = np.array([-1.0, -0.5, 0.0, 0.5, 127 / 128] * 40, dtype=np.float32)
    np.testing.assert_array_equal(load_audio(pcm), expected)


def test_unsigned_8bit_wav_file_matches_soundfile(tmp_path, clip):
    path = tmp_path / "u8.wav"
    sf.write(path, clip, 16000, subtype="PCM_U8")
    raw = np.frombuffer(path.read_bytes()[-len(clip) :], dtype=np.uint8)  # the data chunk is the file's tail
    np.testing.assert_allclose(load_audio(raw), sf.read(path, dtype="float32")[0], atol=1e-7)
    np.testing.assert_allclose(load_audio(raw), clip, atol=1 / 128)


def test_signed_pcm_full_scale():
    pcm = np.array([-32768, -16384, 0, 16384, 32767] * 40, dtype=np.int16)
    np.testing.assert_array_equal(load_audio(pcm)[:5], np.array([-1.0, -0.5, 0.0, 0.5, 32767 / 32768], np.float32))


def test_bfloat16_tensors_are_converted(clip):
    tensor = torch.from_numpy(clip).to(torch.bfloat16)
    np.testing.assert_array_equal(load_audio(tensor), tensor.float().numpy())
    assert audio_key(tensor) == audio_key(tensor.clone()) != audio_key(tensor.float())


@pytest.mark.parametrize("gain, dtype", [(1e20, np.float32), (1e300, np.float64)])
def test_extreme_amplitudes_are_scaled_not_overflowed(clip, gain, dtype):
    loud = clip.astype(dtype) * gain
    out = load_audio(loud)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, clip / np.abs(clip).max(), rtol=1e-5, atol=1e-7)


def test_ordinary_loud_audio_is_left_alone(clip):
    np.testing.assert_array_equal(load_audio(clip * 100), (clip * 100).astype(np.float32))


# ---- sampling rates ---------------------------------------------------------------------------------------


def test_dict_without_a_rate_takes_the_callers():
    tone = sine_clip(1.0, sampling_rate=8000)
    out = load_audio({"array": tone, "sampling_rate": None}, 8000)
    np.testing.assert_array_equal(out, load_audio({"array": tone, "sampling_rate": 8000}))
    assert len(out) == 16000
    assert len(load_audio({"array": tone, "sampling_rate": None})) == 8000  # no rate anywhere: 16 kHz
    assert len(load_audio({"array": tone, "sampling_rate": 8000}, 16000)) == 16000  # the dict's own rate wins
    assert audio_key({"array": tone, "sampling_rate": None}, 8000) == audio_key({"array": tone, "sampling_rate": 8000})


@pytest.mark.parametrize(
    "rate, problem",
    [
        (7, "sampling rate 7 Hz is outside [1000, 768000]"),
        (0, "sampling rate 0 Hz is outside [1000, 768000]"),
        (-16000, "sampling rate -16000 Hz is outside [1000, 768000]"),
        ("16k", "sampling rate must be a whole number of Hz, got '16k'"),
        (float("nan"), "sampling rate must be a whole number of Hz, got nan"),
        (16000.5, "sampling rate must be a whole number of Hz, got 16000.5"),
        (True, "sampling rate must be a whole number of Hz, got True"),
    ],
)
def test_absurd_or_non_integer_rates_name_the_item(clip, rate, problem):
    with pytest.raises(ValueError) as error:
        load_audio({"array": clip, "sampling_rate": rate}, index=2)
    assert str(error.value) == f"audio item 2: {problem}"
    with pytest.raises(ValueError) as error:
        load_audio(clip, rate, index=2)
    assert str(error.value) == f"audio item 2 (sampling_rate argument): {problem}"
    with pytest.raises(ValueError, match="audio item 2: sampling rate"):
        audio_key({"array": clip, "sampling_rate": rate}, index=2)


def test_integral_float_rates_are_accepted(clip):
    np.testing.assert_array_equal(load_audio(clip, 16000.0), clip)
    np.testing.assert_array_equal(load_audio({"array": clip, "sampling_rate": np.int64(16000)}), clip)


# ---- truncated files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "bytes"])
def test_file_shorter_than_its_header_is_an_error(tmp_path, clip, form):
    path = tmp_path / "cut.wav"
    sf.write(path, clip, 16000, subtype="PCM_16")  # 44-byte header + 32000 bytes of samples
    path.write_bytes(path.read_bytes()[:16022])
    item = str(path) if form == "path" else path.read_bytes()
    name = repr(str(path)) if form == "path" else "'<bytes>'"
    with pytest.raises(ValueError) as error:
        load_audio(item, index=5)
    assert str(error.value) == (
        f"audio item 5: {name} is truncated: its header promises 32000 bytes of audio (data chunk) but the file "
        "holds 15978"
    )


# ---- clip identity ---------------------------------------------------------------------------------------


def test_audio_key_identifies_a_file_by_what_it_is(tmp_path, clip, wav_path):
    alias = tmp_path / "alias.wav"
    alias.symlink_to(wav_path)
    assert audio_key(str(alias)) == audio_key(wav_path) == audio_key({"path": str(wav_path), "bytes": None})
    before = audio_key(wav_path)
    sf.write(wav_path, clip * 0.5, 16000, subtype="PCM_16")  # same name, new content
    assert audio_key(wav_path) != before
    data = wav_path.read_bytes()
    # File bytes win over a (bare, reused) stored path; equal bytes under two names are one clip.
    assert audio_key({"path": "a.wav", "bytes": data}) == audio_key({"path": "b.wav", "bytes": data}) == audio_key(data)
    assert audio_key({"path": "a.wav", "bytes": data}) != audio_key({"path": "a.wav", "bytes": data[:-2]})


def test_audio_key_samples_rule(clip):
    assert audio_key(clip) == audio_key(torch.from_numpy(clip.copy())) == audio_key(list(clip))
    assert audio_key(clip) == audio_key({"array": clip, "sampling_rate": 16000}) == audio_key(clip[None])
    assert audio_key(clip) != audio_key(clip, 8000) == audio_key({"array": clip, "sampling_rate": 8000})
    assert audio_key(clip) != audio_key(clip.astype(np.float64))  # other dtype: keyed apart (never merged wrongly)


def test_audio_key_can_read_files_to_find_one_recording_under_two_names(tmp_path, wav_path):
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(wav_path.read_bytes())
    assert audio_key(copy) != audio_key(wav_path)  # by default: two files
    assert audio_key(copy, read_files=True) == audio_key(wav_path, read_files=True) == audio_key(wav_path.read_bytes())
    assert audio_key({"path": str(copy)}, read_files=True) == audio_key(str(wav_path), read_files=True)


def test_group_by_clip_keys_each_object_once_in_first_seen_order(clip):
    from rlnf.audio import group_by_clip

    a, b = {"array": clip, "sampling_rate": 16000}, {"array": clip * 0.5, "sampling_rate": 16000}
    copy_of_a = {"array": clip.copy(), "sampling_rate": 16000}  # another object, same samples: same clip
    calls = []

    def key(item, position):
        calls.append(position)
        return audio_key(item)

    firsts, clip_of_item = group_by_clip([a, b, a, copy_of_a, b], key)
    assert firsts == [0, 1] and clip_of_item == [0, 1, 0, 0, 1]
    assert calls == [0, 1, 3]  # a repeated object is not keyed (hashed) again
