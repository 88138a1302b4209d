"""Training end to end on real TTS speech (espeak-ng): loss falls, lip sync is learned, distillation
keeps 2-step samples close to the many-step teacher, `flowact train` CLI, extraction from video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowact.audio import float_to_int16
from flowact.errors import ModelError
from flowact.model import MMDiT, load_checkpoint, preset
from flowact.motion.base import MotionModel
from flowact.motion.learned import STATES, LearnedMotion
from flowact.motion.params import MOTION_DIM, MOTION_HIGH, MOTION_LOW, P
from flowact.sampler import euler_sample
from flowact.schedule import flow_sigmas
from flowact.train.dataset import Clip, MotionWindows, load_clips, save_shard
from flowact.train.distill import DistillConfig, distill, last_chunk_velocity
from flowact.train.extract import extract_video
from flowact.train.loop import TrainConfig, train
from flowact.types import ControlChunk
from tests.fixtures.neural_data import FPS, SENTENCES, SR, espeak_wav, render_talking_video, speech_clips

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Clip, np.ndarray]]]:
    d = tmp_path_factory.mktemp("speech")
    clips = speech_clips(d)
    save_shard(d / "data" / "shard-0.npz", [c for c, _ in clips[:8]])  # 2 sentences held out
    return d, clips


@pytest.fixture(scope="module")
def trained(speech: tuple[Path, list]) -> tuple[Path, list[float]]:
    d, _ = speech
    res = train(TrainConfig(data=str(d / "data"), out=str(d / "run"), preset="tiny", steps=400, batch=16,
                            chunks=3, lr=2e-3, progress=False, threads=1))
    return res.checkpoint, res.losses


def run_controls(
    lm: MotionModel, clip: Clip, samples: np.ndarray, n: int, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Drive a motion model with real ControlChunks of `n` frames cut from a clip."""
    hop = SR // FPS
    out = []
    for i in range(start, (stop or len(clip)) - n + 1, n):
        s = slice(i, i + n)
        out.append(lm.step(ControlChunk(
            index=i // n, pts=i / FPS, fps=FPS, n_frames=n, sample_rate=SR,
            audio=float_to_int16(samples[i * hop : (i + n) * hop]), mel=clip.mel[s], energy=clip.energy[s],
            visemes=clip.visemes[s], expressions=clip.expressions[s], head_pose=np.zeros((n, 3), np.float32),
            blink=np.zeros(n, np.float32), gaze=np.zeros((n, 2), np.float32), state=STATES[clip.state[i]],
        )).values)
    return np.concatenate(out)


def test_training_lowers_loss_and_learns_lip_sync(speech: tuple[Path, list], trained: tuple[Path, list]) -> None:
    _, clips = speech
    ckpt, losses = trained
    assert ckpt.is_file() and (ckpt.parent / "loss.png").stat().st_size > 1000
    assert np.mean(losses[-30:]) < 0.4 * np.mean(losses[:10])
    learned = LearnedMotion.from_checkpoint(ckpt, steps=2)
    untrained = LearnedMotion(MMDiT(preset("tiny")), steps=2)
    assert isinstance(learned, MotionModel)
    for clip, samples in clips[8:]:  # held-out sentences
        for n in (8, 4):  # control chunks equal to and smaller than the model chunk
            m = run_controls(learned, clip, samples, n)
            learned.reset()
            assert ((m >= MOTION_LOW - 1e-6) & (m <= MOTION_HIGH + 1e-6)).all()
            r_learned = np.corrcoef(m[:, P["jaw_open"]], clip.energy[: len(m)])[0, 1]
            u = run_controls(untrained, clip, samples, n)
            untrained.reset()
            r_untrained = np.corrcoef(u[:, P["jaw_open"]], clip.energy[: len(u)])[0, 1]
            assert r_learned > 0.55, r_learned
            assert r_learned > abs(r_untrained) + 0.3, (r_learned, r_untrained)


def test_learned_motion_reset_is_deterministic_and_interrupt_is_smooth(
    speech: tuple[Path, list], trained: tuple[Path, list]
) -> None:
    _, clips = speech
    clip, samples = clips[9]
    lm = LearnedMotion.from_checkpoint(trained[0], steps=2)
    a = run_controls(lm, clip, samples, 8)
    lm.reset()
    b = run_controls(lm, clip, samples, 8)
    np.testing.assert_array_equal(a, b)
    lm.reset()
    speaking = int(np.argmax(clip.energy > 0.5)) // 8 * 8 + 8  # cut mid-speech
    first = run_controls(lm, clip, samples, 8, stop=speaking)
    lm.interrupt()
    after = run_controls(lm, clip, samples, 8, start=speaking)
    step = np.abs(after[0] - first[-1])
    typical = np.abs(np.diff(a, axis=0)).max(axis=0)
    assert (step <= typical + 1e-6).all()  # the first frame after barge-in is no bigger a jump than usual


