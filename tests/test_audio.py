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
        str(wav_path), wav_path, wav_path.read_bytes(), clip, torch.from_numpy(clip),
        {"array": clip, "sampling_rate": 16000}, {"path": str(wav_path), "bytes": None},
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
        (np.zeros(0, dtype=np.float32), "0 samples"),
        (np.array([0.0, np.nan] * 100, dtype=np.float32), "NaN"),
        (np.array([0.0, np.inf] * 100, dtype=np.float32), "NaN or infinite"),
        (np.zeros((2, 2, 100), dtype=np.float32), "shape"),
        (np.array(["a", "b"]), "dtype"),
        (12345, "unsupported type"),
        ({"foo": 1}, "'array', 'bytes' or 'path'"),
    ],
)
def test_bad_input_names_the_item(item, message):
    with pytest.raises(ValueError, match=rf"audio item 7.*{message}|{message}.*"):
        load_audio(item, index=7)
    with pytest.raises(ValueError, match="audio item 7"):
        load_audio(item, index=7)


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
    assert audio_key({"array": clip, "sampling_rate": 16000}) == audio_key({"array": clip.copy(), "sampling_rate": 16000})
    assert audio_key({"array": clip, "sampling_rate": 16000}) != audio_key({"array": clip, "sampling_rate": 8000})
