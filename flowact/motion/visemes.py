"""Phonemes -> visemes -> mouth shapes.

Viseme set: the 15 Oculus/Meta visemes in `flowact.types.VISEMES`:

| viseme | sounds (IPA / espeak / ARPAbet)                         | mouth                         |
|--------|---------------------------------------------------------|-------------------------------|
| sil    | silence, pauses, h                                      | closed, relaxed               |
| PP     | p b m                                                   | lips pressed                  |
| FF     | f v                                                     | upper teeth on lower lip      |
| TH     | θ ð (T D / TH DH)                                       | tongue between teeth, ajar    |
| DD     | t d ɾ                                                   | slightly open                 |
| kk     | k g ŋ                                                   | open, relaxed                 |
| CH     | tʃ dʒ ʃ ʒ (tS dZ S Z / CH JH SH ZH)                     | lips pushed forward           |
| SS     | s z                                                     | teeth together, wide          |
| nn     | n l                                                     | slightly open                 |
| RR     | r ɹ ɚ ɝ (r 3: / R ER)                                   | rounded, slightly open        |
| aa     | a ɑ æ ʌ aɪ aʊ (a A: aI aU V / AA AE AH AY AW)           | wide open                     |
| E      | e ɛ eɪ ə (E eI @ / EH EY AX)                            | open, spread                  |
| ih     | i ɪ j (i: I j / IY IH Y)                                | spread, nearly closed         |
| oh     | o ɔ oʊ ɒ ɔɪ (O: oU 0 OI / AO OW OY)                     | rounded, open                 |
| ou     | u ʊ w (u: U w / UW UH W)                                | rounded, small                |

Visemes follow phoneme timings when the TTS gives them (piper alignments, espeak-ng phoneme
events, Coqui durations) with a lookahead of 40-80 ms (the lips anticipate the sound) and
attack/release smoothing (coarticulation); otherwise they are estimated from audio features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowact.motion.params import P
from flowact.types import VISEMES, FloatArray

__all__ = [
    "MOUTH_PARAMS",
    "PHONEME_TO_VISEME",
    "VISEME_SHAPES",
    "VisemeSmoother",
    "phoneme_viseme",
    "viseme_targets",
    "visemes_from_audio",
]

V = {name: i for i, name in enumerate(VISEMES)}

_TABLE: dict[str, tuple[str, ...]] = {
    "sil": ("_", "", " ", "h", "ʔ", "HH", "SIL", "SP", "PAU", "#", "^", "$", ".", ",", "?", "!"),
    "PP": ("p", "b", "m", "P", "B", "M", "m̩"),
    "FF": ("f", "v", "F", "V"),
    "TH": ("θ", "ð", "T", "D", "TH", "DH"),
    "DD": ("t", "d", "ɾ", "t#", "d#", "DX"),
    "kk": ("k", "g", "ɡ", "ŋ", "x", "K", "G", "NG", "N"),
    "CH": ("tʃ", "dʒ", "ʃ", "ʒ", "tS", "dZ", "S", "Z", "CH", "JH", "SH", "ZH"),
    "SS": ("s", "z", "SS"),
    "nn": ("n", "l", "ɫ", "n̩", "l̩", "L", "NN", "EL", "EN"),
    "RR": ("r", "ɹ", "ɚ", "ɝ", "ɜ", "3", "3:", "R", "ER", "r-"),
    "aa": ("a", "ɑ", "æ", "ʌ", "aɪ", "aʊ", "A", "A:", "aI", "aU", "AA", "AE", "AH", "AY", "AW", "ɐ"),
    "E": ("e", "ɛ", "eɪ", "ə", "E", "eI", "@", "EH", "EY", "AX", "ɛə", "e@", "ᵻ"),
    "ih": ("i", "ɪ", "j", "i:", "I", "IY", "IH", "Y", "y", "iə", "i@"),
    "oh": ("o", "ɔ", "oʊ", "ɒ", "ɔɪ", "O", "O:", "oU", "0", "OI", "AO", "OW", "OY", "əʊ", "o:"),
    "ou": ("u", "ʊ", "w", "u:", "U", "UW", "UH", "W", "ʊə", "U@"),
}
PHONEME_TO_VISEME: dict[str, str] = {ph: vis for vis, phs in _TABLE.items() for ph in phs}

_STRIP = str.maketrans("", "", "ˈˌ'ː:,%=0123456789")

MOUTH_PARAMS = ("jaw_open", "mouth_wide", "mouth_round", "lip_press", "lip_funnel", "upper_lip_raise")
# Mouth shape per viseme, columns MOUTH_PARAMS, rows VISEMES.
VISEME_SHAPES: FloatArray = np.array(
    [
        # jaw  wide round press funnel upper
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # sil
        [0.00, 0.05, 0.05, 1.00, 0.00, 0.00],  # PP
        [0.10, 0.15, 0.00, 0.00, 0.00, 0.90],  # FF
        [0.22, 0.15, 0.00, 0.00, 0.00, 0.30],  # TH
        [0.25, 0.20, 0.00, 0.00, 0.00, 0.10],  # DD
        [0.35, 0.10, 0.00, 0.00, 0.00, 0.00],  # kk
        [0.20, 0.00, 0.35, 0.00, 0.90, 0.10],  # CH
        [0.10, 0.55, 0.00, 0.00, 0.00, 0.15],  # SS
        [0.22, 0.20, 0.00, 0.00, 0.00, 0.05],  # nn
        [0.25, 0.00, 0.55, 0.00, 0.35, 0.00],  # RR
        [0.85, 0.25, 0.00, 0.00, 0.00, 0.00],  # aa
        [0.55, 0.50, 0.00, 0.00, 0.00, 0.05],  # E
        [0.30, 0.80, 0.00, 0.00, 0.00, 0.05],  # ih
        [0.60, 0.00, 0.75, 0.00, 0.20, 0.00],  # oh
        [0.30, 0.00, 1.00, 0.00, 0.45, 0.00],  # ou
    ],
    dtype=np.float32,
)
MOUTH_INDEX = np.array([P[name] for name in MOUTH_PARAMS])


def phoneme_viseme(phoneme: str) -> int:
    """Index into VISEMES for an IPA / espeak / ARPAbet phoneme symbol (unknown -> nearest guess)."""
    raw = phoneme.strip()
    if raw in PHONEME_TO_VISEME:
        return V[PHONEME_TO_VISEME[raw]]
    clean = raw.translate(_STRIP)
    for cand in (clean, clean.upper(), clean.lower()):
        if cand in PHONEME_TO_VISEME:
            return V[PHONEME_TO_VISEME[cand]]
    # multi-character symbols: use the first character that is known (e.g. diphthong variants)
    for ch in clean:
        if ch in PHONEME_TO_VISEME:
            return V[PHONEME_TO_VISEME[ch]]
    return V["sil"] if not clean else V["E"]


def viseme_targets(
    starts: Sequence[float], durations: Sequence[float], symbols: Sequence[str], times: FloatArray
) -> FloatArray:
    """One-hot viseme target at each query time (seconds) from phoneme timings: (len(times), 15)."""
    out = np.zeros((len(times), len(VISEMES)), dtype=np.float32)
    out[:, V["sil"]] = 1.0
    if not starts:
        return out
    st = np.asarray(starts, dtype=np.float64)
    en = st + np.asarray(durations, dtype=np.float64)
    idx = np.searchsorted(st, times, side="right") - 1
    for row, (t, i) in enumerate(zip(times, idx, strict=True)):
        if 0 <= i < len(st) and t < en[i]:
            out[row] = 0.0
            out[row, phoneme_viseme(symbols[i])] = 1.0
    return out


def visemes_from_audio(mel: FloatArray, energy: FloatArray) -> FloatArray:
    """Viseme weights estimated from audio alone (no phoneme timings): (n, 15).

    Voiced energy opens the mouth ("aa"/"E"); a high spectral centroid with low energy suggests
    fricatives ("SS"/"FF"); low centroid -> rounded ("oh"/"ou"). Coarse but speech-synchronous.
    """
    n = len(energy)
    out = np.zeros((n, len(VISEMES)), dtype=np.float32)
    if n == 0:
        return out
    power = np.exp(mel - mel.max(axis=1, keepdims=True))
    bands = np.arange(mel.shape[1], dtype=np.float32)
    centroid = (power * bands).sum(axis=1) / (power.sum(axis=1) + 1e-6) / max(1, mel.shape[1] - 1)
    voiced = np.clip((energy - 0.35) / 0.4, 0.0, 1.0)
    fric = np.clip((centroid - 0.5) * 3.0, 0.0, 1.0) * (1.0 - voiced) * (energy > 0.25)
    rounded = np.clip((0.3 - centroid) * 4.0, 0.0, 1.0) * voiced
    out[:, V["aa"]] = voiced * (1.0 - rounded) * 0.7
    out[:, V["E"]] = voiced * (1.0 - rounded) * 0.3
    out[:, V["oh"]] = rounded
    out[:, V["SS"]] = fric
    out[:, V["sil"]] = np.clip(1.0 - out.sum(axis=1), 0.0, 1.0)
    return out


class VisemeSmoother:
    """Coarticulation: per-frame attack/release smoothing, continuous across chunks."""

    def __init__(self, fps: int, *, attack_s: float = 0.04, release_s: float = 0.08) -> None:
        self.a_up = 1.0 - float(np.exp(-1.0 / (fps * attack_s)))
        self.a_down = 1.0 - float(np.exp(-1.0 / (fps * release_s)))
        self.state = np.zeros(len(VISEMES), dtype=np.float32)
        self.state[V["sil"]] = 1.0

    def __call__(self, targets: FloatArray) -> FloatArray:
        out = np.empty_like(targets)
        s = self.state
        for i, tgt in enumerate(targets):
            rate = np.where(tgt > s, self.a_up, self.a_down).astype(np.float32)
            s = s + (tgt - s) * rate
            out[i] = s
        self.state = s
        return out

    def reset(self) -> None:
        self.state[:] = 0.0
        self.state[V["sil"]] = 1.0
