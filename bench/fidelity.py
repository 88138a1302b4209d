"""Fidelity of the animated portrait, scored by models nobody on the project wrote: dlib's 68-point
landmarks and 128-d face descriptor (CC0 models from `face_recognition_models`, run by the prebuilt
`dlib-bin` wheel) and BRISQUE (the `brisque` package's SVR model), all offline. One row per portrait.

Run: .venv/bin/python bench/fidelity.py [--minutes 10] [--head] [--dir FOLDER ...] [--only NAME ...] [--explain]

Per portrait: the real PortraitGenerator (procedural motion) animates espeak-ng speech (the project's
engine plugin) with pauses between sentences, at 854x480, 25 fps; with `--head`, also the head pose,
blinks and gaze the control builder adds (`ProceduralDynamics`), else the face's own motion alone.
- identity: dlib descriptor distance of rendered frames to the reference's (the framed portrait):
  mean and max over frames spread across a stream of `--minutes` (the speech repeats; only the
  scored frames are rendered, the motion model steps through the rest: the renderer is stateless per
  frame, and no frame is kept once scored), first vs last frame's descriptors (`1st-lst`), and for
  streams of 2 minutes or more the mean over the first minute and over the last (`min 1`, `last`)
  (dlib calls < 0.6 the same person). Goal: mean <= 0.2, max <= 0.4. `floor`: the reference read
  against itself moved rigidly by a pixel or a degree (the scorer's own noise on that face).
- lip sync: Pearson r between the inner-lip aperture (dlib landmarks) of every frame and the audio
  envelope (RMS per frame), at lag 0 and at the best lag within +-200 ms. Goal: r >= 0.5 at |lag| <= 40 ms.
- rest vs speech: mean inner-lip aperture (eye distances) in the pauses vs while speaking.
  Goal: rest <= half of speech.
- quality: BRISQUE of the face region (lower is better; the reference's own score beside it).
Portraits the generator refuses (several faces, turned too far) are listed with the reason.

`--explain` instead shows what drives the identity distance of open-mouth portraits, on single frames
(distance to the reference): the rest frame; the reference with only the mouth box taken from the rest
frame; the rest frame with the reference's mouth box put back; the rest frame described with the
reference's landmarks (content alone, no change of dlib's alignment); the mouth closed part of the
way (75% .. 0% of the photo's gap, 0% being the photo's own mouth back); and, for scale, real photos
of one man with different expressions.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FPS, SR = 25, 16000
SENTENCES = (
    "Thanks for waiting. Your order ships today.",
    "It should arrive by Friday, before the weekend.",
    "Is there anything else I can help you with?",
)
PAUSE_S = 1.2


@dataclass
class Row:
    name: str
    refused: str = ""
    id_mean: float = float("nan")
    id_max: float = float("nan")
    id_first_last: float = float("nan")
    id_first_min: float = float("nan")  # identity mean over the stream's first minute (streams >= 2 min)
    id_last_min: float = float("nan")  # and over its last minute
    r0: float = float("nan")
    best_r: float = float("nan")
    best_lag_ms: float = float("nan")
    rest: float = float("nan")
    speech: float = float("nan")
    brisque: float = float("nan")
    brisque_ref: float = float("nan")
    floor: float = float("nan")  # the scorer's own floor on this portrait (Scorer.floor)


class Scorer:
    """dlib face detector, 68-point landmarks, face descriptor; BRISQUE."""

    def __init__(self) -> None:
        import dlib

        spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pip install face-recognition-models==0.3.0 dlib-bin (the `fidelity` extra)")
        self.models = models = Path(list(spec.submodule_search_locations)[0]) / "models"
        self.cnn: Any = None
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
        self.descriptor = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        from brisque import BRISQUE

        self.brisque = BRISQUE(url=False)
        self.rect: Any = None
        self.hog = True  # whether the reference's face was found by the HOG detector (else by the CNN)

    def find(self, img: np.ndarray) -> bool:
        """Detect the face in the reference; frames are then tracked from this box. dlib's HOG detector
        sees faces turned up to about 20 degrees; beyond, its CNN detector (the same package's model)."""
        faces = self.detector(img, 1)
        self.hog = bool(faces)
        if not faces:
            import dlib

            if self.cnn is None:
                self.cnn = dlib.cnn_face_detection_model_v1(str(self.models / "mmod_human_face_detector.dat"))
            faces = [d.rect for d in self.cnn(img, 0)]
        if not faces:
            return False
        self.rect = max(faces, key=lambda r: r.area())
        return True

    def track(self, img: np.ndarray) -> Any:
        """The face's box in this frame: dlib's detector re-run on a crop around the last box (fast);
        the last box if it finds none there. A face only the CNN sees keeps the reference's box: a HOG
        box found on some frame is framed differently, and the descriptor and landmarks move with it
        (the turned Einstein read 0.33 from the reference and lip sync 0.37 when they did)."""
        import dlib

        r = self.rect
        if not self.hog:
            return r
        pad = max(r.width(), r.height())
        x0, y0 = max(0, r.left() - pad), max(0, r.top() - pad)
        x1, y1 = min(img.shape[1], r.right() + pad), min(img.shape[0], r.bottom() + pad)
        found = [dlib.rectangle(f.left() + x0, f.top() + y0, f.right() + x0, f.bottom() + y0)
                 for f in self.detector(np.ascontiguousarray(img[y0:y1, x0:x1]), 0)]
        f = self._same_face(found)
        if f is not None:
            self.rect = f
        return self.rect

    def _same_face(self, found: list[Any]) -> Any:
        """Of the faces detected in a frame, the one that is the tracked face (the box overlapping the
        last one most, at least 30% IoU), or None: another person beside the portrait's face (a group
        photo's neighbour at the frame's edge) is never scored in its place."""
        r = self.rect

        def iou(q: Any) -> float:
            both = q.intersect(r)
            inter = both.area() if both.width() > 0 and both.height() > 0 else 0
            return float(inter) / float(q.area() + r.area() - inter)

        best = max(found, key=iou, default=None)
        return best if best is not None and iou(best) >= 0.3 else None

    def landmarks(self, img: np.ndarray) -> np.ndarray:
        s = self.shape(img, self.track(img))
        return np.array([(p.x, p.y) for p in s.parts()], np.float32)

    def identity(self, img: np.ndarray) -> np.ndarray:
        """The 128-d descriptor, from a full detection (as for the reference: the descriptor is
        sensitive to the box, so every scored image is boxed the same way) of the tracked face."""
        faces = list(self.detector(img, 1)) if self.hog else []
        rect = self._same_face(faces) or self.rect
        return np.array(self.descriptor.compute_face_descriptor(img, self.shape(img, rect)), np.float32)

    def floor(self, ref: np.ndarray, ref_id: np.ndarray) -> float:
        """The identity distance of the reference from itself moved rigidly (shifted 0.5-2 px, turned
        1-3 degrees in the image plane, bilinear): what a renderer that only moved the photo would
        read. dlib reads some photos far from themselves this way (up to 0.26 for the turned Einstein;
        0.09-0.17 for Grace Hopper while her photo was turned to level her eyes, 0.07 upright; 0.02-0.05
        for most): beside `id mean`, how much of it is the scorer's own noise on that face; the goals
        are not adjusted by it."""
        import cv2

        h, w = ref.shape[:2]
        c = ((self.rect.left() + self.rect.right()) / 2, (self.rect.top() + self.rect.bottom()) / 2)
        moves = [np.float32([[1, 0, dx], [0, 1, dy]]) for dx, dy in ((0.5, 0.25), (1.0, 0.5), (2.0, 1.0))]
        moves += [cv2.getRotationMatrix2D(c, a, 1.0) for a in (1.0, -2.0, 3.0)]
        return float(np.mean([np.linalg.norm(self.identity(cv2.warpAffine(ref, m, (w, h), flags=cv2.INTER_LINEAR,
                                                                         borderMode=cv2.BORDER_REFLECT)) - ref_id)
                              for m in moves]))

    def quality(self, img: np.ndarray) -> float:
        """BRISQUE of the face region (1.6x the face box). The package's score() trips on numpy 2
        (its features are 1-element arrays), so its own steps are called with the features flattened."""
        import cv2
        import skimage.color

        r = self.rect
        cx, cy, half = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2, 0.8 * max(r.width(), r.height())
        y0, y1 = int(max(0, cy - half)), int(min(img.shape[0], cy + half))
        x0, x1 = int(max(0, cx - half)), int(min(img.shape[1], cx + half))
        g = skimage.color.rgb2gray(img[y0:y1, x0:x1])
        half_g = cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        feats = [*self.brisque.calculate_brisque_features(g, 7, 7 / 6),
                 *self.brisque.calculate_brisque_features(half_g, 7, 7 / 6)]
        return float(self.brisque.calculate_image_quality_score(np.array([float(np.ravel(f)[0]) for f in feats])))


def inner_aperture(lm: np.ndarray) -> float:
    """dlib 68: inner lips 60-67; the mean gap of the three inner pairs over the eye distance."""
    gap = np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    eye_d = np.linalg.norm(lm[36:42].mean(axis=0) - lm[42:48].mean(axis=0))
    return float(gap / eye_d)


async def speech() -> np.ndarray:
    """The sentences with pauses between them, 16 kHz int16 (espeak-ng through the engine plugin)."""
    from plugins.tts_espeak import EspeakTTS

    tts = EspeakTTS(sample_rate=SR)
    parts = [np.zeros(int(PAUSE_S * SR), np.int16)]
    for text in SENTENCES:
        parts += [c.audio.samples async for c in tts.synthesize(text)]
        parts.append(np.zeros(int(PAUSE_S * SR), np.int16))
    return np.concatenate(parts).astype(np.int16)


def controls(pcm: np.ndarray, start_index: int = 0, head: bool = False) -> tuple[list[Any], np.ndarray]:
    """ControlChunks (5 frames each) for the speech: features and visemes from the audio alone; and
    the per-frame envelope. `head`: head pose, blinks and gaze as the control builder writes them
    (`ProceduralDynamics`, seeded); else none (the face's own motion alone)."""
    from flowact.audio import frame_features, int16_to_float
    from flowact.motion.procedural import ProceduralDynamics
    from flowact.motion.visemes import visemes_from_audio
    from flowact.types import EXPRESSIONS, AgentState, ControlChunk

    hop = SR // FPS
    n = len(pcm) // hop // 5 * 5
    mel, energy = frame_features(int16_to_float(pcm[: n * hop]), SR, FPS, n)
    vis = visemes_from_audio(mel, energy)
    out = []
    dyn = ProceduralDynamics(FPS, seed=1)
    for k in range(n // 5):
        sl = slice(5 * k, 5 * k + 5)
        talking = bool(energy[sl].max() > 0.05)
        state = AgentState.SPEAKING if talking else AgentState.LISTENING
        pose, blink, gaze = dyn.step(5, energy[sl], state)
        if not head:
            pose, blink, gaze = np.zeros_like(pose), np.zeros_like(blink), np.zeros_like(gaze)
        out.append(ControlChunk(
            index=start_index + k, pts=(start_index + k) * 5 / FPS, fps=FPS, n_frames=5, sample_rate=SR,
            audio=pcm[5 * k * hop : (5 * k + 5) * hop], mel=mel[sl], energy=energy[sl], visemes=vis[sl],
            expressions=np.zeros((5, len(EXPRESSIONS)), np.float32), head_pose=pose, blink=blink, gaze=gaze,
            state=state,
        ))
    return out, energy


def lag_corr(a: np.ndarray, e: np.ndarray, max_lag: int = 5) -> tuple[float, float, int]:
    """(r at lag 0, best r, its lag in frames; + = the mouth follows the sound)."""
    best = (-2.0, 0)
    r0 = float(np.corrcoef(a, e)[0, 1])
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], e[: len(e) - lag]) if lag >= 0 else (a[:lag], e[-lag:])
        r = float(np.corrcoef(x, y)[0, 1])
        if r > best[0]:
            best = (r, lag)
    return r0, best[0], best[1]


