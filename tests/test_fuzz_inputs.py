"""Property-based tests of user-supplied files: config mappings and YAML, audio files (wrong rates,
odd headers, NaN, clipping, silence) and portraits (random bytes, corrupted images, tiny, huge, odd
modes). The invariant: a valid result or the project's one clear user error, never another exception."""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.config import load_config, parse_config
from agent.errors import ConfigError, InputError, PortraitError, UserError
from agent.frames import AudioChunk
from flowact.reference import analyze_portrait, load_image
from plugins.input_local.inputs import read_audio_file

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- config ------------------------------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
KEYS = st.one_of(
    st.sampled_from(["session", "input", "vad", "asr", "llm", "tts", "generator", "sink", "control", "type",
                     "fps", "width", "portrait", "path", "port", "host", "base_url", "local_server"]),
    st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.floats(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=15)
PLUGIN_SECTION = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["espeak", "portrait", "null", "file", "scripted", "energy", "stdin",
                                         "mqtt", "preview", "openai", "nope"]), SCALARS, VALUES)},
).flatmap(lambda base: st.dictionaries(KEYS, VALUES, max_size=3).map(lambda extra: {**extra, **base}))
CONFIGS = st.dictionaries(
    KEYS, st.one_of(VALUES, PLUGIN_SECTION, st.dictionaries(KEYS, VALUES, max_size=4)), max_size=8
)
ENVIRON = st.dictionaries(
    st.sampled_from(["FLOWACT__SESSION__FPS", "FLOWACT__SINK__TYPE", "FLOWACT__", "FLOWACT____", "FLOWACT__X",
                     "FLOWACT__SESSION", "FLOWACT__TTS__TYPE__X", "FLOWACT__LLM__LOCAL_SERVER__N_CTX", "HOME"]),
    st.one_of(st.text(max_size=20),
              st.sampled_from(["[", "{a: [", "null", "- 1", "25", "&a [*a]", "!!python/object:os.system"])),
    max_size=4,
)


@FUZZ
@given(raw=CONFIGS, environ=ENVIRON)
def test_parse_config_gives_a_config_or_a_config_error(raw: dict[object, object], environ: dict[str, str]) -> None:
    try:
        cfg = parse_config(raw, source="fuzz.yaml", environ=environ)  # type: ignore[arg-type]
    except ConfigError as e:
        assert str(e)
    else:
        assert {"tts", "generator", "sink"} <= set(cfg.plugins)


YAML_TEXT = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.integers(1, 20_000).map(lambda n: "[" * n),
    st.integers(1, 5_000).map(lambda n: "a: " * n),
    st.sampled_from(["a: &x [*x]", "!!python/object/apply:os.system [echo hi]", "--- !!binary AAAA", "\x00",
                     "session: {fps: 1e999}", "? [a]\n: b", "1: 2", "null: x", "[a, b]: c"]),
)


@FUZZ
@given(text=YAML_TEXT)
def test_config_files_give_a_config_or_a_config_error(text: str, tmp_path: Path) -> None:
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(ConfigError):  # none of these is a complete config
        load_config(p, environ={})


# --- audio -------------------------------------------------------------------------------------------


def wav_bytes(fmt: int, channels: int, rate: int, bits: int, data: bytes, *, declared: int | None = None) -> bytes:
    """A RIFF/WAVE file with any header fields, valid or not."""
    block = max(1, channels * bits // 8)
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate % 2**32, (rate * block) % 2**32, block % 2**16, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


HEADERS = st.builds(
    wav_bytes,
    fmt=st.sampled_from([1, 3, 0xFFFE, 0, 2, 85, 65535]),
    channels=st.integers(0, 9),
    rate=st.one_of(st.sampled_from([0, 1, 7999, 8000, 16000, 44100, 192000, 192001, 2**31]), st.integers(0, 2**32 - 1)),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64]),
    data=st.binary(max_size=600),
    declared=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)


def float_wav(values: list[float], rate: int) -> bytes:
    return wav_bytes(3, 1, rate, 32, np.asarray(values, "<f4").tobytes())


FLOATS = st.lists(st.one_of(st.floats(width=32), st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, 0.0])),
                  min_size=1, max_size=400)


def check_audio(path: Path) -> None:
    try:
        out = read_audio_file(path, 16000)
    except InputError as e:
        assert str(e).startswith(str(path))
    else:
        assert out.dtype == np.float32 and out.ndim == 1 and len(out) > 0
        assert np.isfinite(out).all()  # NaN/inf never reaches VAD, ASR or the int16 conversion


