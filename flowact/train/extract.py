"""Training data from a user's own talking videos: per-frame motion + aligned audio features.

Pipeline per video: PyAV decodes video frames (with their timestamps) and the audio (resampled to
16 kHz mono); MediaPipe face mesh (tracking mode, `FaceMeshTracker`; any `LandmarkFn` can be
plugged in) gives 478 landmarks per frame; `landmark_measures` turns them into scale-free
geometry; `measures_to_motion` calibrates against the video's own rest pose and maps them onto
`MOTION_PARAMS`; everything is resampled onto the `fps` grid and paired with
`flowact.audio.frame_features` (log-mel + energy) and audio-derived visemes; clips are written as
sharded `.npz` (`flowact.train.dataset.save_shard`).

Mapping (documented constants, in units of the eye-centre distance `eye_d`):
- jaw_open: inner-lip gap (13-14) above the video's 5th percentile, / 0.45 (0.45 eye_d = wide open)
- mouth_wide / mouth_round: lip-corner distance (61-291) above / below its median, / 0.25 / 0.2
- smile: lip corners raised relative to the lip centre, above median, / 0.08
- brow_raise: brow-to-eye height vs median, / 0.12 (-1..1)
- blink_l/r: eye aspect ratio vs the video's open-eye level (90th percentile): 1 - ear / open, / 0.75
- head yaw/roll/pitch: degrees from landmark geometry (eye-corner depth difference, eye line,
  forehead-chin depth difference), relative to the median pose
- gaze_x/y: iris centre offset in the eye opening (refined landmarks 468/473), relative to median
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from flowact.audio import frame_features
from flowact.errors import ModelError
from flowact.motion.learned import STATES
from flowact.motion.params import MOTION_DIM, P, clamp_motion
from flowact.motion.visemes import visemes_from_audio
from flowact.train.dataset import Clip, save_shard
from flowact.types import EXPRESSIONS, AgentState, FloatArray, UInt8Array

__all__ = [
    "FaceMeshTracker", "LandmarkFn", "decode_audio", "decode_video", "extract", "extract_video",
    "landmark_measures", "measures_to_motion",
]

log = logging.getLogger("flowact.train.extract")
LandmarkFn = Callable[[UInt8Array], "np.ndarray | None"]
SR = 16000
MEASURES = ("mouth_open", "mouth_width", "ear_l", "ear_r", "brow", "smile", "yaw", "pitch", "roll", "iris_x", "iris_y")


class FaceMeshTracker:
    """MediaPipe face mesh in video (tracking) mode: RGB frame -> (478, 3) pixels, or None."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=0.5, min_tracking_confidence=0.5,
        )

    def __call__(self, frame: UInt8Array) -> np.ndarray | None:
        h, w = frame.shape[:2]
        res = self._mesh.process(np.ascontiguousarray(frame))
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float32)

    def close(self) -> None:
        self._mesh.close()


def landmark_measures(lm: np.ndarray) -> FloatArray:
    """Scale-free geometry (len(MEASURES),) from 478 face-mesh landmarks in pixels."""
    def d(a: int, b: int) -> float:
        return float(np.linalg.norm(lm[a, :2] - lm[b, :2]))

    le, re = lm[[33, 133], :2].mean(0), lm[[362, 263], :2].mean(0)
    eye_d = max(float(np.linalg.norm(re - le)), 1e-3)
    lip_c = (lm[13, :2] + lm[14, :2]) / 2
    corners_y = (lm[61, 1] + lm[291, 1]) / 2
    brow = ((le[1] - lm[105, 1]) + (re[1] - lm[334, 1])) / 2
    roll = np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0]))
    yaw = np.degrees(np.arctan2(lm[263, 2] - lm[33, 2], lm[263, 0] - lm[33, 0]))
    pitch = np.degrees(np.arctan2(lm[152, 2] - lm[10, 2], lm[152, 1] - lm[10, 1]))
    if len(lm) >= 478:
        eye_w = max(d(33, 133), 1e-3)
        iris = (lm[468, :2] - le + lm[473, :2] - re) / 2
        iris_x, iris_y = iris[0] / eye_w, iris[1] / eye_w
    else:
        iris_x = iris_y = 0.0
    return np.array([
        d(13, 14) / eye_d, d(61, 291) / eye_d, d(159, 145) / max(d(33, 133), 1e-3),
        d(386, 374) / max(d(362, 263), 1e-3), brow / eye_d, (lip_c[1] - corners_y) / eye_d,
        yaw, pitch, roll, iris_x, iris_y,
    ], dtype=np.float32)