def _stream_plan(total: int, per_minute: int) -> dict[int, str]:
    """Which chunks of a `total`-chunk stream to render and score: `per_minute` spread over the first
    minute ("first"), as many over the last ("last"), about 40 spread over the whole ("spread")."""
    minute = 60 * FPS // 5
    every = max(1, total // 40)
    plan = {k: "spread" for k in (*range(0, total, every), total - 1) if k >= 0}
    if total >= 2 * minute:
        for k in np.linspace(0, minute - 1, per_minute).astype(int):
            plan[int(k)] = "first"
        for k in np.linspace(total - minute, total - 1, per_minute).astype(int):
            plan[int(k)] = "last"
    return plan


async def score(name: str, path: Path, pcm: np.ndarray, minutes: float, scorer: Scorer, head: bool = False) -> Row:
    """One portrait's row. Frames are scored as they are rendered and dropped (a 10-minute stream keeps
    only descriptors and numbers)."""
    from flowact.errors import PortraitError
    from flowact.generator import PortraitGenerator, PortraitGeneratorConfig

    row = Row(name)
    gen = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None, seed=1))
    try:
        await gen.start(path)
    except PortraitError as err:
        row.refused = str(err).split(": ", 1)[-1][:110]
        return row
    assert gen.analysis is not None and gen.renderer is not None
    ref_img = gen.analysis.image
    if not scorer.find(ref_img):
        row.refused = "dlib finds no face in the framed reference"
        return row
    ref_id = scorer.identity(ref_img)
    row.brisque_ref = scorer.quality(ref_img)
    row.floor = scorer.floor(ref_img, ref_id)
    chunks, energy = controls(pcm, head=head)
    ap_list: list[float] = []
    first_pass: list[tuple[np.ndarray, float]] = []  # (descriptor, BRISQUE) of a few frames, for --minutes 0
    for c in chunks:  # the first pass: every frame, for lip sync and rest/speech
        for f in (await gen.render_chunk(c)).frames:
            ap_list.append(inner_aperture(scorer.landmarks(f.image)))
            if len(ap_list) % 15 == 1:
                q = scorer.quality(f.image) if len(first_pass) < 5 else np.nan
                first_pass.append((scorer.identity(f.image), q))
    ap = np.array(ap_list)
    env = energy[: len(ap)]
    row.r0, row.best_r, lag = lag_corr(ap, env)
    row.best_lag_ms = lag * 1000 / FPS
    talking = np.convolve((env > 0.05).astype(np.float32), np.ones(9, np.float32), "same") > 0  # +-160 ms
    row.rest, row.speech = float(ap[~talking].mean()), float(ap[env > 0.2].mean())
    # identity over a long stream: repeat the speech; render and score the planned frames, step the
    # motion model through the others (the renderer is stateless per frame)
    total = int(minutes * 60 * FPS / 5)
    plan = _stream_plan(total, per_minute=20)
    dist: dict[str, list[float]] = {"spread": [], "first": [], "last": []}
    ends: list[np.ndarray] = []  # descriptors of the stream's first and last scored frame
    quality: list[float] = []
    idx = len(chunks)
    for k in range(total):
        c = chunks[k % len(chunks)]
        c = dataclasses.replace(c, index=idx, pts=idx * 5 / FPS)
        idx += 1
        if k not in plan:
            gen.motion.step(c)
            continue
        img = (await gen.render_chunk(c)).frames[2].image
        desc = scorer.identity(img)
        dist[plan[k]].append(float(np.linalg.norm(desc - ref_id)))
        if not ends or k == total - 1:
            ends = [ends[0], desc] if ends else [desc]
        if plan[k] == "spread" and len(dist["spread"]) % 8 == 1:
            quality.append(scorer.quality(img))
    if total == 0:  # --minutes 0: the speech pass alone
        dist["spread"] = [float(np.linalg.norm(d - ref_id)) for d, _ in first_pass]
        ends = [first_pass[0][0], first_pass[-1][0]]
        quality = [q for _, q in first_pass if not np.isnan(q)]
    ids = dist["spread"] + dist["first"] + dist["last"]
    row.id_mean, row.id_max = float(np.mean(ids)), float(np.max(ids))
    row.id_first_last = float(np.linalg.norm(ends[0] - ends[-1]))
    if dist["first"]:
        row.id_first_min, row.id_last_min = float(np.mean(dist["first"])), float(np.mean(dist["last"]))
    row.brisque = float(np.mean(quality))
    await gen.aclose()
    return row


