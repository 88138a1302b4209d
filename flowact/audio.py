"""Audio helpers shared by the control builder, the learned motion model and training.

Pure numpy: int16 <-> float, polyphase-free linear-phase resampling (windowed sinc via FFT), and
per-video-frame features (log-mel bands and RMS energy, fundamental frequency) aligned to a fixed
frame rate.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from flowact.types import N_MELS, FloatArray, Int16Array

__all__ = [
    "float_to_int16",
    "frame_features",
    "frame_pitch",
    "int16_to_float",
    "mel_filterbank",
    "resample",
]


def int16_to_float(samples: Int16Array) -> FloatArray:
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def float_to_int16(samples: FloatArray) -> Int16Array:
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def resample(samples: FloatArray, src_rate: int, dst_rate: int) -> FloatArray:
    """Band-limited resampling of a mono float signal (FFT method; exact length n*dst/src)."""
    if src_rate == dst_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    n_out = int(round(len(samples) * dst_rate / src_rate))
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    # Pad to limit circular wrap-around of the FFT method at the edges.
    pad = min(len(samples), max(64, src_rate // 50))
    padded = np.concatenate([samples, samples[::-1][:pad] * np.linspace(1, 0, pad, dtype=np.float32)])
    n_pad_out = int(round(len(padded) * dst_rate / src_rate))
    spec = np.fft.rfft(padded)
    n_bins = n_pad_out // 2 + 1
    out_spec = np.zeros(n_bins, dtype=np.complex128)
    m = min(n_bins, len(spec))
    out_spec[:m] = spec[:m]
    out = np.fft.irfft(out_spec, n=n_pad_out) * (n_pad_out / len(padded))
    return out[:n_out].astype(np.float32)


@lru_cache(maxsize=16)
def _hann(n: int) -> FloatArray:
    return np.hanning(n).astype(np.float32)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS, fmax: float = 8000.0) -> FloatArray:
    """Triangular mel filters (HTK mel scale), shape (n_mels, n_fft // 2 + 1)."""
    fmax = min(fmax, sample_rate / 2)

    def hz_to_mel(f: FloatArray | float) -> FloatArray:
        return np.asarray(2595.0 * np.log10(1.0 + np.asarray(f) / 700.0), dtype=np.float32)

    def mel_to_hz(m: FloatArray) -> FloatArray:
        return np.asarray(700.0 * (10.0 ** (m / 2595.0) - 1.0), dtype=np.float32)

    mels = np.linspace(hz_to_mel(60.0), hz_to_mel(fmax), n_mels + 2, dtype=np.float32)
    hz = mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32)
    fb = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for i in range(n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / max(mid - lo, 1e-6)
        down = (hi - bins) / max(hi - mid, 1e-6)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return fb


def frame_features(
    samples: FloatArray, sample_rate: int, fps: int, n_frames: int | None = None
) -> tuple[FloatArray, FloatArray]:
    """Per-video-frame (log-mel (n, N_MELS), RMS energy (n,)) for a mono float signal.

    Frame k covers samples [k*hop, (k+1)*hop) with hop = sample_rate / fps; the FFT window is
    centred on that span and twice as long. Energy is RMS mapped to 0..1 (about -60 dBFS -> 0).
    Log-mel is natural log of mel power + 1e-6, so silence is about -13.8.
    """
    hop = sample_rate / fps
    if n_frames is None:
        n_frames = int(np.ceil(len(samples) / hop))
    if n_frames <= 0:
        return np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32)
    win = 1 << int(np.ceil(np.log2(max(2 * hop, 64))))
    window = _hann(win)
    fb = mel_filterbank(sample_rate, win)
    starts = (np.arange(n_frames) * hop + hop / 2 - win / 2).astype(np.int64)
    x = samples.astype(np.float32)
    padded = np.concatenate([np.zeros(win, np.float32), x, np.zeros(2 * win, np.float32)])
    idx = starts[:, None] + win + np.arange(win)[None, :]
    frames = padded[idx] * window  # (n, win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 / win  # (n, win//2+1)
    mel = np.log(power @ fb.T + 1e-6).astype(np.float32)  # (n, N_MELS)
    seg_idx = (np.arange(n_frames)[:, None] * hop + np.arange(int(hop))[None, :]).astype(np.int64)
    seg = np.concatenate([samples.astype(np.float32), np.zeros(int(hop) + 1, np.float32)])[
        np.minimum(seg_idx, len(samples) + int(hop))
    ]
    rms = np.sqrt(np.mean(seg**2, axis=1) + 1e-12)
    db = 20.0 * np.log10(rms + 1e-9)
    energy = np.clip((db + 60.0) / 60.0, 0.0, 1.0).astype(np.float32)
    return mel, energy


def frame_pitch(samples: FloatArray, sample_rate: int, fps: int, n_frames: int,
                fmin: float = 70.0, fmax: float = 400.0) -> FloatArray:
    """Per-video-frame fundamental frequency in Hz (0 where unvoiced) by normalized autocorrelation.

    The signal is decimated to about 8 kHz (box filter); frame k uses the window starting at k*hop
    of max(hop, 2.5 periods of fmin). A frame is voiced when its autocorrelation peak in
    [1/fmax, 1/fmin] exceeds 0.5; the shortest lag reaching 0.9 of the best peak wins (octave-safe).
    """
    q = max(1, int(sample_rate // 8000))
    sr = sample_rate / q
    usable = len(samples) // q * q
    x = samples[0:usable:q].astype(np.float32)
    for r in range(1, q):  # box filter before decimation (scale is irrelevant)
        x += samples[r:usable:q]
    hop = sr / fps
    win = int(max(hop, 2.5 * sr / fmin))
    lo, hi = int(sr / fmax), int(sr / fmin)
    out = np.zeros(n_frames, np.float32)
    nfft = 2 * win
    if hop == win and len(x) >= n_frames * win:
        frames = x[: n_frames * win].reshape(n_frames, win)
    else:
        x = np.concatenate([x, np.zeros(win, np.float32)])
        starts = (np.arange(n_frames) * hop).astype(np.int64)
        frames = x[np.minimum(starts[:, None] + np.arange(win)[None, :], len(x) - 1)]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, n=nfft, axis=1)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, n=nfft, axis=1)[:, : hi + 1]
    energy = ac[:, 0] + 1e-9
    # unbiased: divide by the overlap length so that long lags are not penalised
    norm = ac[:, lo : hi + 1] / energy[:, None] * (win / (win - np.arange(lo, hi + 1)))[None, :]
    peak = norm.max(axis=1)
    voiced = (peak > 0.5) & (energy > 1e-4 * win * q * q)  # not near-silence (x is a sum of q samples)
    first = np.argmax(norm >= 0.9 * peak[:, None], axis=1)  # shortest lag near the best peak
    falling = np.concatenate([np.diff(norm, axis=1) <= 0, np.ones((n_frames, 1), bool)], axis=1)
    top = np.argmax(falling & (np.arange(norm.shape[1])[None, :] >= first[:, None]), axis=1)  # its top
    out[voiced] = sr / (lo + top[voiced])
    return out