def measures_to_motion(meas: FloatArray) -> FloatArray:
    """(n, len(MEASURES)) -> (n, MOTION_DIM), calibrated on the clip itself (module docstring)."""
    m = {k: meas[:, i] for i, k in enumerate(MEASURES)}
    med = {k: float(np.median(v)) for k, v in m.items()}
    out = np.zeros((len(meas), MOTION_DIM), np.float32)
    out[:, P["jaw_open"]] = np.clip((m["mouth_open"] - np.percentile(m["mouth_open"], 5)) / 0.45, 0, 1)
    out[:, P["mouth_wide"]] = np.clip((m["mouth_width"] - med["mouth_width"]) / 0.25, 0, 1)
    out[:, P["mouth_round"]] = np.clip((med["mouth_width"] - m["mouth_width"]) / 0.2, 0, 1)
    out[:, P["smile"]] = np.clip((m["smile"] - med["smile"]) / 0.08, 0, 1)
    out[:, P["brow_raise"]] = np.clip((m["brow"] - med["brow"]) / 0.12, -1, 1)
    for side, key in (("l", "ear_l"), ("r", "ear_r")):
        open_level = max(float(np.percentile(m[key], 90)), 1e-3)
        out[:, P[f"blink_{side}"]] = np.clip((1 - m[key] / open_level) / 0.75, 0, 1)
    for name in ("yaw", "pitch", "roll"):
        out[:, P[f"head_{name}"]] = m[name] - med[name]
    out[:, P["gaze_x"]] = np.clip((m["iris_x"] - med["iris_x"]) / 0.15, -1, 1)
    out[:, P["gaze_y"]] = np.clip((m["iris_y"] - med["iris_y"]) / 0.1, -1, 1)
    return clamp_motion(out)


def decode_video(path: str | Path, max_side: int = 640) -> Iterator[tuple[float, UInt8Array]]:
    """(time in seconds, RGB frame) for every video frame, downscaled so max side <= max_side."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ModelError(f"{path}: no video stream")
        stream = c.streams.video[0]
        scale = min(1.0, max_side / max(stream.codec_context.width, stream.codec_context.height, 1))
        w = int(stream.codec_context.width * scale) // 2 * 2
        h = int(stream.codec_context.height * scale) // 2 * 2
        for frame in c.decode(stream):
            if frame.time is None:
                continue
            img: UInt8Array = np.asarray(frame.to_ndarray(format="rgb24", width=w, height=h), dtype=np.uint8)
            yield float(frame.time), img


def decode_audio(path: str | Path) -> FloatArray:
    """The first audio stream as mono float32 at 16 kHz (empty if the file has no audio)."""
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return np.zeros(0, np.float32)
        rs = av.AudioResampler(format="flt", layout="mono", rate=SR)
        for frame in c.decode(c.streams.audio[0]):
            chunks.extend(f.to_ndarray().reshape(-1) for f in rs.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in rs.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def extract_video(
    path: str | Path, fps: int = 25, landmarks: LandmarkFn | None = None, max_missing: float = 0.3
) -> Clip:
    """One training clip from one talking video (see module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"video not found: {p}")
    tracker = None
    if landmarks is None:
        tracker = FaceMeshTracker()
        landmarks = tracker
    times, rows = [], []
    try:
        for t, frame in decode_video(p):
            lm = landmarks(frame)
            times.append(t)
            rows.append(landmark_measures(lm) if lm is not None else np.full(len(MEASURES), np.nan, np.float32))
    except ModelError:
        raise
    except Exception as e:  # PyAV/FFmpeg errors on corrupt input
        raise ModelError(f"{p}: cannot decode video ({e})") from e
    finally:
        if tracker is not None:
            tracker.close()
    if len(rows) < 2:
        raise ModelError(f"{p}: too few video frames ({len(rows)})")
    meas = np.stack(rows)
    ok = ~np.isnan(meas[:, 0])
    if ok.mean() < 1 - max_missing:
        raise ModelError(f"{p}: no face found in {100 * (1 - ok.mean()):.0f}% of frames")
    tt = np.asarray(times)
    n = int(np.floor((tt[-1] - tt[0]) * fps)) + 1
    grid = tt[0] + np.arange(n) / fps
    meas_grid = np.stack([np.interp(grid, tt[ok], meas[ok, i]) for i in range(meas.shape[1])], axis=1)
    motion = measures_to_motion(meas_grid)
    audio = decode_audio(p)
    start = int(round(tt[0] * SR))
    audio = audio[start:] if start < len(audio) else np.zeros(0, np.float32)
    mel, energy = frame_features(audio, SR, fps, n)
    vis = visemes_from_audio(mel, energy).astype(np.float32)
    state = np.where(energy > 0.35, STATES.index(AgentState.SPEAKING), STATES.index(AgentState.LISTENING))
    return Clip(motion=motion, mel=mel, energy=energy, visemes=vis,
                expressions=np.zeros((n, len(EXPRESSIONS)), np.float32), state=state.astype(np.int64), fps=fps)


def extract(
    videos: list[str | Path], out_dir: str | Path, fps: int = 25, shard_frames: int = 25 * 60 * 5,
    landmarks: LandmarkFn | None = None,
) -> list[Path]:
    """Extract every video and write shards of about `shard_frames` frames; returns the shard paths."""
    out = Path(out_dir).expanduser()
    shards: list[Path] = []
    pending: list[Clip] = []
    for v in videos:
        clip = extract_video(v, fps, landmarks)
        log.info("%s: %d frames", v, len(clip))
        pending.append(clip)
        if sum(len(c) for c in pending) >= shard_frames:
            shards.append(save_shard(out / f"shard-{len(shards):05d}.npz", pending))
            pending = []
    if pending:
        shards.append(save_shard(out / f"shard-{len(shards):05d}.npz", pending))
    return shards
