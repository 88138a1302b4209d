"""Phonemes -> visemes -> mouth shapes.

Viseme set: the 15 Oculus/Meta visemes in `flowact.types.VISEMES`. Phoneme table (IPA as emitted
by espeak-ng `--ipa` and by piper voices, which phonemize with espeak; espeak mnemonics; ARPAbet):

| viseme | IPA                                  | espeak mnemonic        | ARPAbet            | mouth               |
|--------|--------------------------------------|------------------------|--------------------|---------------------|
| sil    | pause, h ʔ, punctuation, ^ $ _       | _ _: h                 | SIL SP HH          | closed, relaxed     |
| PP     | p b m ɸ β                            | p b m                  | P B M              | lips pressed        |
| FF     | f v                                  | f v                    | F V                | teeth on lower lip  |
| TH     | θ ð                                  | T D                    | TH DH              | tongue at teeth     |
| DD     | t d ɾ                                | t d t#                 | T D DX             | slightly open       |
| kk     | k g ɡ ŋ x ɣ χ ç                      | k g N x                | K G NG             | open, relaxed       |
| CH     | tʃ dʒ ʃ ʒ ʧ ʤ                        | tS dZ S Z              | CH JH SH ZH        | lips forward        |
| SS     | s z                                  | s z                    | S Z                | teeth together      |
| nn     | n l ɫ ɲ ʎ n̩ l̩                        | n l                    | N L EN EL          | slightly open       |
| RR     | r ɹ ɻ ʁ ɚ ɝ ɜ                        | r 3: 3                 | R ER               | rounded, ajar       |
| aa     | a ɑ æ ʌ ɐ aɪ aʊ                      | a A: aI aU V a#        | AA AE AH AY AW     | wide open           |
| E      | e ɛ ə eɪ ɛə ᵻ ɘ ɵ œ ø                | E eI @ e@              | EH EY AX           | open, spread        |
| ih     | i ɪ j ɨ iə                           | i i: I j i@            | IY IH Y            | spread, near closed |
| oh     | o ɔ ɒ oʊ ɔɪ əʊ                       | o O: 0 oU OI           | AO OW OY           | rounded, open       |
| ou     | u ʊ w ʉ y ɥ ʍ                        | u u: U w U@            | UW UH W            | rounded, small      |

Timing marks are folded into their neighbours before lookup (`normalize_phonemes`): stress marks
(ˈ ˌ, piper gives them their own durations) go to the next phoneme, length marks (ː) and tie bars
to the previous one, and short word-boundary spaces are shared by both neighbours (connected
speech does not close the mouth between words); long spaces and punctuation are silence.

Visemes follow phoneme timings when the TTS gives them (piper alignments, espeak-ng phoneme
events, Coqui durations): each frame's target is the overlap-weighted mix of the phonemes under a
one-frame window centred on the frame's pts + `lookahead_s` (40-80 ms), because the lips
anticipate the sound; a fast attack / slower release filter (20 / 40 ms) models coarticulation.
Without timings the visemes are estimated from audio features (`visemes_from_audio`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from flowact.motion.params import P
from flowact.types import VISEMES, FloatArray

__all__ = [
    "MOUTH_INDEX",
    "V",
    "MOUTH_PARAMS",
    "PHONEME_TO_VISEME",
    "VISEME_SHAPES",
    "PhonemeLike",
    "TimedViseme",
    "VisemeSmoother",
    "lookup_viseme",
    "normalize_phonemes",
    "phoneme_viseme",
    "viseme_shape",
    "viseme_targets",
    "viseme_targets_arrays",
    "visemes_from_audio",
    "visemes_from_timings",
]

V = {name: i for i, name in enumerate(VISEMES)}
Alphabet = Literal["auto", "ipa", "espeak", "arpabet"]


class PhonemeLike(Protocol):
    """Anything with a phoneme symbol and timing in seconds (e.g. `agent.frames.PhonemeTiming`)."""

    @property
    def phoneme(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def duration(self) -> float: ...


_IPA: dict[str, tuple[str, ...]] = {
    "sil": ("_", "", " ", "h", "ɦ", "ʔ", "ħ", "ʕ", "ʜ", "ʡ", "ʢ", "#", "^", "$", ".", ",", "?", "!", ";", ":", "-", "…",
            "(", ")", "↓", "↑", "|", "‖"),
    "PP": ("p", "b", "m", "ɸ", "β", "m̩", "ɱ", "ɓ", "ʙ", "ʘ"),
    "FF": ("f", "v", "ʋ", "ⱱ"),
    "TH": ("θ", "ð"),
    "DD": ("t", "d", "ɾ", "ʈ", "ɖ", "ɗ", "ɽ", "ǀ", "ǃ", "ǂ"),
    "kk": ("k", "g", "ɡ", "ŋ", "x", "ɣ", "χ", "ç", "q", "ɢ", "c", "ɟ", "ɠ", "ʄ", "ʛ", "ɴ", "ɰ"),
    "CH": ("tʃ", "dʒ", "ʃ", "ʒ", "ʧ", "ʤ", "tɕ", "dʑ", "ɕ", "ʑ", "ʂ", "ʐ", "ɧ", "ʝ"),
    "SS": ("s", "z", "ts", "dz"),
    "nn": ("n", "l", "ɫ", "ɲ", "ʎ", "n̩", "l̩", "ɬ", "ɳ", "ɭ", "ɮ", "ɺ", "ʟ", "ǁ"),
    "RR": ("r", "ɹ", "ɻ", "ʁ", "ʀ", "ɚ", "ɝ", "ɜ", "ɜː", "ɾ̃"),
    "aa": ("a", "ɑ", "æ", "ʌ", "ɐ", "aɪ", "aʊ", "ɑː", "ɶ"),
    "E": ("e", "ɛ", "ə", "eɪ", "ɛə", "ᵻ", "ɘ", "ɵ", "œ", "ø", "eə", "ɞ", "ɤ", "ε"),
    "ih": ("i", "ɪ", "j", "ɨ", "iə", "iː", "ɯ"),
    "oh": ("o", "ɔ", "ɒ", "oʊ", "ɔɪ", "əʊ", "ɔː", "oː"),
    "ou": ("u", "ʊ", "w", "ʉ", "y", "ɥ", "ʍ", "uː", "ʊə", "ʏ"),
}
_ESPEAK: dict[str, tuple[str, ...]] = {  # espeak-ng ASCII mnemonics that differ from IPA letters
    "sil": ("_:", "_!", "_|", "||", "%"),
    "TH": ("T", "D"),
    "DD": ("t#", "d#", "t2", "d2"),
    "kk": ("N", "g#"),
    "CH": ("tS", "dZ", "S", "Z"),
    "SS": ("s2", "z#"),
    "nn": ("@L", "l/", "n-", "l-", "L"),
    "RR": ("3", "3:", "r-", "r/", "R", "@r", "3:r"),
    "aa": ("A", "A:", "A@", "A#", "aa", "a2", "aI", "aU", "a#", "V", "aI@", "aU@", "aI3", "&"),
    "E": ("E", "eI", "@", "e@", "e#", "@2", "@5", "E2", "E3", "E:", "I#"),
    "ih": ("I", "I2", "i:", "i@", "i@3", "IR"),
    "oh": ("O", "O:", "O2", "0", "oU", "oU#", "OI", "O@", "o@", "0#"),
    "ou": ("U", "u:", "U@", "u@", "W"),
}
_ARPABET: dict[str, tuple[str, ...]] = {
    "sil": ("SIL", "SP", "SPN", "PAU", "HH", "H"),
    "PP": ("P", "B", "M", "EM"),
    "FF": ("F", "V"),
    "TH": ("TH", "DH"),
    "DD": ("T", "D", "DX"),
    "kk": ("K", "G", "NG"),
    "CH": ("CH", "JH", "SH", "ZH"),
    "SS": ("S", "Z"),
    "nn": ("N", "L", "EN", "EL", "NX"),
    "RR": ("R", "ER", "AXR"),
    "aa": ("AA", "AE", "AH", "AY", "AW"),
    "E": ("EH", "EY", "AX", "IX"),
    "ih": ("IY", "IH", "Y"),
    "oh": ("AO", "OW", "OY"),
    "ou": ("UW", "UH", "W", "UX"),
}


def _flip(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {ph: vis for vis, phs in table.items() for ph in phs}


_IPA_MAP = _flip(_IPA)
_ESPEAK_MAP = {**_IPA_MAP, **_flip(_ESPEAK)}
_ARPA_MAP = _flip(_ARPABET)
PHONEME_TO_VISEME: dict[str, str] = {**_ARPA_MAP, **_ESPEAK_MAP}
"""Union table for lookups without a known alphabet (espeak/IPA win over ARPAbet on conflicts)."""

_STRESS = frozenset("ˈˌ'\"%=")  # not ",": piper/IPA use it as a pause
# length marks, tie bars and modifiers (aspiration, palatalized, rhotic hook, combining diacritics)
# extend the previous phoneme
_LENGTH = frozenset("ːˑ:\u0361\u035cʰʲˤ˞ʷˠ\u0303\u0327\u032a\u032f\u0329\u030d\u0325\u0330")
_STRIP = str.maketrans("", "", "ˈˌ'\"ːˑ,%=0123456789\u0329\u030d\u0361\u035cʰʲˤ˞ʷˠ\u0303\u0327\u032a\u032f\u0325\u0330")
_WORD_GAP_S = 0.08  # a word-boundary space shorter than this does not close the mouth

MOUTH_PARAMS = ("jaw_open", "mouth_wide", "mouth_round", "lip_press", "lip_funnel", "upper_lip_raise")
# Mouth shape per viseme, columns MOUTH_PARAMS, rows VISEMES (0..1 activations).
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
"""Column of each MOUTH_PARAMS entry in the motion vector: `motion[:, MOUTH_INDEX] = visemes @ VISEME_SHAPES`."""


def viseme_shape(viseme: str) -> dict[str, float]:
    """Mouth motion parameters (MOTION_PARAMS names) of one viseme, e.g. `viseme_shape("aa")["jaw_open"]`."""
    row = VISEME_SHAPES[V[viseme]]
    return {name: float(v) for name, v in zip(MOUTH_PARAMS, row, strict=True)}


def _looks_arpabet(symbol: str) -> bool:
    core = symbol.rstrip("012")
    return len(core) >= 2 and core.isascii() and core.isalpha() and core.isupper() and core in _ARPA_MAP


def lookup_viseme(phoneme: str, alphabet: Alphabet = "auto") -> int | None:
    """Index into VISEMES for a phoneme symbol in the table (stress/length marks ignored), else None."""
    raw = phoneme.strip()
    if alphabet == "arpabet" or (alphabet == "auto" and _looks_arpabet(raw)):
        core = raw.rstrip("012").upper()
        if core in _ARPA_MAP:
            return V[_ARPA_MAP[core]]
    table = _IPA_MAP if alphabet == "ipa" else _ESPEAK_MAP
    if raw in table:
        return V[table[raw]]
    clean = raw.translate(_STRIP)
    if clean in table:
        return V[table[clean]]
    return None


def phoneme_viseme(phoneme: str, alphabet: Alphabet = "auto") -> int:
    """Index into VISEMES for one phoneme symbol; unknown symbols fall back by their first known character."""
    found = lookup_viseme(phoneme, alphabet)
    if found is not None:
        return found
    clean = phoneme.strip().translate(_STRIP)
    if not clean:
        return V["sil"]
    table = _IPA_MAP if alphabet == "ipa" else _ESPEAK_MAP
    for ch in clean:  # diphthongs / diacritics: the first known character decides
        if ch in table and ch.strip():
            return V[table[ch]]
    return V["E"]  # an unknown voiced sound: a neutral open mouth


@dataclass(frozen=True, slots=True)
class TimedViseme:
    """One phoneme reduced to its viseme index over [start, end) seconds."""

    viseme: int
    start: float
    end: float


def _detect_alphabet(symbols: Sequence[str]) -> Alphabet:
    letters = [s.rstrip("012") for s in symbols if s.strip() and s.strip() not in ("SIL", "SP", "PAU")]
    if letters and all(s.isascii() and s.isalpha() and s.isupper() for s in letters):
        if any(_looks_arpabet(s) for s in letters):
            return "arpabet"
    return "auto"


def normalize_phonemes(phonemes: Sequence[PhonemeLike], alphabet: Alphabet = "auto") -> list[TimedViseme]:
    """Fold stress/length marks and short word gaps into neighbours; map each phoneme to a viseme."""
    if alphabet == "auto":
        alphabet = _detect_alphabet([p.phoneme for p in phonemes])
    items: list[list[float]] = []  # [viseme, start, end, is_gap]
    carry = 0.0  # duration of stress marks waiting for the next phoneme
    for p in phonemes:
        sym, start, dur = p.phoneme, float(p.start), max(0.0, float(p.duration))
        if sym and all(c in _STRESS for c in sym):
            carry += dur
            continue
        if sym and all(c in _LENGTH for c in sym) and alphabet != "arpabet":
            if items:
                items[-1][2] = start + dur
            continue
        vis = phoneme_viseme(sym, alphabet)
        gap = sym == " " and dur < _WORD_GAP_S
        items.append([float(vis), start - carry, start + dur, 1.0 if gap else 0.0])
        carry = 0.0
    out: list[TimedViseme] = []
    for i, item in enumerate(items):
        v_f, t_start, t_end, is_gap = item
        if is_gap and 0 < i < len(items) - 1:  # short word gap: both neighbours stretch over it
            mid = (t_start + t_end) / 2
            if out:
                prev = out[-1]
                out[-1] = TimedViseme(prev.viseme, prev.start, mid)
            items[i + 1][1] = mid
            continue
        if t_end > t_start:
            out.append(TimedViseme(int(v_f), t_start, t_end))
    return out


def viseme_targets(visemes: Sequence[TimedViseme], t0: float, n_frames: int, fps: float) -> FloatArray:
    """Overlap-weighted viseme targets of frames covering [t0 + k/fps, t0 + (k+1)/fps): (n, 15).

    The time not covered by any phoneme counts as silence, so rows sum to 1.
    """
    starts = np.array([v.start for v in visemes], np.float64)
    ends = np.array([v.end for v in visemes], np.float64)
    idx = np.array([v.viseme for v in visemes], np.int64)
    return viseme_targets_arrays(starts, ends, idx, t0, n_frames, fps)


def viseme_targets_arrays(
    starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64], idx: npt.NDArray[np.int64],
    t0: float, n_frames: int, fps: float,
) -> FloatArray:
    """`viseme_targets` over parallel arrays (start s, end s, viseme index) sorted by start."""
    out = np.zeros((n_frames, len(VISEMES)), dtype=np.float32)
    if n_frames <= 0:
        return out
    lo = t0 + np.arange(n_frames, dtype=np.float64) / fps
    hi = lo + 1.0 / fps
    if len(starts):
        sel = np.nonzero((ends > lo[0]) & (starts < hi[-1]))[0]
        if len(sel):
            ov = np.minimum(ends[sel][None, :], hi[:, None]) - np.maximum(starts[sel][None, :], lo[:, None])
            ov = np.clip(ov, 0.0, None) * fps  # (n, m) fraction of each frame covered by each phoneme
            np.add.at(out.T, idx[sel], ov.T.astype(np.float32))
    total = out.sum(axis=1)
    out *= np.where(total > 1.0, 1.0 / np.maximum(total, 1e-9), 1.0)[:, None].astype(np.float32)
    out[:, V["sil"]] += np.clip(1.0 - out.sum(axis=1), 0.0, 1.0)
    return out


class VisemeSmoother:
    """Coarticulation: per-frame attack/release smoothing, stateful so it is continuous across chunks."""

    def __init__(self, fps: float, *, attack_s: float = 0.02, release_s: float = 0.04) -> None:
        self.a_up = np.float32(1.0 - np.exp(-1.0 / (fps * max(attack_s, 1e-4))))
        self.a_down = np.float32(1.0 - np.exp(-1.0 / (fps * max(release_s, 1e-4))))
        self.state = np.zeros(len(VISEMES), dtype=np.float32)
        self.state[V["sil"]] = 1.0

    def __call__(self, targets: FloatArray) -> FloatArray:
        out = np.empty_like(targets, dtype=np.float32)
        s = self.state
        for i in range(len(targets)):
            tgt = targets[i]
            s = s + (tgt - s) * np.where(tgt > s, self.a_up, self.a_down)
            out[i] = s
        self.state = s.astype(np.float32)
        total = out.sum(axis=1, keepdims=True)  # fast attack + slow release can overshoot: renormalize
        return np.where(total > 1.0, out / np.maximum(total, 1e-6), out).astype(np.float32)

    def reset(self) -> None:
        self.state[:] = 0.0
        self.state[V["sil"]] = 1.0


def visemes_from_timings(
    phonemes: Sequence[PhonemeLike],
    n_frames: int,
    fps: float,
    start_time: float = 0.0,
    lookahead_s: float = 0.06,
    attack_s: float = 0.02,
    release_s: float = 0.04,
    *,
    alphabet: Alphabet = "auto",
    warmup_s: float = 0.4,
) -> FloatArray:
    """Viseme weights (n_frames, 15) for frames starting at `start_time` from phoneme timings (seconds).

    Stateless: the smoothing filter is warmed up over `warmup_s` before `start_time`, so computing
    an utterance chunk by chunk gives (to within a fraction of a percent) the same result as all at
    once. Streaming callers that keep state use `normalize_phonemes` + `viseme_targets` + `VisemeSmoother`.
    """
    if n_frames < 0 or fps <= 0:
        raise ValueError("visemes_from_timings needs n_frames >= 0 and fps > 0")
    if not 0.0 <= lookahead_s <= 0.5:
        raise ValueError(f"lookahead_s={lookahead_s} outside 0..0.5 s")
    tv = normalize_phonemes(phonemes, alphabet)
    warm = int(np.ceil(max(0.0, warmup_s) * fps)) if start_time > 0 else 0
    warm = min(warm, int(start_time * fps + 1e-9))
    t0 = start_time - warm / fps + lookahead_s - 0.5 / fps  # a one-frame window centred on pts + lookahead
    targets = viseme_targets(tv, t0, warm + n_frames, fps)
    out = VisemeSmoother(fps, attack_s=attack_s, release_s=release_s)(targets)
    return out[warm:]


def visemes_from_audio(mel: FloatArray, energy: FloatArray) -> FloatArray:
    """Viseme weights estimated from audio alone (no phoneme timings): (n, 15).

    Voiced energy opens the mouth ("aa"/"E"); a high spectral centroid with moderate energy means a
    fricative ("SS"); a low centroid while voiced means rounded vowels ("oh"). Coarse but in sync.
    """
    n = len(energy)
    out = np.zeros((n, len(VISEMES)), dtype=np.float32)
    if n == 0:
        return out
    power = np.exp(mel - mel.max(axis=1, keepdims=True))
    bands = np.arange(mel.shape[1], dtype=np.float32)
    centroid = (power * bands).sum(axis=1) / (power.sum(axis=1) + 1e-6) / max(1, mel.shape[1] - 1)
    voiced = np.clip((energy - 0.45) / 0.3, 0.0, 1.0) * np.clip((0.55 - centroid) * 4.0, 0.0, 1.0)
    fric = np.clip((centroid - 0.45) * 3.0, 0.0, 1.0) * np.clip((energy - 0.3) / 0.2, 0.0, 1.0) * (1.0 - voiced)
    rounded = np.clip((0.22 - centroid) * 6.0, 0.0, 1.0) * voiced
    out[:, V["aa"]] = voiced * (1.0 - rounded) * 0.6
    out[:, V["E"]] = voiced * (1.0 - rounded) * 0.4
    out[:, V["oh"]] = rounded
    out[:, V["SS"]] = fric
    out[:, V["sil"]] = np.clip(1.0 - out.sum(axis=1), 0.0, 1.0)
    return out