async def explain(name: str, path: Path, scorer: Scorer) -> str:
    """One line of single-frame distances for an open-mouth portrait (see the module's docstring)."""
    import cv2

    from flowact.generator import PortraitGenerator, PortraitGeneratorConfig
    from flowact.motion.params import MOTION_DIM, P

    gen = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None, seed=1))
    await gen.start(path)
    assert gen.analysis is not None and gen.renderer is not None
    a, r = gen.analysis, gen.renderer
    ref = a.image
    if not scorer.find(ref):
        return f"{name:26s} dlib finds no face"
    rect = scorer.rect
    ref_id = scorer.identity(ref)

    def dist(img: np.ndarray) -> float:
        return float(np.linalg.norm(scorer.identity(img) - ref_id))

    rest = r.render(np.zeros(MOTION_DIM, np.float32))
    lm, s = a.landmarks, a.eye_distance
    x0, x1 = int(lm[61, 0] - 0.15 * s), int(lm[291, 0] + 0.15 * s)
    y0, y1 = int(lm[0, 1] - 0.15 * s), int(lm[17, 1] + 0.15 * s)
    hard = np.zeros(ref.shape[:2], np.float32)
    hard[y0:y1, x0:x1] = 1.0
    box = cv2.GaussianBlur(hard, (0, 0), 0.05 * s)[..., None]
    mouth_only = np.round(rest * box + ref * (1 - box)).astype(np.uint8)
    all_but_mouth = np.round(ref * box + rest * (1 - box)).astype(np.uint8)
    content = float(np.linalg.norm(np.array(scorer.descriptor.compute_face_descriptor(
        rest, scorer.shape(ref, rect)), np.float32) - ref_id))
    sweep = []
    for closed in (0.75, 0.5, 0.25, 0.0):  # the closing undone part of the way (jaw_open opens it first)
        m = np.zeros(MOTION_DIM, np.float32)
        m[P["jaw_open"]] = min(1.0, (1 - closed) * r._jaw_unwound)
        sweep.append(dist(r.render(m)))
    await gen.aclose()
    return (f"{name:26s} {dist(rest):6.3f} {dist(mouth_only):10.3f} {dist(all_but_mouth):13.3f} {content:12.3f} "
            + " ".join(f"{d:5.3f}" for d in sweep))


