"""`flowact` command line: extract training data, train the motion model, distill it.

    flowact extract talk1.mp4 talk2.mp4 --out data/me
    flowact train data/me --out runs/me --preset motion-s --steps 3000
    torchrun --nproc_per_node 4 -m flowact.cli train data/me --out runs/me   # multi-GPU / multi-process
    flowact distill runs/me/model.safetensors data/me --out runs/me-2step --student-steps 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from flowact.errors import FlowActError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowact", description="FlowAct motion model tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract", help="motion + audio features from your own talking videos -> .npz shards")
    e.add_argument("videos", nargs="+")
    e.add_argument("--out", required=True, help="output directory for the shards")
    e.add_argument("--fps", type=int, default=25)
    t = sub.add_parser("train", help="train the motion MMDiT (diffusion forcing) on extracted shards")
    t.add_argument("data", help="directory of .npz shards")
    t.add_argument("--out", default="runs/motion")
    t.add_argument("--preset", default="motion-s")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--chunks", type=int, default=4)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--self-rollout", type=float, default=0.0, help="fraction of steps on own rollouts")
    t.add_argument("--save-every", type=int, default=0)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--no-progress", action="store_true")
    d = sub.add_parser("distill", help="distill a many-step checkpoint into a 2-4 step student")
    d.add_argument("teacher", help="teacher checkpoint (.safetensors)")
    d.add_argument("data", help="directory of .npz shards")
    d.add_argument("--out", default="runs/motion-distilled")
    d.add_argument("--student-steps", type=int, default=2)
    d.add_argument("--teacher-steps", type=int, default=16)
    d.add_argument("--steps", type=int, default=500)
    d.add_argument("--batch", type=int, default=16)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "extract":
            from flowact.train.extract import extract

            shards = extract(args.videos, args.out, fps=args.fps)
            print(f"wrote {len(shards)} shard(s) to {args.out}")
        elif args.cmd == "train":
            from flowact.train.loop import TrainConfig, train

            res = train(TrainConfig(
                data=args.data, out=args.out, preset=args.preset, steps=args.steps, batch=args.batch,
                chunks=args.chunks, lr=args.lr, seed=args.seed, self_rollout=args.self_rollout,
                save_every=args.save_every, threads=args.threads, progress=not args.no_progress,
            ))
            if res.losses and res.rank == 0:
                print(f"checkpoint {res.checkpoint}  loss curve {res.loss_png}  final loss {res.losses[-1]:.4f}")
        else:
            from flowact.train.distill import DistillConfig, distill

            dres = distill(DistillConfig(
                teacher=args.teacher, data=args.data, out=args.out, student_steps=args.student_steps,
                teacher_steps=args.teacher_steps, steps=args.steps, batch=args.batch, lr=args.lr,
                progress=not args.no_progress,
            ))
            print(f"student checkpoint {dres.checkpoint}  loss curve {dres.loss_png}")
    except (FlowActError, ValidationError) as e:
        print(f"flowact {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
