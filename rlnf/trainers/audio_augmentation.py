"""Channel and speaker augmentation of training clips: a reward model trained on clean audio must still score
transcripts of other voices, speeds and channels (the situation RL puts it in).

Generic, label-preserving perturbations (the words are unchanged, so the score is too), each applied with
probability ``probability``: a speed change by resampling (tempo, pitch and formants together, as speaker
variation does), a random band limit (high-pass 50-400 Hz, low-pass 2.8-6 kHz: microphones, lines, codecs)
and additive coloured noise at 5-30 dB SNR. The reward model normalises each clip's features, so gain needs
no perturbation. Draws are seeded by the caller, so a batch is augmented the same way when it is seen again.
"""

from __future__ import annotations

import numpy as np

from ..data.channel import add_coloured_noise, band_pass

__all__ = ["ChannelAugmentation"]

_SPEEDS = ((9, 10), (19, 20), (21, 20), (11, 10), (23, 20))  # up/down resampling ratios: 0.9x ... 1.15x


class ChannelAugmentation:
    """``augment(waveform, rng)`` -> a perturbed copy (mono float32 at ``sampling_rate``)."""

    def __init__(self, sampling_rate: int = 16000, probability: float = 0.5) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.sampling_rate = int(sampling_rate)
        self.probability = float(probability)

    def __call__(self, waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import resample_poly

        out = np.asarray(waveform, dtype=np.float64)
        if rng.random() < self.probability:
            up, down = _SPEEDS[int(rng.integers(len(_SPEEDS)))]
            out = resample_poly(out, up, down)  # more samples at the same rate: slower and lower, and vice versa
        if rng.random() < self.probability:
            nyquist = self.sampling_rate / 2
            band = (float(rng.uniform(50.0, 400.0)), min(float(rng.uniform(2800.0, 6000.0)), 0.95 * nyquist))
            out = band_pass(out, band, self.sampling_rate)
        if rng.random() < self.probability:
            pole, snr_db = float(rng.uniform(0.0, 0.9)), float(rng.uniform(5.0, 30.0))
            out = add_coloured_noise(out, snr_db, rng, pole)
        return out.astype(np.float32)
