"""Channel effects shared by the demo corpus and the reward model's augmentation, against direct measurements."""

from __future__ import annotations

import numpy as np

from rlnf.data.channel import add_coloured_noise, band_pass
from rlnf.trainers.audio_augmentation import ChannelAugmentation

RATE = 16000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(RATE * seconds)) / RATE)


def power(x: np.ndarray) -> float:
    return float(np.mean(x[RATE // 10 :] ** 2))  # skip the filter's start-up


def test_band_pass_keeps_the_band_and_removes_what_is_outside():
    for zero_phase in (False, True):
        inside = band_pass(tone(1000.0), (300.0, 3400.0), RATE, zero_phase=zero_phase)
        outside = band_pass(tone(60.0), (300.0, 3400.0), RATE, zero_phase=zero_phase)
        assert 0.8 < power(inside) / power(tone(1000.0)) < 1.2
        assert power(outside) / power(tone(60.0)) < 1e-3


def test_coloured_noise_is_added_at_the_requested_snr():
    signal = tone(440.0)
    for snr_db in (5.0, 20.0):
        noisy = add_coloured_noise(signal, snr_db, np.random.default_rng(0), pole=0.7)
        noise = noisy - signal
        measured = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
        assert abs(measured - snr_db) < 1e-6
        low, high = np.abs(np.fft.rfft(noise))[:2000].mean(), np.abs(np.fft.rfft(noise))[-2000:].mean()
        assert low > 2 * high  # coloured: more energy low


def test_augmentation_is_seeded_and_off_at_probability_zero():
    clip = tone(300.0).astype(np.float32)
    augment = ChannelAugmentation(RATE, probability=1.0)
    first = augment(clip, np.random.default_rng(3))
    assert np.array_equal(first, augment(clip, np.random.default_rng(3)))
    assert first.shape != clip.shape or not np.allclose(first, clip)  # something was applied
    assert np.array_equal(ChannelAugmentation(RATE, probability=0.0)(clip, np.random.default_rng(3)), clip)
