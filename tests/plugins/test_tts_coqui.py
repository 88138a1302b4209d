"""CoquiTTS for real: a tiny VITS built from `VitsConfig` with random weights (no download), saved as a
Coqui checkpoint and loaded through Coqui's own path, runs in `.venv-coqui` (torch 2.9.1 + coqui-tts;
Coqui does not load beside this venv's torch 2.13). Random weights give noise-like audio, so the
assertions are on the code path: sentence chunks, session-rate resampling, duration-derived
timings that follow the text and span the audio, speakers. In this venv: a clear ConfigError."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.registry import load_plugin
from plugins.tts_coqui import CoquiTTS, CoquiTTSConfig, split_sentences

ROOT = Path(__file__).resolve().parents[2]
# `make coqui` (run by `make test`) builds the venv once per machine and exports FLOWACT_COQUI_PYTHON.
COQUI_PY = Path(os.environ.get("FLOWACT_COQUI_PYTHON") or ROOT / ".venv-coqui" / "bin" / "python")
WORKER = ROOT / "tests" / "fixtures" / "coqui_worker.py"
TEXT = "Hello there. How are you doing today?"


def coqui_ready() -> bool:
    if not COQUI_PY.exists():
        return False
    r = subprocess.run([str(COQUI_PY), "-c", "import TTS.api"], capture_output=True, timeout=120)
    return r.returncode == 0


needs_coqui = pytest.mark.skipif(
    not coqui_ready(),
    reason=f"no Coqui venv at {COQUI_PY} (`make coqui` builds it: torch 2.9.1 + torchaudio 2.9 + coqui-tts 0.28)",
)


def run_worker(tmp: Path, rate: int, text: str, speaker: str = "", speakers: int = 0) -> subprocess.Popen[str]:
    args = [str(COQUI_PY), str(WORKER), "synth", str(tmp), str(rate), text, speaker, str(speakers)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def result(p: subprocess.Popen[str]) -> dict:  # type: ignore[type-arg]
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_in_this_venv_coqui_is_a_clear_config_error() -> None:
    cls = load_plugin("tts", "coqui")
    assert cls is CoquiTTS
    with pytest.raises(ConfigError, match=r"torch 2\.9\.1.*\.venv-coqui"):
        CoquiTTS(CoquiTTSConfig(model_path="/nonexistent/model.pth"))
    with pytest.raises(ValueError, match="exactly one of model_name or model_path"):
        CoquiTTSConfig()


def test_sentence_split() -> None:
    assert split_sentences(" Hi there!  How are you? Fine.") == ["Hi there!", "How are you?", "Fine."]
    assert split_sentences("   ") == []


@needs_coqui
def test_tiny_vits_synthesizes_sentences_with_timings(tmp_path: Path) -> None:
    jobs = {
        "24k": run_worker(tmp_path / "a", 24000, TEXT),
        "16k": run_worker(tmp_path / "b", 16000, TEXT),
        "spk": run_worker(tmp_path / "c", 16000, "One speaker.", "spk1", 2),
        "nospk": run_worker(tmp_path / "d", 16000, "One speaker.", "", 2),
    }
    res = {k: result(p) for k, p in jobs.items()}

    chunks = res["24k"]["chunks"]
    assert [c["text"] for c in chunks] == ["Hello there.", "How are you doing today?"]  # one chunk per sentence
    for c in chunks:
        assert c["rate"] == 24000 and c["samples"] > 2400 and c["rms"] > 1e-3
        dur = c["samples"] / 24000
        ph = c["phonemes"]
        # character model: one timing per letter, in text order (blanks/spaces/punctuation are pauses)
        assert "".join(p[0] for p in ph) == re.sub(r"[^a-z]", "", c["text"].lower())
        starts = [p[1] for p in ph]
        assert starts == sorted(starts) and all(p[2] > 0 for p in ph)
        assert all(a[1] + a[2] <= b[1] + 1e-6 for a, b in zip(ph, ph[1:], strict=False))  # no overlap
        assert 0 <= ph[0][1] < 0.2 * dur and dur - 0.1 < ph[-1][1] + ph[-1][2] <= dur + 0.02
    assert chunks[1]["samples"] > chunks[0]["samples"]  # the longer sentence lasts longer

    # resampled to the session rate: same speech, 2/3 the samples, same timings
    low = res["16k"]["chunks"]
    for a, b in zip(chunks, low, strict=True):
        assert b["rate"] == 16000 and abs(b["samples"] - a["samples"] * 2 / 3) <= 2
        assert [p[0] for p in a["phonemes"]] == [p[0] for p in b["phonemes"]]

    stats = res["24k"]["stats"]
    assert stats["calls"] == 1 and stats["items"] == 2 and stats["audio_out_s"] > 0.5 and stats["errors"] == 0

    # a stream closed after its first sentence synthesizes nothing more
    cancel = res["24k"]["cancel"]
    assert cancel["first"] == "Hello there." and cancel["items"] == 1

    # multi-speaker: a named speaker synthesizes; none named is a clear config error
    assert res["spk"]["chunks"][0]["samples"] > 0
    assert "speaker" in res["nospk"]["config_error"] and "spk0" in res["nospk"]["config_error"]
