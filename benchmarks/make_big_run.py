#!/usr/bin/env python3
"""Write a large synthetic run directory (100k to 1M+ points) in bounded memory.

The statistical model is that of shared/reference/make_synthetic_run.py: a common offset direction,
class means that separate progressively (fast early, slow late), per-sample noise z fixed across
checkpoints with a shrinking scale, fresh per-checkpoint jitter, planted outliers on their own
directions with a typical norm, and a slow rotation in a few mutually orthogonal planes. The bytes
differ from the reference's (float32 arithmetic, other random streams); the statistics do not.

Memory: rows are made in chunks (default 50,000) from deterministic per-chunk streams, numpy
default_rng seeded from (seed, stream, chunk[, checkpoint]), so z is the same at every checkpoint
without being kept, and each chunk is written through a memory map of only that chunk's rows: a
1M x 768 run needs a few hundred MB, whatever N. Each checkpoint's embeddings.npy (float32) is created
with np.lib.format.open_memmap under a temporary name in its folder and renamed into place when whole.

Written: checkpoint-<step>/embeddings.npy, checkpoint-<step>/trainer_state.json, labels.npy (int64),
class_names.json, losses.csv (step,loss,epoch,learning_rate) and truth.json (planted outlier indices and
the parameters, so a caller can tell whether an existing run matches). No images.npy: the tool then
draws the leaderboard without thumbnails.

    make_big_run.py OUT --n N --dim D --checkpoints C [--seed S] [--force]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time

import numpy as np

SHAPE_NAMES = ["circle", "square", "triangle", "plus", "hstripes",
               "vstripes", "diagonal", "ring", "dots", "xmark"]
# stream tags for the per-chunk generators
S_LABELS, S_GLOBAL, S_NOISE, S_JITTER, S_OUTLIER = 1, 2, 3, 4, 5


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def gram_schmidt(a: np.ndarray) -> np.ndarray:
    q = np.array(a, dtype=np.float64, copy=True)
    for j in range(q.shape[1]):
        v = q[:, j]
        for _ in range(2):
            for i in range(j):
                v -= (q[:, i] * v).sum() * q[:, i]
        v /= math.sqrt((v * v).sum())
        q[:, j] = v
    return q


def orthonormal(rng: np.random.Generator, d: int, m: int) -> np.ndarray:
    if m <= d:
        return gram_schmidt(rng.standard_normal((d, m)))
    a = rng.standard_normal((d, m))
    return a / np.sqrt((a * a).sum(axis=0, keepdims=True))


def loss_curve(rng: np.random.Generator, total_steps: int, logging_steps: int):
    steps = np.arange(logging_steps, total_steps + 1, logging_steps, dtype=np.int64)
    tau = 0.18 * total_steps
    clean = 0.08 + 2.2 * np.exp(-steps / tau)
    loss = np.abs(clean * (1.0 + 0.08 * rng.standard_normal(steps.size)))
    lr = 5e-5 * (1.0 - steps / (total_steps + 1))
    grad_norm = np.abs(1.5 * np.exp(-steps / tau) + 0.3 + 0.1 * rng.standard_normal(steps.size))
    return steps, loss, lr, grad_norm


def write_checkpoint(path: str, n: int, d: int, chunk: int, make_rows) -> None:
    """Writes an (n, d) float32 .npy at path, chunk by chunk, under a temporary name, then renames it."""
    tmp = os.path.join(os.path.dirname(path), ".embeddings.npy.partial")
    if os.path.exists(tmp):
        os.remove(tmp)
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    offset = mm.offset          # header length: the data start
    del mm                      # header written, file sized; map only one chunk at a time below
    for ci, start in enumerate(range(0, n, chunk)):
        stop = min(n, start + chunk)
        window = np.memmap(tmp, dtype=np.float32, mode="r+", offset=offset + start * d * 4,
                           shape=(stop - start, d))
        window[:] = make_rows(ci, start, stop)
        window.flush()
        del window              # unmapped: its pages leave this process's RSS
    os.rename(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="run directory to create")
    p.add_argument("--n", type=int, default=100000, help="evaluation samples (rows)")
    p.add_argument("--dim", type=int, default=768, help="embedding dimension D")
    p.add_argument("--checkpoints", type=int, default=2)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outliers", type=int, default=6, help="planted outliers")
    p.add_argument("--save-steps", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--chunk", type=int, default=50000, help="rows generated at a time")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    a = p.parse_args(argv)

    n, d, c, k = a.n, a.dim, a.checkpoints, a.classes
    if n < 20 or d < 4 or c < 1 or k < 2 or a.outliers < 0 or a.outliers >= n // 2 or a.chunk < 1:
        p.error("need n>=20, dim>=4, checkpoints>=1, classes>=2, 0<=outliers<n/2, chunk>=1")
    if os.path.isdir(a.out) and os.listdir(a.out):
        if not a.force:
            p.error(f"{a.out} exists and is not empty (use --force)")
        shutil.rmtree(a.out)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.perf_counter()

    # small global quantities (O(n) ints and O(d) vectors only)
    r_lab = rng_for(a.seed, S_LABELS)
    labels = r_lab.permutation(np.arange(n, dtype=np.int64) % k)
    planted = np.sort(r_lab.choice(n, a.outliers, replace=False)).astype(np.int64)
    r_glob = rng_for(a.seed, S_GLOBAL)
    m = 1 + k + a.outliers
    dirs = orthonormal(r_glob, d, m)
    u_c, b_cls, u_out = dirs[:, 0], dirs[:, 1:1 + k], dirs[:, 1 + k:]

    sigma0 = 1.0
    c_norm = sigma0 * math.sqrt(2.0 * d)
    ring = 6.0 * sigma0
    ang = 2 * np.pi * np.arange(k) / k
    cls_coords = np.zeros((k, k))
    cls_coords[:, 0] = ring * np.cos(ang)
    cls_coords[:, 1] = 0.75 * ring * np.sin(ang)
    if k > 2:
        cls_coords[:, 2:] = 0.3 * ring * r_glob.standard_normal((k, k - 2))
    class_means = cls_coords @ b_cls.T                              # (k, d)

    planes = max(0, min(8, d // 2))
    rot = orthonormal(r_glob, d, 2 * planes) if planes else np.zeros((d, 0))
    rot_u = rot[:, 0::2].astype(np.float32)
    rot_v = rot[:, 1::2].astype(np.float32)
    theta = r_glob.uniform(0.02, 0.06, planes)

    total_steps = c * a.save_steps
    l_steps, l_loss, l_lr, l_gn = loss_curve(r_glob, total_steps, a.logging_steps)
    steps_per_epoch = max(1, total_steps // 3)
    with open(os.path.join(a.out, "losses.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "epoch", "learning_rate"])
        for s, lo, lr in zip(l_steps, l_loss, l_lr):
            w.writerow([int(s), f"{lo:.6f}", f"{s / steps_per_epoch:.4f}", f"{lr:.3e}"])
    np.save(os.path.join(a.out, "labels.npy"), labels)
    names = SHAPE_NAMES[:k] if k <= len(SHAPE_NAMES) else [f"class_{i}" for i in range(k)]
    with open(os.path.join(a.out, "class_names.json"), "w") as f:
        json.dump(names, f)

    ckpt_steps = [(j + 1) * a.save_steps for j in range(c)]
    log_history = []
    li = 0
    r_eval = rng_for(a.seed, S_GLOBAL, 1)
    per_ckpt_s = []
    for j, step in enumerate(ckpt_steps):
        tc = time.perf_counter()
        prog = j / (c - 1) if c > 1 else 1.0
        e = (1 - math.exp(-3 * prog)) / (1 - math.exp(-3))
        sig = sigma0 * (1.0 - 0.6 * e)
        base = (c_norm * u_c).astype(np.float32)
        means = (e * class_means).astype(np.float32)               # (k, d)
        typ = math.sqrt(c_norm ** 2 + sig ** 2 * d + (e * ring) ** 2 / 2)
        out_rows = (typ * u_out.T).astype(np.float32)               # (outliers, d)
        cs = np.cos(theta * j).astype(np.float32)
        sn = np.sin(theta * j).astype(np.float32)

        def make_rows(ci, start, stop, j=j, sig=sig, base=base, means=means, out_rows=out_rows, cs=cs, sn=sn):
            rows = stop - start
            # z: fixed per sample (its stream does not depend on the checkpoint)
            x = rng_for(a.seed, S_NOISE, ci).standard_normal((rows, d), dtype=np.float32)
            x *= np.float32(sig)
            jit = rng_for(a.seed, S_JITTER, ci, j).standard_normal((rows, d), dtype=np.float32)
            jit *= np.float32(0.15 * sigma0)
            x += jit
            del jit
            x += base
            x += means[labels[start:stop]]
            sel = np.nonzero((planted >= start) & (planted < stop))[0]
            if sel.size:
                ro = rng_for(a.seed, S_OUTLIER, j)  # same few rows whatever the chunk size
                jo = ro.standard_normal((planted.size, d)).astype(np.float32) * np.float32(0.15 * sigma0)
                x[planted[sel] - start] = out_rows[sel] + jo[sel]
            if planes and j:
                pa = x @ rot_u
                pb = x @ rot_v
                x += (pa * (cs - 1) - pb * sn) @ rot_u.T
                x += (pa * sn + pb * (cs - 1)) @ rot_v.T
            return x

        cdir = os.path.join(a.out, f"checkpoint-{step}")
        os.makedirs(cdir, exist_ok=True)
        # trainer_state.json first, as a live writer would
        while li < l_steps.size and l_steps[li] <= step:
            s = int(l_steps[li])
            log_history.append({"epoch": round(s / steps_per_epoch, 4),
                                "grad_norm": round(float(l_gn[li]), 6),
                                "learning_rate": float(f"{l_lr[li]:.6e}"),
                                "loss": round(float(l_loss[li]), 4), "step": s})
            li += 1
        log_history.append({"epoch": round(step / steps_per_epoch, 4),
                            "eval_accuracy": round(0.1 + 0.85 * e + 0.01 * float(r_eval.standard_normal()), 4),
                            "eval_loss": round(0.1 + 2.0 * (1 - e), 4),
                            "eval_runtime": 12.3, "step": step})
        state = {"best_metric": None, "best_model_checkpoint": None,
                 "epoch": round(step / steps_per_epoch, 4), "eval_steps": a.save_steps,
                 "global_step": step, "is_hyper_param_search": False,
                 "is_local_process_zero": True, "is_world_process_zero": True,
                 "log_history": list(log_history), "logging_steps": a.logging_steps,
                 "max_steps": total_steps, "num_input_tokens_seen": 0, "num_train_epochs": 3,
                 "save_steps": a.save_steps, "total_flos": 0.0, "train_batch_size": 32,
                 "trial_name": None, "trial_params": None}
        with open(os.path.join(cdir, "trainer_state.json"), "w") as f:
            json.dump(state, f, indent=2)
        write_checkpoint(os.path.join(cdir, "embeddings.npy"), n, d, a.chunk, make_rows)
        per_ckpt_s.append(time.perf_counter() - tc)
        print(f"checkpoint-{step}: {per_ckpt_s[-1]:.1f}s", flush=True)

    truth = {"generator": "make_big_run.py", "seed": a.seed, "n": n, "dim": d,
             "checkpoints": c, "classes": k, "dtype": "float32", "chunk": a.chunk,
             "outliers": a.outliers, "planted_outliers": planted.tolist(),
             "steps": ckpt_steps, "save_steps": a.save_steps, "logging_steps": a.logging_steps,
             "model": {"sigma0": sigma0, "offset_norm": c_norm, "ring_radius": ring,
                       "rotation_planes": planes,
                       "rotation_rad_per_checkpoint": [float(t) for t in theta],
                       "jitter": 0.15, "separation_ease": "(1-exp(-3p))/(1-exp(-3))",
                       "noise_scale": "1-0.6*ease"}}
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=2)
    print(f"wrote {a.out}: n={n} dim={d} checkpoints={c} classes={k} float32 "
          f"planted={planted.tolist()} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