def test_distilled_student_two_steps_close_to_teacher(speech: tuple[Path, list], trained: tuple[Path, list]) -> None:
    d, _ = speech
    res = distill(DistillConfig(teacher=str(trained[0]), data=str(d / "data"), out=str(d / "dist"), steps=60,
                                batch=8, teacher_steps=8, student_steps=2, lr=3e-4, progress=False))
    teacher, meta = load_checkpoint(trained[0])
    student, smeta = load_checkpoint(res.checkpoint)
    assert smeta["sampling_steps"] == 2
    ds = MotionWindows(load_clips(d / "data"), 3, 8, np.array(meta["motion_mean"], np.float32),
                       np.array(meta["motion_std"], np.float32))
    batch = {k: torch.stack([ds[i][k] for i in range(0, len(ds), 5)]) for k in ds[0]}
    b = batch["target"].shape[0]
    static = {"reference": torch.zeros(b, 2, MOTION_DIM)}
    noise = torch.randn(b, 8, MOTION_DIM, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = euler_sample(last_chunk_velocity(teacher, batch, static), noise, flow_sigmas(32))
        t2 = euler_sample(last_chunk_velocity(teacher, batch, static), noise, flow_sigmas(2))
        s2 = euler_sample(last_chunk_velocity(student, batch, static), noise, flow_sigmas(2))
    err_student = float((s2 - ref).pow(2).mean())
    err_teacher = float((t2 - ref).pow(2).mean())
    assert err_student < 0.5 * err_teacher, (err_student, err_teacher)
    assert err_student < 0.05 * float(ref.var())


def test_flowact_train_cli_end_to_end(speech: tuple[Path, list], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from flowact.cli import main

    d, _ = speech
    rc = main(["train", str(d / "data"), "--out", str(tmp_path / "run"), "--preset", "tiny", "--steps", "12",
               "--batch", "4", "--chunks", "2", "--self-rollout", "0.5", "--no-progress", "--threads", "1"])
    assert rc == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "model.json").is_file()
    png = (tmp_path / "run" / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "checkpoint" in capsys.readouterr().out
    LearnedMotion.from_checkpoint(tmp_path / "run" / "model.safetensors")  # loadable
    assert main(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "r2"), "--preset", "tiny"]) == 2
    assert "no .npz training shards" in capsys.readouterr().err
    assert main(["train", str(d / "data"), "--out", str(tmp_path / "r3"), "--preset", "huge"]) == 2
    capsys.readouterr()
    assert main(["distill", str(tmp_path / "run" / "model.safetensors"), str(d / "data"), "--out",
                 str(tmp_path / "dist"), "--steps", "3", "--teacher-steps", "4", "--batch", "4", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "dist" / "model.safetensors")[1]["sampling_steps"] == 2
    assert main(["distill", str(tmp_path / "missing.safetensors"), str(d / "data"), "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err


def test_learned_motion_bad_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        LearnedMotion.from_checkpoint(tmp_path / "missing.safetensors")


def test_extract_motion_from_rendered_video(tmp_path: Path) -> None:
    samples = espeak_wav(SENTENCES[1], tmp_path / "a.wav")
    n = 75
    drive = render_talking_video(tmp_path / "talk.mp4", samples, n)
    clip = extract_video(tmp_path / "talk.mp4")
    assert abs(len(clip) - n) <= 1
    m = clip.motion[: min(n, len(clip))]
    dr = drive[: len(m)]
    assert np.corrcoef(m[:, P["jaw_open"]], dr[:, P["jaw_open"]])[0, 1] > 0.7
    assert np.corrcoef(m[:, P["head_yaw"]], dr[:, P["head_yaw"]])[0, 1] > 0.8
    blink = (m[:, P["blink_l"]] + m[:, P["blink_r"]]) / 2
    assert blink[dr[:, P["blink_l"]] > 0.5].mean() > blink[dr[:, P["blink_l"]] < 0.5].mean() + 0.3
    # audio is decoded and aligned: energy follows the driving jaw (itself a function of energy)
    assert np.corrcoef(clip.energy[: len(m)], dr[:, P["jaw_open"]])[0, 1] > 0.8
    from flowact.cli import main

    assert main(["extract", str(tmp_path / "talk.mp4"), "--out", str(tmp_path / "shards")]) == 0
    (loaded,) = load_clips(tmp_path / "shards")
    np.testing.assert_allclose(loaded.motion, clip.motion, atol=1e-6)
    assert main(["extract", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "shards2")]) == 2
    with pytest.raises(ModelError, match="not found"):
        extract_video(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ModelError):
        extract_video(tmp_path / "bad.mp4")
