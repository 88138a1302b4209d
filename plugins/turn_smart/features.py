"""Whisper log-mel features in numpy, as Smart Turn v3 was trained on (no transformers, no torch).

Matches `transformers.WhisperFeatureExtractor(chunk_length=8)` on an 8 s window at 16 kHz with
`do_normalize=True`: zero-mean/unit-variance waveform, centred STFT (reflect pad, periodic Hann,
n_fft 400, hop 160), power spectrum, 80 Slaney mel filters, log10 floored at 1e-10, the last frame
dropped, clamped to (max - 8), then (x + 4) / 4. Output (80, 800) float32.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from flowact.types import FloatArray

__all__ = ["N_FRAMES", "N_MELS", "SAMPLE_RATE", "WINDOW_SAMPLES", "last_window", "log_mel", "mel_filters"]

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
WINDOW_SAMPLES = 8 * SAMPLE_RATE  # the model sees the last 8 s
N_FRAMES = WINDOW_SAMPLES // HOP  # 800


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp((m - 15.0) * (np.log(6.4) / 27.0))
    return np.where(m >= 15.0, log, lin)


@functools.cache
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, Slaney area-normalised (librosa's `norm='slaney'`)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (fft_hz[None, :] - lo) / (mid - lo)
    fall = (hi - fft_hz[None, :]) / (hi - mid)
    tri: np.ndarray = np.maximum(0.0, np.minimum(rise, fall)) * (2.0 / (hi - lo))
    return tri


@functools.cache
def _hann() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def last_window(audio: FloatArray) -> FloatArray:
    """The last 8 s of `audio` (16 kHz float), zero-padded at the front when shorter."""
    x = np.asarray(audio, np.float32)[-WINDOW_SAMPLES:]
    if len(x) < WINDOW_SAMPLES:
        x = np.concatenate([np.zeros(WINDOW_SAMPLES - len(x), np.float32), x])
    return x


def log_mel(window: FloatArray) -> FloatArray:
    """(80, 800) features of exactly 8 s of 16 kHz float audio (see `last_window`)."""
    x = np.asarray(window, np.float32)
    if x.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"log_mel needs {WINDOW_SAMPLES} samples, got shape {x.shape}")
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]  # (801, 400)
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # (801, 201)
    mel = np.log10(np.maximum(power @ mel_filters().T, 1e-10)).T[:, :-1]  # (80, 800)
    mel = np.maximum(mel, mel.max() - 8.0)
    out: FloatArray = ((mel + 4.0) / 4.0).astype(np.float32)
    return out
