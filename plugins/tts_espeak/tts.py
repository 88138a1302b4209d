"""EspeakTTS: synthesis with libespeak-ng via ctypes; phoneme and word events give exact timings.

The library keeps global state, so calls are serialized by a process-wide lock and run in a worker
thread (never on the event loop). Output is resampled from espeak's 22.05 kHz to the session rate.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.engine import BaseTTS, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import AudioChunk, PhonemeTiming, SpeechChunk, WordTiming
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock
from plugins.tts_espeak.config import EspeakTTSConfig

__all__ = ["EspeakTTS"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_WORD, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = 1, 5, 6, 7
_RATE, _PITCH = 1, 3


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_LOCK = threading.Lock()
_LIB: dict[str, Any] = {}


@dataclass
class _Capture:
    pcm: list[np.ndarray]
    events: list[tuple[int, int, int, int, str]]  # type, text_pos, length, audio_ms, phoneme


def _library(name: str) -> tuple[Any, int]:
    if name not in _LIB:
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise EngineError("espeak", f"cannot load {name} (install Debian's libespeak-ng1): {e}") from e
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None, _INIT_PHONEME_EVENTS)
        if rate <= 0:
            raise EngineError("espeak", f"espeak_Initialize failed ({rate}); is espeak-ng-data installed?")
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        _LIB[name] = (lib, rate)
    return _LIB[name]  # type: ignore[no-any-return]


class EspeakTTS(BaseTTS):
    """The lightest offline TTS; phoneme timings come from espeak-ng's own events."""

    Config = EspeakTTSConfig
    engine_name = "espeak"

    def __init__(
        self, config: EspeakTTSConfig | None = None, *, sample_rate: int = 24000, clock: Clock | None = None
    ) -> None:
        self.config = config or EspeakTTSConfig()
        super().__init__(policy=RetryPolicy(retries=0, first_item_timeout_s=self.config.timeout_s), clock=clock)
        self.sample_rate = sample_rate
        self._lib, self.native_rate = _library(self.config.library)
        with _LOCK:
            if self._lib.espeak_SetVoiceByName(self.config.voice.encode()) != 0:
                raise ConfigError(f"tts.voice: espeak has no voice {self.config.voice!r}; "
                                  "pick one listed by `espeak-ng --voices`")

    def _synth(self, text: str) -> _Capture:
        cap = _Capture([], [])

        def on_audio(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                cap.pcm.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while events[i].type != 0:
                ev = events[i]
                name = ev.id.string.decode("utf-8", "replace") if ev.type == _EV_PHONEME else ""
                cap.events.append((ev.type, ev.text_position, ev.length, ev.audio_position, name))
                i += 1
            return 0

        cb = _CALLBACK(on_audio)
        data = text.encode("utf-8") + b"\0"
        with _LOCK:
            lib = self._lib
            lib.espeak_SetSynthCallback(cb)
            lib.espeak_SetVoiceByName(self.config.voice.encode())
            lib.espeak_SetParameter(_RATE, self.config.rate_wpm, 0)
            lib.espeak_SetParameter(_PITCH, self.config.pitch, 0)
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EngineError("espeak", f"espeak_Synth failed with code {err}", retryable=False)
        return cap

    def _to_speech(self, text: str, cap: _Capture) -> SpeechChunk:
        pcm = np.concatenate(cap.pcm) if cap.pcm else np.zeros(0, np.int16)
        audio = resample(int16_to_float(pcm), self.native_rate, self.sample_rate)
        total = len(pcm) / self.native_rate
        phon = [(ms / 1000.0, name) for typ, _, _, ms, name in cap.events if typ == _EV_PHONEME]
        phonemes = tuple(
            PhonemeTiming(name, t, max(0.0, (phon[i + 1][0] if i + 1 < len(phon) else total) - t))
            for i, (t, name) in enumerate(phon)
        )
        words_ev = [(pos, ln, ms / 1000.0) for typ, pos, ln, ms, _ in cap.events if typ == _EV_WORD]
        words = tuple(
            WordTiming(
                word=text[max(0, pos - 1) : max(0, pos - 1) + ln], start=t,
                duration=max(0.0, (words_ev[i + 1][2] if i + 1 < len(words_ev) else total) - t),
                char_offset=max(0, pos - 1),
            )
            for i, (pos, ln, t) in enumerate(words_ev)
        )
        return SpeechChunk(AudioChunk(float_to_int16(audio), self.sample_rate), text, phonemes=phonemes, words=words)

    async def _synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        cap = await self.run_blocking(self._synth, text)
        yield self._to_speech(text, cap)