@FUZZ
@given(blob=st.one_of(HEADERS, st.builds(float_wav, FLOATS, st.sampled_from([8000, 16000, 48000])),
                      st.binary(max_size=300)))
def test_audio_files_decode_to_finite_samples_or_an_input_error(blob: bytes, tmp_path: Path) -> None:
    p = tmp_path / "in.wav"
    p.write_bytes(blob)
    check_audio(p)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.sampled_from([8000, 11025, 22050, 44100, 48000, 96000, 192000]),
       channels=st.integers(1, 4),
       kind=st.sampled_from(["silence", "clipped", "noise", "one_sample"]))
def test_valid_wavs_at_any_rate_and_layout_decode(rate: int, channels: int, kind: str, tmp_path: Path) -> None:
    n = 1 if kind == "one_sample" else rate // 4
    rng = np.random.default_rng(n)
    pcm = {"silence": np.zeros((n, channels)), "clipped": np.full((n, channels), 32767),
           "noise": rng.integers(-32768, 32767, (n, channels)), "one_sample": np.ones((n, channels))}[kind]
    p = tmp_path / "in.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    expected = round(n * 16000 / rate)
    if expected == 0:
        with pytest.raises(InputError, match="shorter than one sample"):
            read_audio_file(p, 16000)
        return
    out = read_audio_file(p, 16000)
    assert len(out) == expected and np.isfinite(out).all()
    if kind == "silence":
        assert not out.any()


@FUZZ
@given(samples=st.one_of(
    st.builds(np.zeros, st.integers(0, 100), st.sampled_from([np.int16, np.float32, np.int32, np.uint8])),
    st.builds(np.zeros, st.tuples(st.integers(0, 4), st.integers(0, 4)), st.sampled_from([np.int16, np.float32])),
), rate=st.one_of(st.integers(-10, 200_000)))
def test_audio_chunk_refuses_what_it_cannot_carry(samples: np.ndarray, rate: int) -> None:
    try:
        chunk = AudioChunk(samples, rate)
    except ValueError as e:
        assert "AudioChunk" in str(e)
    else:
        assert samples.ndim == 1 and samples.dtype == np.int16 and rate > 0
        assert math.isfinite(chunk.duration)


# --- portraits ---------------------------------------------------------------------------------------

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "HSV", "LAB", "RGBX"]
FORMATS = ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "ICO", "PPM", "TGA"]


def encoded(mode: str, fmt: str, w: int, h: int, seed: int) -> bytes | None:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # this format cannot hold this mode: not an input anyone can send
    return buf.getvalue()


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in flips:
        if b:
            b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


IMAGES = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda magic, rest: magic + rest,
              st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
                               b"II*\x00", b"MM\x00*", b"BM", b"\x00\x00\x01\x00", b"P6\n"]),
              st.binary(max_size=300)),
    st.builds(encoded, st.sampled_from(MODES), st.sampled_from(FORMATS), st.integers(1, 80), st.integers(1, 80),
              st.integers(0, 10)).filter(lambda b: b is not None).flatmap(
        lambda b: st.builds(mutate, st.just(b), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                         max_size=4), st.one_of(st.none(), st.integers(0, len(b))))),
)


@FUZZ
@given(data=IMAGES)
def test_any_bytes_load_as_an_rgb_image_or_a_portrait_error(data: bytes) -> None:
    try:
        img = load_image(data)
    except PortraitError as e:
        assert str(e).startswith("<bytes>")
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 32


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (a decompression bomb's header) with almost no data."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


@pytest.mark.parametrize(("w", "h"), [(20_000, 20_000), (100_000, 100), (2**31 - 1, 2**31 - 1), (9_000, 9_000)])
def test_huge_images_are_refused_before_decoding(w: int, h: int) -> None:
    with pytest.raises(PortraitError, match="too large|not a readable"):
        load_image(png_header_only(w, h))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=IMAGES, size=st.sampled_from([(64, 64), (854, 480), (66, 2000)]))
def test_analyze_portrait_raises_only_portrait_errors(data: bytes, size: tuple[int, int]) -> None:
    assume(len(data) > 0)
    with pytest.raises(UserError):  # random pictures have no face: PortraitError (a UserError)
        analyze_portrait(data, width=size[0], height=size[1])
