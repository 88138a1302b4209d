"""What the user feels: last word -> first avatar audio, over fresh sessions on the offline stack.

Runs `--sessions` fresh sessions in this process (real engines from the config, real clock, the
spoken-script input: a synthetic user voice played in real time), each through the questions of
`--script`, so first turns of fresh sessions are part of the sample. For every answered turn it
prints what the user feels, counted from the acoustic end of their speech (the VAD's last voiced
frame): `heard` (first audible avatar audio written to the sink) and `seen` (first speaking frame),
then the breakdown from the endpoint decision (ASR final, LLM first token, TTS first audio).
The last line has a fixed form, to compare runs:

    last_word_to_first_audio_s p50=0.93 p95=1.41 n=24 first_turn_p50=0.97 dropped_frames=0

`--set KEY=VALUE` overrides the config (dotted keys, YAML values, repeatable), e.g.
`--set session.frames_per_chunk=2`. On a busy machine compare two settings with `--ab KEY=VALUE`:
sessions alternate between the config as given (A) and with the `--ab` overrides (B), so both see
the same load; one summary line per variant is printed, B's last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("endpoint_s", "asr_final", "llm_request", "llm_first_token", "first_piece", "tts_first_audio",
          "first_audio", "heard_s", "seen_s")
# what each stage adds after the one before it (the breakdown of heard_s): the endpoint wait, ASR after
# the endpoint, preparation (knowledge base) before the LLM call, the LLM's first token, the rest of the
# first clause's tokens, its synthesis, and the media path to the first audible sample written
STEPS = (("endpoint", None, "endpoint_s"), ("asr", None, "asr_final"), ("prep", "asr_final", "llm_request"),
         ("llm", "llm_request", "llm_first_token"), ("clause", "llm_first_token", "first_piece"),
         ("tts", "first_piece", "tts_first_audio"), ("media", "tts_first_audio", "first_audio"))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> config overrides (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set/--ab: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


# piper's voice is the same audio for the same line in every fresh session (its noise is seeded alike), so
# one unlucky rendering would be misheard in every session: the sessions cycle through three speaking rates
VOICE_LENGTH_SCALES = (1.1, 1.0, 1.2)


async def one_session(config: str, script: str, output: str, overrides: dict[str, Any] | None = None,
                      length_scale: float = VOICE_LENGTH_SCALES[0]) -> dict[str, Any]:
    from agent import AgentSession, load_config
    from agent.transcript import TranscriptLog

    cfg = load_config(config, overrides={
        **(overrides or {}),
        # the user's voice is synthesized by piper too: on a busy box it needs more than 30 s a line
        "input": {"type": "spoken_script", "path": script, "voice": {"type": "piper", "length_scale": length_scale,
                                                                      "timeout_s": 180}},
        "sink": {"type": "file", "path": output},
    })
    session = AgentSession(cfg)
    heard = TranscriptLog(echo=None)  # what was heard and answered: a misheard question is a wrong answer
    session.add_observer(heard)
    async with session:
        await session.run_until_done(tail_s=0.5)
    m = session.metrics
    return {"turns": m.turn_table(), "snapshot": m.snapshot(), "warmup_s": m.warmup_s, "lines": heard.lines}


def steps(rows: list[dict[str, Any]], a: str | None, b: str) -> list[float]:
    """Per turn, stage `b` less stage `a` (or `b` itself)."""
    return [float(r[b]) - (float(r[a]) if a else 0.0) for r in rows if b in r and (a is None or a in r)]


def summary(rows: list[dict[str, Any]], dropped: int) -> str:
    heard = [float(r["heard_s"]) for r in rows]
    first = [float(r["heard_s"]) for r in rows if r["first"]]
    return (f"last_word_to_first_audio_s p50={pct(heard, 50):.2f} p95={pct(heard, 95):.2f} n={len(heard)} "
            f"first_turn_p50={pct(first, 50):.2f} dropped_frames={dropped}")


async def main(args: argparse.Namespace) -> int:
    if args.log_early:  # each early answer's fate and the end of turn against the early transcript
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        for name in ("agent.conversation", "agent.listening"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    base = parse_sets(args.set)
    variants = {"": base} if not args.ab else {"A": base, "B": {**base, **parse_sets(args.ab)}}
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    dropped = dict.fromkeys(variants, 0)
    max_av = 0.0
    for i in range(args.sessions):
        name = list(variants)[i % len(variants)]
        out = str(Path(args.output).with_name(f"{Path(args.output).stem}-{i}.mp4"))
        scale = VOICE_LENGTH_SCALES[i // len(variants) % len(VOICE_LENGTH_SCALES)]  # each variant hears all rates
        res = await one_session(args.config, args.script, out, variants[name], scale)
        snap = res["snapshot"]
        dropped[name] += int(snap["dropped"])
        max_av = max(max_av, abs(float(snap["av_offset_ms"])))
        answered = [t for t in res["turns"] if t.get("speech_s", 0) > 0 and "heard_s" in t]
        label = f"session {i}{f' ({name})' if name else ''}"
        for k, t in enumerate(answered):
            rows[name].append({"session": i, "first": k == 0, **t})
            cells = "  ".join(f"{s}={t[s]:.3f}" for s in STAGES if s in t)
            print(f"{label} turn {t['turn']}{' (first)' if k == 0 else ''}: {cells}", flush=True)
        print("\n".join(f"  {role:>5}: {text}" for role, text in res["lines"]))
        print(f"{label} (voice length_scale {scale}): warm-up {res['warmup_s']} s, frames dropped {snap['dropped']}, "
              f"repeated {snap['repeated']}, A/V offset {snap['av_offset_ms']} ms, early ASR {snap['early_asr']}, "
              f"early answers {snap['early_answers']}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
              flush=True)
    for name, vrows in rows.items():
        print(f"\n{name + ': ' if name else ''}median per stage (s; endpoint_s from the last word, "
              "the others from the endpoint decision):")
        print("  " + json.dumps({s: round(pct([float(r[s]) for r in vrows if s in r], 50), 3) for s in STAGES}))
        print("  each stage's own time, median (s): " + json.dumps(
            {name: round(pct(steps(vrows, a, b), 50), 3) for name, a, b in STEPS}))
    print(f"max |A/V offset| {max_av:.1f} ms over {args.sessions} sessions")
    for name, vrows in rows.items():
        print(f"{name + ': ' if name else ''}{summary(vrows, dropped[name])}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "local.yaml"))
    ap.add_argument("--script", default=str(ROOT / "configs" / "bench_script.yaml"))
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--output", default=str(ROOT / "out" / "bench_pipeline.mp4"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--ab", action="append", default=[], metavar="KEY=VALUE",
                    help="B variant's overrides: sessions alternate A (as configured) and B")
    ap.add_argument("--log-early", action="store_true",
                    help="log each early answer (begun, adopted, cancelled and why) and each end of turn's "
                    "early transcript (ready, still running, of other speech)")
    sys.exit(asyncio.run(main(ap.parse_args())))
