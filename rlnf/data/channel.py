"""Channel effects shared by the demo corpus's target domain and the reward model's training augmentation:
a Butterworth band-pass (microphones, telephone lines, codecs) and coloured noise at a signal-to-noise ratio."""

from __future__ import annotations

import numpy as np


def band_pass(
    audio: np.ndarray, band: tuple[float, float], sampling_rate: int, *, zero_phase: bool = False
) -> np.ndarray:
    """4th-order Butterworth band-pass of a float64 signal; ``zero_phase`` filters forwards and backwards."""
    from scipy.signal import butter, sosfilt, sosfiltfilt

    sos = butter(4, band, btype="bandpass", fs=sampling_rate, output="sos")
    return sosfiltfilt(sos, audio) if zero_phase else sosfilt(sos, audio)


def add_coloured_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, pole: float) -> np.ndarray:
    """``audio`` plus white noise through a one-pole low-pass (``pole`` in [0, 1): more energy low, as room and
    line noise have), scaled to ``snr_db`` below the signal's power."""
    from scipy.signal import lfilter

    noise = lfilter([1.0], [1.0, -pole], rng.standard_normal(audio.shape[0]))
    power = float(np.mean(audio**2)) or 1e-12
    return audio + noise * np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-12))


__all__ = ["add_coloured_noise", "band_pass"]
