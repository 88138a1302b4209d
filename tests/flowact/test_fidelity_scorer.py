"""The independent scorer bench/fidelity.py relies on (dlib's CC0 models, BRISQUE), checked on real
portraits so its numbers can be trusted: the same person is close and different people are far, the
inner-lip aperture sees an open mouth, the lag search finds a known lag, BRISQUE ranks a blurred face
worse."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

pytest.importorskip("dlib")
pytest.importorskip("brisque")

from bench.fidelity import Scorer, _stream_plan, inner_aperture, lag_corr  # noqa: E402
from flowact.motion.params import MOTION_DIM, P  # noqa: E402
from flowact.reference import analyze_portrait  # noqa: E402
from flowact.render.renderer import Renderer  # noqa: E402
from tests.fixtures.portraits import ALL_PORTRAITS, rgb  # noqa: E402


@cache
def _scorer() -> Scorer:
    return Scorer()


def _id(img: np.ndarray) -> np.ndarray:
    sc = _scorer()
    assert sc.find(img)
    return sc.identity(img)


def test_identity_same_person_close_others_far() -> None:
    franck = [_id(rgb(ALL_PORTRAITS[n])) for n in ("franck", "franck_smile", "franck_eyes_closed_laugh")]
    others = [_id(rgb(ALL_PORTRAITS[n])) for n in ("grace", "obama_smile", "mona_lisa")]
    same = [float(np.linalg.norm(a - b)) for i, a in enumerate(franck) for b in franck[i + 1 :]]
    diff = [float(np.linalg.norm(a - b)) for a in franck for b in others]
    assert max(same) < 0.45 and min(diff) > 0.6, (same, diff)


def test_aperture_sees_the_rendered_mouth_open() -> None:
    a = analyze_portrait(ALL_PORTRAITS["grace"], cache_dir=None)
    r = Renderer(a)
    sc = _scorer()
    assert sc.find(a.image)
    m = np.zeros(MOTION_DIM, np.float32)
    closed = inner_aperture(sc.landmarks(r.render(m)))
    m[P["jaw_open"]] = 0.8
    opened = inner_aperture(sc.landmarks(r.render(m)))
    assert closed < 0.05 and opened > closed + 0.1, (closed, opened)


def test_lag_search_finds_a_known_lag() -> None:
    rng = np.random.default_rng(0)
    env = np.convolve(rng.random(400), np.ones(5) / 5, "same")
    mouth = np.roll(env, 2) + 0.05 * rng.random(400)  # the mouth follows the sound by 2 frames
    r0, best, lag = lag_corr(mouth, env)
    assert lag == 2 and best > 0.9 and best > r0


def test_brisque_ranks_a_blurred_face_worse() -> None:
    img = rgb(ALL_PORTRAITS["grace"])
    sc = _scorer()
    assert sc.find(img)
    assert sc.quality(cv2.GaussianBlur(img, (0, 0), 3)) > sc.quality(img) + 10


def test_stream_plan_scores_the_first_and_last_minute() -> None:
    """A 10-minute stream (chunks of 5 frames at 25 fps) is scored on 20 frames of its first minute, 20
    of its last and about 40 spread over it; a 1-minute stream only on the spread ones."""
    chunks_per_minute = 60 * 25 // 5
    plan = _stream_plan(10 * chunks_per_minute, per_minute=20)
    first = [k for k, v in plan.items() if v == "first"]
    last = [k for k, v in plan.items() if v == "last"]
    assert len(first) == 20 and max(first) < chunks_per_minute, first
    assert len(last) == 20 and min(last) >= 9 * chunks_per_minute and max(last) == 10 * chunks_per_minute - 1, last
    assert 30 <= sum(v == "spread" for v in plan.values()) <= 45
    short = _stream_plan(chunks_per_minute, per_minute=20)
    assert set(short.values()) == {"spread"} and max(short) == chunks_per_minute - 1


def test_the_scorer_keeps_to_the_portraits_face_beside_a_larger_one() -> None:
    """A frame with another, larger face beside the tracked one (a group photo's neighbour): the
    descriptor and the landmarks are the tracked face's, not the largest face's."""
    grace, astro = rgb(ALL_PORTRAITS["grace"]), rgb(ALL_PORTRAITS["astronaut"])
    astro = cv2.resize(astro, (astro.shape[1] * 5 // 2, astro.shape[0] * 5 // 2), interpolation=cv2.INTER_LINEAR)
    h = max(grace.shape[0], astro.shape[0])
    alone = np.full((h, grace.shape[1] + astro.shape[1], 3), 128, np.uint8)
    alone[: grace.shape[0], : grace.shape[1]] = grace
    both = alone.copy()
    both[: astro.shape[0], grace.shape[1] :] = astro
    sc = _scorer()
    assert sc.find(alone)
    mine = sc.identity(alone)
    assert float(np.linalg.norm(sc.identity(both) - mine)) < 0.1
    lm = sc.landmarks(both)
    assert float(lm[:, 0].max()) < grace.shape[1]  # Grace's landmarks, left of the astronaut
    faces = list(sc.detector(both, 1))
    assert len(faces) == 2 and max(faces, key=lambda r: r.area()).left() > grace.shape[1]  # the larger: hers
