"""The soak's report (bench/soak.py): the JSON's content, the recording's A/V timing, the PNG and the
last line.

Memory growth is measured after the warm-up: the later of the first quarter of the run (at most
5 min) and the end of the opening (every path, fault and lazy pool has run once; at most half the
run). `rss_growth_mb_per_h` is the slope of RSS over the rest; the same slope is given for anonymous
memory, for what malloc has handed out (`malloc_used`, the program's own), for what it holds free
(`malloc_free`: freed but kept by the allocator) and for the Python heap. `rss_steps` lists every
one-second RSS jump of 4 MB or more with what happened around it. `rss_floor_growth_mb_per_h` is
the slope of the lowest RSS of each window of two `malloc_trim` periods (what the periodic release
brings RSS back to): robust to the swing between releases, labelled as such; the raw slope stays
the headline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

STEP_MB = 4.0


def build_report(soak: Any, before_start: dict[str, float], warm: dict[str, float], at_end: dict[str, float],
                 after_close: dict[str, float], snapshot: dict[str, Any], extra: dict[str, Any],
                 threads: dict[str, list[str]]) -> dict[str, Any]:
    """Everything the run measured (`soak`: the bench's `Soak` after its run)."""
    elapsed = time.monotonic() - soak.t0
    opened = float(warm.get("t", 0.0)) if soak.opened else 0.0
    settle = max(min(300.0, 0.25 * elapsed), min(opened, 0.5 * elapsed))
    samples: list[dict[str, float]] = soak.samples.rows()
    late = [x for x in samples if x["t"] >= settle]

    def slope(key: str, since: float | None = None) -> float:
        xs = late if since is None else [x for x in samples if x["t"] >= since]
        return slope_of(xs, key, least=10) or 0.0

    w = soak.watch
    lat = [r["first_audio"] for r in w.turns if r.get("first_audio") is not None and not r["interrupted"]]
    new_threads = sorted(set(threads["end"]) - set(threads["warm"]))
    return {
        "minutes": round(elapsed / 60, 2), "transport": soak.args.transport, "seed": soak.args.seed,
        "turns_answered": soak.answered, "turns_attempted": soak.asked, "turn_events": len(w.turns),
        "seconds_per_turn": round(elapsed / max(1, len(w.turns)), 1),
        "turns_failed": len(w.failed), "fault_questions": soak.fault_questions,
        "barge_ins": soak.barge, "faults": soak.injected, "faults_survived": soak.survived,
        "fault_log": soak.fault_log, "lost_samples": soak.ledger.lost,
        "lost_check": {"samples_compared": soak.ledger.checked, "turns_checked": soak.ledger.turns_checked,
                       "lossy_turns": soak.ledger.lossy_turns},
        "early_answers": snapshot.get("early_answers"),  # begun before the end of turn: adopted / cancelled
        "max_av_offset_ms": max((abs(x["av_offset_ms"]) for x in samples), default=0.0),
        "frames": {"written": snapshot.get("frames"), "dropped": snapshot.get("dropped"),
                   "repeated": snapshot.get("repeated"), "fps": soak.cfg.session.fps},
        "latency_first_audio_s": {"n": len(lat), "p50": float(np.median(lat)) if lat else None,
                                  "p90": float(np.percentile(lat, 90)) if lat else None,
                                  "max": max(lat, default=None)},
        "rss_growth_mb_per_h": slope("rss_mb"),
        "rss_growth_second_half_mb_per_h": slope("rss_mb", elapsed / 2),
        # RSS swings by tens of MB between the session's periodic malloc_trim releases, so a short
        # run's raw slope measures where in that swing it ended; the floor (the slope of the lowest
        # RSS in each window of two trim periods) is the robust reading, given beside it, not instead
        "rss_floor_growth_mb_per_h": floor_slope(late, "rss_mb", 2 * max(60.0, soak.cfg.session.malloc_trim_s)),
        "settle_s": round(settle, 1),
        "rss_after_warmup_mb": _percentiles([x["rss_mb"] for x in late]),
        "cpu_s_per_min_after_warmup": round(slope("cpu_s") / 60, 1),  # this process, all its threads
        # --trim-at-turn-end: the bench's malloc_trim after each answered turn (the session's own off)
        "bench_trims": {"n": len(soak.trims), "cpu_s_total": round(sum(c for c, _, _ in soak.trims), 3),
                        "cpu_ms": _percentiles([1000 * c for c, _, _ in soak.trims]),
                        "wall_ms": _percentiles([1000 * w for _, w, _ in soak.trims]),
                        "released_mb": _percentiles([r for _, _, r in soak.trims]),
                        # the slope of RSS right after each of those trims (after the warm-up): the post-trim floor
                        "rss_post_trim_growth_mb_per_h": slope_of([x for x in soak.post_trim if x["t"] >= settle],
                                                                   "rss_mb")} if soak.trims else None,
        "memory_growth_mb_per_h": {k: slope(k) for k in
                                   ("anon_mb", "malloc_used_mb", "malloc_free_mb", "malloc_mmap_mb", "traced_mb")},
        "heap_blocks_growth_per_h": round(slope("heap_blocks")),
        "rss_steps": rss_steps(samples, w.log, soak.t0),
        "heap_top_growth": soak.heap_top,
        "leaked_tasks": int(at_end["tasks"] - warm["tasks"]),
        "new_tasks": soak.new_tasks,  # names of tasks running at the end that were not at the baseline
        # threads Python only registers (`Dummy-N`: native threads, e.g. the LiveKit SDK's, that
        # called into Python) are not ours to end; they are listed under new_threads
        "leaked_threads": len(_own(threads["end"])) - len(_own(threads["warm"])),
        "leaked_fds": int(at_end["fds"] - warm["fds"]),
        "new_threads": new_threads,
        "fds_since_baseline": soak.fd_diff,
        "before_start": before_start, "warm": warm, "at_end": at_end, "after_close": after_close,
        "mqtt": {"connections": soak.control.connections, "accepted": soak.control.accepted,
                 "rejected": soak.control.rejected},
        "errors": {"count": w.n_errors, "last": list(w.errors)[-30:]},
        "turns": [{**r, "t": round(r["wall"] - soak.t0, 2)} for r in w.turns],
        "events": list(w.log), "transcript": list(w.texts)[-60:],
        "snapshot": snapshot, "transport_stats": extra, "samples": samples,
    }


def slope_of(xs: list[dict[str, float]], key: str, least: int = 3) -> float | None:
    """MB (or units) per hour: the least-squares slope of `key` over `xs` (None: fewer than `least`)."""
    xs = [x for x in xs if key in x]
    if len(xs) < least:
        return None
    return round(float(np.polyfit([x["t"] / 3600 for x in xs], [x[key] for x in xs], 1)[0]), 2)


def _percentiles(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    p = np.percentile(xs, [5, 50, 95])
    return {"p5": round(float(p[0]), 1), "p50": round(float(p[1]), 1), "p95": round(float(p[2]), 1),
            "max": round(float(max(xs)), 1)}


def floor_slope(samples: list[dict[str, float]], key: str, window_s: float) -> float | None:
    """MB/h: the slope of `key`'s minimum in each whole `window_s` window of `samples` (None: fewer
    than 3 whole windows)."""
    xs = [x for x in samples if key in x]
    if not xs:
        return None
    t0 = xs[0]["t"]
    lows: dict[int, dict[str, float]] = {}
    for x in xs:
        k = int((x["t"] - t0) // window_s)
        if k not in lows or x[key] < lows[k][key]:
            lows[k] = x
    whole = [lows[k] for k in sorted(lows) if (k + 1) * window_s <= xs[-1]["t"] - t0]
    return slope_of(whole, key)


def rss_steps(samples: list[dict[str, float]], log: Any, t0: float) -> list[dict[str, Any]]:
    """One-second RSS jumps of STEP_MB or more, with the allocator's view and the events around them."""
    out: list[dict[str, Any]] = []
    for a, b in zip(samples, samples[1:], strict=False):
        if b["rss_mb"] - a["rss_mb"] < STEP_MB:
            continue
        near = [f"{t - t0:.1f} {kind} {what[:60]}" for t, kind, what in log if abs(t - t0 - b["t"]) <= 3.0]
        out.append({"t": b["t"], "rss_mb": round(b["rss_mb"] - a["rss_mb"], 1),
                    **{k: round(b[k] - a[k], 1) for k in ("anon_mb", "malloc_used_mb", "malloc_free_mb",
                                                          "malloc_mmap_mb", "threads") if k in a and k in b},
                    "events": near[-8:]})
    return out[-40:]


def _own(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith("Dummy-")]


def mp4_timing(path: Path) -> dict[str, Any]:
    """The recording's own A/V timing (packets demuxed, nothing decoded): where the audio track and
    the video track end, and how many frames it holds. Drift over an hour shows here."""
    import av

    v_end = a_end = 0.0
    frames = 0
    with av.open(str(path)) as c:
        vs, aud = c.streams.video[0], c.streams.audio[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        for pkt in c.demux(vs, aud):
            if pkt.pts is None or pkt.time_base is None:
                continue
            t = float(pkt.pts * pkt.time_base)
            if pkt.stream.type == "video":
                frames += 1
                v_end = max(v_end, t + 1.0 / fps)
            else:
                a_end = max(a_end, t + float((pkt.duration or 0) * pkt.time_base))
    return {"video_end_s": round(v_end, 3), "audio_end_s": round(a_end, 3), "frames": frames,
            "end_offset_ms": round((a_end - v_end) * 1000, 1)}


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples = report["samples"]
    xs = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    axes[0].plot(xs, [s["rss_mb"] for s in samples], label="RSS")
    if samples and "malloc_used_mb" in samples[0]:
        base = samples[0]["rss_mb"] - samples[0]["malloc_used_mb"]
        axes[0].plot(xs, [s["malloc_used_mb"] + base for s in samples], label="malloc in use (+ offset)")
        axes[0].legend()
    axes[0].axvline(report["settle_s"] / 60, color="green", lw=0.8)
    axes[0].set_ylabel("MB")
    axes[1].plot(xs, [s["av_offset_ms"] for s in samples])
    axes[1].set_ylabel("A/V offset (ms)")
    turns = [r for r in report["turns"] if r.get("first_audio") is not None and not r["interrupted"]]
    axes[2].plot([r["t"] / 60 for r in turns], [r["first_audio"] for r in turns], "o", ms=3)
    axes[2].set_ylabel("first audio after\nend of speech (s)")
    axes[3].plot(xs, [s["fps"] for s in samples], label="written")
    if samples and "rx_fps" in samples[0]:
        axes[3].plot(xs, [s["rx_fps"] for s in samples], label="received (LiveKit server)")
        axes[3].legend()
    axes[3].set_ylabel("fps")
    axes[-1].set_xlabel("minutes")
    for f in report["fault_log"]:
        for ax in axes:
            ax.axvline(f["t"] / 60, color="red" if not f["survived"] else "grey", lw=0.6, alpha=0.5)
    fig.suptitle(f"soak {report['minutes']} min ({report['transport']}); grey/red lines: faults survived/not; "
                 "green: end of warm-up")
    fig.tight_layout()
    fig.savefig(path)
    return True


def summary_line(r: dict[str, Any]) -> str:
    b, f, s = r["barge_ins"], r["faults"], r["faults_survived"]
    return (f"soak minutes={r['minutes']:g} turns={r['turns_answered']}/{r['turns_attempted']} "
            f"barge_ins={b['honoured']}/{b['attempted']} faults={sum(s.values())}/{sum(f.values())} "
            f"lost_samples={r['lost_samples']} max_av_offset_ms={r['max_av_offset_ms']:.0f} "
            f"rss_growth_mb_per_h={r['rss_growth_mb_per_h']} leaked_tasks={r['leaked_tasks']} "
            f"leaked_threads={r['leaked_threads']} leaked_fds={r['leaked_fds']}")