def run_explain(scorer: Scorer) -> None:
    from tests.fixtures.portraits import ALL_PORTRAITS, OPEN_MOUTHS, rgb

    print("single frames, dlib descriptor distance to the reference:")
    print(f"{'portrait':26s} {'rest':>6s} {'mouth only':>10s} {'all but mouth':>13s} {'content only':>12s} "
          "closed 75%   50%   25%    0%")
    for name, path in OPEN_MOUTHS.items():
        print(asyncio.run(explain(name, path, scorer)), flush=True)
    names = ("franck", "franck_smile", "franck_laugh", "franck_eyes_closed_laugh")
    ids = []
    for n in names:
        img = rgb(ALL_PORTRAITS[n])
        scorer.find(img)
        ids.append(scorer.identity(img))
    print("real photos of one man (FGNet talking face), pairwise distances (same person < 0.6):")
    for n, i in zip(names, ids, strict=True):
        print(f"  {n:26s}" + " ".join(f"{np.linalg.norm(i - j):6.3f}" for j in ids))


def portraits(dirs: list[str]) -> dict[str, Path]:
    from tests.fixtures.portraits import ALL_PORTRAITS

    out = dict(ALL_PORTRAITS)
    for d in dirs:
        for p in sorted(Path(d).expanduser().iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"):
                out[p.stem] = p
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the identity stream")
    ap.add_argument("--dir", action="append", default=[], help="another folder of portraits (repeatable)")
    ap.add_argument("--only", action="append", default=[], help="score only these portrait names")
    ap.add_argument("--explain", action="store_true", help="what drives the identity distance of open mouths")
    ap.add_argument("--head", action="store_true", help="with the procedural head pose, blinks and gaze")
    a = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    if a.explain:
        run_explain(Scorer())
        return
    pcm = asyncio.run(speech())
    scorer = Scorer()
    todo = {k: v for k, v in portraits(a.dir).items() if not a.only or k in a.only}
    print(f"{len(todo)} portraits, {len(pcm) / SR:.1f} s of espeak speech with {PAUSE_S} s pauses, identity over "
          f"{a.minutes:g} min{', head motion' if a.head else ''}; load average {os.getloadavg()[0]:.1f}")
    head = (f"{'portrait':26s} {'id mean':>7s} {'id max':>6s} {'1st-lst':>7s} {'min 1':>5s} {'last':>5s} "
            f"{'r lag0':>6s} {'best r':>6s} {'lag ms':>6s} {'rest':>5s} {'speech':>6s} {'BRISQUE':>7s} {'(ref)':>6s} "
            f"{'floor':>5s}")
    print(head)
    fails = 0
    for name, path in todo.items():
        t = time.perf_counter()
        row = asyncio.run(score(name, path, pcm, a.minutes, scorer, head=a.head))
        if row.refused:
            print(f"{name:26s} refused: {row.refused}")
            continue
        ok = (row.id_mean <= 0.2 and row.id_max <= 0.4 and row.best_r >= 0.5 and abs(row.best_lag_ms) <= 40
              and row.rest <= 0.5 * row.speech)
        fails += not ok
        print(f"{name:26s} {row.id_mean:7.3f} {row.id_max:6.3f} {row.id_first_last:7.3f} {row.id_first_min:5.3f} "
              f"{row.id_last_min:5.3f} {row.r0:6.2f} "
              f"{row.best_r:6.2f} {row.best_lag_ms:6.0f} {row.rest:5.3f} {row.speech:6.3f} {row.brisque:7.1f} "
              f"{row.brisque_ref:6.1f} {row.floor:5.3f}  {'ok' if ok else 'MISSES A GOAL'}  "
              f"({time.perf_counter() - t:.0f} s)",
              flush=True)
    print(f"goals: identity mean <= 0.2, max <= 0.4; lip sync r >= 0.5 at |lag| <= 40 ms; rest <= half of speech. "
          f"{fails} portrait(s) miss a goal.")


if __name__ == "__main__":
    main()
