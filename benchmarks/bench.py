#!/usr/bin/env python3
"""Embedlapse against the reference pipeline (shared/reference) on the same runs, in one invocation.

Prints medians and ratios (reference / Embedlapse) for the whole offline render and per stage, the
libx264 encode limit, peak memory, live latency, re-rendering from the analysis cache and the large
section (100,000 x 768 searched exactly, 1,000,000 x 768 approximately, with the approximate search's
certificate and cleanlab scaled from subsamples; runs made by benchmarks/make_big_run.py into
.bench-cache, about 7 GB), and writes the table to benchmarks/results/<date>-<host>.md. Run it with
`make bench`.

Environment: BENCH_REPS (default 3) repetitions, alternating reference and Embedlapse;
BENCH_QUICK=1 skips the 10k reference runs (minutes each), the 100-checkpoint run and the large section;
BENCH_ONLY_LARGE=1 runs only the large section (skipped, with one line, while the binary has no --search);
BENCH_ONLY_UMAP=1 runs only the UMAP section (--projection umap against umap-learn fitting the same points).
"""
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDLAPSE_SHARED", ROOT.parent / "shared"))
BIN = Path(os.environ.get("EMBEDLAPSE_BIN", ROOT / ".build" / "release" / "embedlapse"))
CACHE = ROOT / ".bench-cache"
PY = sys.executable
REPS = int(os.environ.get("BENCH_REPS", "3"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY_LARGE = os.environ.get("BENCH_ONLY_LARGE") == "1"
ONLY_UMAP = os.environ.get("BENCH_ONLY_UMAP") == "1"
lines = []
# The reference draws one frame per checkpoint: so does Embedlapse wherever the two are compared.
ONE_FRAME_PER_CHECKPOINT = ("--tween", "1")
ANALYSIS_STAGES = ("pca", "alignment", "outliers", "labels")


def say(text=""):
    print(text, flush=True)
    lines.append(text)


def timed(cmd, **kw):
    """Runs cmd under GNU time: (wall seconds, peak RSS in MB, completed process)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], capture_output=True, text=True, **kw)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return wall, rss, proc


def synthetic(name, n, dim, checkpoints, spectrum="isotropic"):
    """A run from the shared generator, reused once made (its truth.json is written last)."""
    out = CACHE / name
    if not (out / "truth.json").exists():
        say(f"generating {name} (n={n}, dim={dim}, checkpoints={checkpoints}, {spectrum} spectrum) ...")
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([PY, SHARED / "reference" / "make_synthetic_run.py", out, "--n", str(n), "--dim", str(dim),
                        "--checkpoints", str(checkpoints), "--seed", "0", "--spectrum", spectrum],
                       check=True, capture_output=True)
    return out


def run_reference(run, work):
    out = work / "reference"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "2"))
    wall, rss, _ = timed([PY, SHARED / "reference" / "reference_pipeline.py", run, "--out", out, "--mp4",
                          "--align", "previous"], env=env)
    t = json.loads((out / "timings.json").read_text())
    per = t["per_checkpoint"]
    frames = t["frames"]
    stages = {
        "pca": statistics.median(r["pca"] for r in per) * 1e3,
        "outliers": statistics.median(r["ood"] for r in per) * 1e3,
        "alignment": t["stages_s"]["procrustes"] / frames * 1e3,
        "draw": statistics.median(r["draw"] for r in per if "draw" in r) * 1e3,
        "encode": t["stages_s"]["encode_mp4"] / frames * 1e3,
    }
    import numpy as np
    top = np.load(out / "projection.npz")["top_indices"]
    return wall, rss, stages, [set(map(int, row)) for row in top]


def run_embedlapse(run, work):
    out = work / "embedlapse"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall, rss, _ = timed([BIN, "render", run, "-o", out / "film.mp4", "--dump-data", out / "dump",
                          "--timings", out / "timings.json", *ONE_FRAME_PER_CHECKPOINT])
    t = json.loads((out / "timings.json").read_text())
    stages = {k: statistics.median(v) for k, v in t.items()}
    steps = sorted(int(m.group(1)) for p in (out / "dump").glob("outliers-*.json")
                   if (m := re.fullmatch(r"outliers-(\d+)\.json", p.name)))
    top = [set(json.loads((out / "dump" / f"outliers-{s}.json").read_text())["indices"]) for s in steps]
    return wall, rss, stages, top


def compare(name, run, reps):
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    ref, emb = [], []
    for rep in range(reps):  # alternate, so drift on a shared machine hits both alike
        ref.append(run_reference(run, work))
        emb.append(run_embedlapse(run, work))
        say(f"  {name} rep {rep + 1}: reference {ref[-1][0]:.1f} s, embedlapse {emb[-1][0]:.2f} s")
    same_top = all(r == e for r, e in zip(ref[-1][3], emb[-1][3]))
    med = lambda xs: statistics.median(xs)
    rw, ew = med([r[0] for r in ref]), med([e[0] for e in emb])
    say(f"\n### {name}: whole offline render to MP4 ({reps} runs each, medians)")
    say("| | reference | embedlapse | ratio |")
    say("|---|---:|---:|---:|")
    say(f"| wall s | {rw:.2f} | {ew:.2f} | {rw / ew:.1f}x |")
    say(f"| peak RSS MB | {med([r[1] for r in ref]):.0f} | {med([e[1] for e in emb]):.0f} | |")
    say(f"| top-8 identical at every checkpoint | | {'yes' if same_top else 'NO'} | |")
    say("\nper stage, ms per checkpoint (medians)\n")
    say("| stage | reference | embedlapse | ratio |")
    say("|---|---:|---:|---:|")
    for stage in ("pca", "outliers", "alignment", "draw", "encode"):
        r = med([x[2][stage] for x in ref])
        e = med([x[2].get(stage, 0) for x in emb])
        say(f"| {stage} | {r:.1f} | {e:.1f} | {r / e:.1f}x |" if e > 0 else f"| {stage} | {r:.1f} | {e:.1f} | |")
    shutil.rmtree(work, ignore_errors=True)
    return emb


def encode_limit(run):
    """libx264's own rate on the same frames (ffmpeg CLI from raw BGRA), against Embedlapse's draw+encode."""
    work = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    subprocess.run([BIN, "render", run, "--frames-dir", work / "frames", *ONE_FRAME_PER_CHECKPOINT], check=True, capture_output=True)
    raw = work / "frames.bgra"
    subprocess.run(["ffmpeg", "-v", "error", "-i", work / "frames" / "frame-%04d.png", "-f", "rawvideo",
                    "-pix_fmt", "bgra", raw], check=True)
    frames = len(list((work / "frames").glob("*.png")))
    cli = []
    ours = []
    for _ in range(REPS):
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgra", "-s", "1280x720", "-r", "5",
                        "-i", raw, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-threads", "2",
                        "-x264-params", "rc-lookahead=5:sync-lookahead=0", "-pix_fmt", "yuv420p",
                        work / "cli.mp4"], check=True)
        cli.append(frames / (time.perf_counter() - start))
        subprocess.run([BIN, "render", run, "-o", work / "ours.mp4", "--timings", work / "t.json", *ONE_FRAME_PER_CHECKPOINT],
                       check=True, capture_output=True)
        t = json.loads((work / "t.json").read_text())
        ours.append(frames / ((sum(t["draw"]) + sum(t["encode"]) + sum(t.get("finish", [0]))) / 1e3))
    c, o = statistics.median(cli), statistics.median(ours)
    say("\n### encode limit (1280x720, libx264 veryfast, CRF 20, 2 threads, rc-lookahead 5, sync-lookahead 0: Embedlapse's settings)")
    say(f"| ffmpeg CLI from raw frames | {c:.0f} fps |")
    say("|---|---:|")
    say(f"| Embedlapse draw + encode | {o:.0f} fps ({100 * o / c:.0f}% of the CLI) |")
    shutil.rmtree(work, ignore_errors=True)


def tween_rate(run, tween=10):
    """Tweened films: the frames between checkpoints reuse the keyframes' analysis, so the film
    stage (drawing and encoding, overlapped) runs near libx264's own rate. Ours: film frames over
    the render's wall time less its analysis; libx264's: the ffmpeg CLI on the same frames."""
    work = Path(tempfile.mkdtemp(prefix="bench-tween-"))
    subprocess.run([BIN, "render", run, "--frames-dir", work / "frames", "--tween", str(tween)], check=True, capture_output=True)
    frames = len(list((work / "frames").glob("*.png")))
    raw = work / "frames.bgra"
    subprocess.run(["ffmpeg", "-v", "error", "-i", work / "frames" / "frame-%04d.png", "-f", "rawvideo", "-pix_fmt", "bgra", raw],
                   check=True)
    cli, ours = [], []
    for _ in range(REPS):
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgra", "-s", "1280x720", "-r", "24",
                        "-i", raw, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-threads", "2",
                        "-x264-params", "rc-lookahead=5:sync-lookahead=0", "-pix_fmt", "yuv420p", work / "cli.mp4"], check=True)
        cli.append(frames / (time.perf_counter() - start))
        wall, _, _ = timed([BIN, "render", run, "-o", work / "ours.mp4", "--tween", str(tween), "--timings", work / "t.json"])
        t = json.loads((work / "t.json").read_text())
        analysis = sum(sum(t.get(stage, [])) for stage in ANALYSIS_STAGES) / 1e3
        ours.append(frames / (wall - analysis))
    c, o = statistics.median(cli), statistics.median(ours)
    say(f"\n### tweened film ({run.name}, --tween {tween}: {frames} frames at 1280x720, libx264 veryfast CRF 20)")
    say(f"| ffmpeg CLI from raw frames | {c:.0f} fps |")
    say("|---|---:|")
    say(f"| Embedlapse draw + encode (wall less analysis) | {o:.0f} fps ({100 * o / c:.0f}% of the CLI) |")
    shutil.rmtree(work, ignore_errors=True)


def live_latency(run, count=12, gap=1.5):
    """From a checkpoint's embeddings.npy being renamed into place and marked complete, as the Python
    helper writes it, to its frame landing (--latest PNG)."""
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    live = work / "run"
    live.mkdir()
    for f in ("labels.npy", "class_names.json", "images.npy"):
        if (run / f).exists():
            shutil.copy(run / f, live / f)
    latest = work / "latest.png"
    proc = subprocess.Popen([BIN, "watch", live, "-o", work / "live.mp4", "--latest", latest, *ONE_FRAME_PER_CHECKPOINT],
                            stderr=subprocess.DEVNULL)
    checkpoints = sorted((int(p.name.split("-")[1]), p) for p in run.glob("checkpoint-*"))[:count]
    latencies = []
    for step, source in checkpoints:
        target = live / source.name
        target.mkdir()
        shutil.copy(source / "embeddings.npy", target / ".embeddings.tmp")
        before = latest.stat().st_mtime_ns if latest.exists() else 0
        start = time.perf_counter()
        os.rename(target / ".embeddings.tmp", target / "embeddings.npy")
        (target / "embeddings.npy.complete").write_bytes(b"")
        while not (latest.exists() and latest.stat().st_mtime_ns != before):
            time.sleep(0.002)
        latencies.append((time.perf_counter() - start) * 1e3)
        time.sleep(gap)
    (live / "DONE").write_text("")
    proc.wait(timeout=120)
    say(f"\n### live latency ({run.name}, {len(latencies)} checkpoints, {gap} s apart)")
    say(f"| all: median | {statistics.median(latencies):.0f} ms | max {max(latencies):.0f} ms |")
    say("|---|---:|---:|")
    say(f"| after the first four: median | {statistics.median(latencies[4:]):.0f} ms | max {max(latencies[4:]):.0f} ms |")
    say(f"\nper checkpoint, ms: {', '.join(f'{x:.0f}' for x in latencies)}")
    shutil.rmtree(work, ignore_errors=True)


def cache_rerender(run, reps):
    """The analysis cache: analyse once, then films from it cost only drawing and encoding."""
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    analyse, _, _ = timed([BIN, "analyse", run, "--cache", work / "cache"])
    plain, cached, other = [], [], []
    for _ in range(reps):
        plain.append(timed([BIN, "render", run, "--no-cache", "-o", work / "plain.mp4", *ONE_FRAME_PER_CHECKPOINT])[0])
        cached.append(timed([BIN, "render", run, "--cache", work / "cache", "-o", work / "cached.mp4", *ONE_FRAME_PER_CHECKPOINT])[0])
        other.append(timed([BIN, "render", run, "--cache", work / "cache", "-o", work / "other.mp4", "--size", "1920x1080",
                            "--leaderboard", "label-issues"])[0])
    say(f"\n### analysis cache: {run.name} ({reps} runs each, medians)")
    say("| | wall s | |")
    say("|---|---:|---:|")
    say(f"| analyse into an empty cache | {analyse:.2f} | once |")
    say(f"| render --tween 1 without the cache | {statistics.median(plain):.2f} | |")
    say(f"| render --tween 1 from the cache | {statistics.median(cached):.2f} | {statistics.median(plain) / statistics.median(cached):.1f}x faster |")
    say(f"| render 1920x1080, label-issues, default tween, from the cache | {statistics.median(other):.2f} | |")
    shutil.rmtree(work, ignore_errors=True)


def memory_long(run):
    wall, rss, _ = timed([BIN, "render", run, "-o", Path(tempfile.mkdtemp()) / "long.mp4", *ONE_FRAME_PER_CHECKPOINT])
    say(f"\n### memory: {run.name}")
    say(f"| peak RSS | {rss:.0f} MB | wall {wall:.1f} s |")
    say("|---|---:|---:|")


def big_run(name, n, dim, checkpoints, seed=0):
    """A run from benchmarks/make_big_run.py (chunked, float32, bounded memory), reused when its
    truth.json says it was made with the same parameters (truth.json is written last)."""
    out = CACHE / name
    want = {"generator": "make_big_run.py", "n": n, "dim": dim, "checkpoints": checkpoints, "seed": seed}
    truth = out / "truth.json"
    if truth.exists():
        t = json.loads(truth.read_text())
        if all(t.get(k) == v for k, v in want.items()) and all(
                (out / f"checkpoint-{s}" / "embeddings.npy").exists() for s in t.get("steps", [None])):
            return out
    say(f"generating {name} (n={n}, dim={dim}, checkpoints={checkpoints}) with make_big_run.py ...")
    wall, rss, _ = timed([PY, ROOT / "benchmarks" / "make_big_run.py", out, "--n", n, "--dim", dim,
                          "--checkpoints", checkpoints, "--seed", seed, "--force"])
    say(f"  generated in {wall:.0f} s, peak RSS {rss:.0f} MB")
    return out


def knows_search():
    proc = subprocess.run([BIN, "render", "--help"], capture_output=True, text=True)
    return "--search" in proc.stdout + proc.stderr


LARGE_STAGES = ("pca", "outliers", "draw", "encode")
CERTIFICATE = ("certified_top", "cells", "exact_candidates", "refined", "sample",
               "sample_distance_error_median", "sample_distance_error_max",
               "sample_score_error_median", "sample_score_error_max")


def render_large(run, search):
    """One render at one frame per checkpoint without the cache: per-stage ms per checkpoint, wall,
    peak RSS, and per checkpoint the dump's search, certificate and planted outliers found in the top."""
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    wall, rss, _ = timed([BIN, "render", run, "--search", search, *ONE_FRAME_PER_CHECKPOINT, "--no-cache",
                          "-o", work / "film.mp4", "--timings", work / "t.json", "--dump-data", work / "dump"])
    t = json.loads((work / "t.json").read_text())
    planted = set(json.loads((run / "truth.json").read_text()).get("planted_outliers", []))
    per = []
    for p in sorted((work / "dump").glob("outliers-*.json"), key=lambda p: int(re.findall(r"\d+", p.name)[0])):
        d = json.loads(p.read_text())
        per.append({"step": d.get("step"), "search": d.get("search", "?"), "certificate": d.get("certificate"),
                    "planted_top": len(planted & set(d.get("indices", []))), "top": len(d.get("indices", []))})
    shutil.rmtree(work, ignore_errors=True)
    return {"wall": wall, "rss": rss, "stages": {k: t.get(k, []) for k in LARGE_STAGES}, "per": per,
            "planted": len(planted)}


def cleanlab_scaled(run, n, sizes=(5000, 10000)):
    """cleanlab's OutOfDistribution().fit_score on the first m rows of the first checkpoint, m in sizes,
    fitted as t = a*m^2 (least squares through the origin) and read at N."""
    import numpy as np
    from cleanlab.outlier import OutOfDistribution
    first = min(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    x = np.load(first / "embeddings.npy", mmap_mode="r")
    OutOfDistribution().fit_score(features=np.array(x[:500]), verbose=False)  # imports, first-call setup
    times = []
    for m in sizes:
        rows = np.array(x[:m])
        start = time.perf_counter()
        OutOfDistribution().fit_score(features=rows, verbose=False)
        times.append(time.perf_counter() - start)
    a = sum(t * m * m for t, m in zip(times, sizes)) / sum(float(m) ** 4 for m in sizes)
    return times, a * float(n) ** 2


def large():
    """100,000 x 768 searched exactly and 1,000,000 x 768 approximately: stage costs, the approximate
    search's certificate, the density frame's draw time, and cleanlab scaled from subsamples."""
    if not knows_search():
        say(f"\n### large: skipped ({BIN.name} render has no --search option yet)")
        return
    sizes = [("100,000 x 768", big_run("run100k-big", 100000, 768, 3), 100000, "exact"),
             ("1,000,000 x 768", big_run("run1m", 1000000, 768, 2), 1000000, "approximate")]
    results = []
    for label, run, n, search in sizes:
        say(f"  large: {label}, --search {search} ...")
        results.append((label, run, n, search, render_large(run, search)))
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    say("\n### large: one render each, --tween 1 --no-cache, ms per checkpoint (medians)")
    say("| points | search | checkpoints | pca | outliers | draw | encode | wall s | peak RSS MB | planted outliers in top |")
    say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, run, n, search, r in results:
        st = r["stages"]
        found = ", ".join(f"{p['planted_top']}/{min(r['planted'], p['top'])}" for p in r["per"])
        dumped = sorted({p["search"] for p in r["per"]})
        shown = search if dumped == [search] else f"{search} (dump says {', '.join(dumped)})"
        say(f"| {label} | {shown} | {len(r['per'])} | {med(st['pca']):.0f} | {med(st['outliers']):.0f} | "
            f"{med(st['draw']):.1f} | {med(st['encode']):.0f} | {r['wall']:.1f} | {r['rss']:.0f} | {found} |")
    for label, run, n, search, r in results:
        if search != "approximate":
            continue
        say(f"\napproximate search certificate, {label} (from the dump's outliers-<step>.json)\n")
        say("| step | search | " + " | ".join(CERTIFICATE) + " |")
        say("|---:|---|" + "---:|" * len(CERTIFICATE))
        for p in r["per"]:
            c = p["certificate"]
            if not isinstance(c, dict):
                say(f"| {p['step']} | {p['search']} | no certificate in the dump |" + " |" * (len(CERTIFICATE) - 1))
                continue
            cells = [f"{c[k]:.3g}" if isinstance(c.get(k), float) else str(c.get(k, "?")) for k in CERTIFICATE]
            say(f"| {p['step']} | {p['search']} | " + " | ".join(cells) + " |")
        draw = r["stages"]["draw"]
        later = f", after the first frame {med(draw[1:]):.1f}" if len(draw) > 1 else ""
        say(f"\ndensity frame draw at {label}: {med(draw):.1f} ms median per frame (first frame "
            f"{draw[0] if draw else float('nan'):.1f}{later}), target <= 20 ms: {'met' if med(draw) <= 20 else 'NOT met'}")
    say("\ncleanlab OutOfDistribution().fit_score, scaled from 5,000 and 10,000-row subsamples of the first "
        "checkpoint as m^2 (not run at full size)\n")
    say("| points | cleanlab 5,000 rows s | cleanlab 10,000 rows s | cleanlab est. s per checkpoint | "
        "Embedlapse outliers ms per checkpoint | ratio |")
    say("|---|---:|---:|---:|---:|---:|")
    for label, run, n, search, r in results:
        (t5, t10), est = cleanlab_scaled(run, n)
        ours = med(r["stages"]["outliers"])
        say(f"| {label} ({search}) | {t5:.2f} | {t10:.2f} | {est:.0f} | {ours:.0f} | {est * 1e3 / ours:.0f}x |")


def umap_learn_fit(embeddings, reps=2):
    """Median seconds of umap-learn fitting `embeddings` (cosine, n_neighbors 15, min_dist 0.1),
    after one fit that compiles its kernels; None without umap-learn."""
    script = (
        "import sys, time, numpy as np, umap\n"
        "x = np.load(sys.argv[1]).astype(np.float32)\n"
        "umap.UMAP(n_neighbors=15, min_dist=0.1, metric='cosine', random_state=0).fit(x[:500])\n"
        "for _ in range(int(sys.argv[2])):\n"
        "    t = time.perf_counter(); umap.UMAP(n_neighbors=15, min_dist=0.1, metric='cosine', random_state=0).fit(x)\n"
        "    print(time.perf_counter() - t)\n")
    proc = subprocess.run([PY, "-c", script, str(embeddings), str(reps)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return statistics.median(float(v) for v in proc.stdout.split())


def umap_section():
    """--projection umap: the whole render per checkpoint and the layout's share, against umap-learn
    fitting one checkpoint's points (after its compiling first fit); peak memory."""
    say("\n### UMAP (--projection umap) against umap-learn fitting the same points")
    say("| run | kind | render per checkpoint | analysis: first / following (median) | layout: first / following "
        "| umap-learn fit | ratio | peak RSS |")
    say("|---|---|---:|---:|---:|---:|---:|---:|")
    runs = [("cnn-fmnist (N=1000, D=128)", "real", ROOT / "samples" / "cnn-fmnist"),
            ("N=3000, D=768", "synthetic, decaying spectrum", synthetic("umap3k", 3000, 768, 6, "decaying")),
            ("N=10000, D=768", "synthetic, decaying spectrum", synthetic("umap10k", 10000, 768, 6, "decaying"))]
    if not QUICK:
        runs.append(("N=100000, D=768", "synthetic, decaying spectrum", synthetic("umap100k", 100000, 768, 3, "decaying")))
    for name, kind, run in runs:
        work = Path(tempfile.mkdtemp(prefix="bench-umap-"))
        steps = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
        wall, rss, _ = timed([BIN, "render", run, "--projection", "umap", "--no-cache", *ONE_FRAME_PER_CHECKPOINT,
                              "-o", work / "film.mp4", "--timings", work / "t.json"])
        stages = json.loads((work / "t.json").read_text())
        layout = stages.get("layout", [])
        per = wall / max(1, len(steps))
        following = statistics.median(layout[1:]) if len(layout) > 1 else float("nan")
        # Everything a checkpoint costs before it is drawn: search, PCA, layout, faithfulness, votes.
        analysis = [sum(values[i] for key, values in stages.items()
                        if key not in ("draw", "encode", "dump", "finish") and i < len(values))
                    for i in range(len(layout))]
        analysed = statistics.median(analysis[1:]) if len(analysis) > 1 else float("nan")
        reference = umap_learn_fit(run / f"checkpoint-{steps[-1]}" / "embeddings.npy", reps=1 if "100000" in name else 2)
        ratio = f"{reference / per:.1f}x" if reference else "n/a"
        fitted = f"{reference:.2f} s" if reference else "not installed"
        say(f"| {name} | {kind} | {per:.2f} s | {analysis[0] / 1000:.2f} / {analysed / 1000:.2f} s "
            f"| {layout[0]:.0f} / {following:.0f} ms | {fitted} | {ratio} | {rss:.0f} MB |")
        shutil.rmtree(work, ignore_errors=True)


def main():
    if not BIN.exists():
        raise SystemExit(f"{BIN} missing: build first (make bench does)")
    CACHE.mkdir(exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    say(f"# Embedlapse benchmark, {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores, {cpu})")
    say(f"{REPS} repetitions, reference and Embedlapse alternating; medians. Reference: shared/reference/"
        f"reference_pipeline.py (cleanlab, scikit-learn, scipy, matplotlib, imageio), --align previous.")
    if ONLY_LARGE:
        large()
        write_results("-large")
        return
    if ONLY_UMAP:
        umap_section()
        write_results("-umap")
        return
    say("Encoders differ as shipped: reference libx264 medium CRF 18 (imageio-ffmpeg), Embedlapse veryfast CRF 20, rc-lookahead 5.")
    run10k = synthetic("run10k", 10000, 768, 30)
    run2k = synthetic("run2k", 2000, 768, 30)
    say()
    compare("cnn-fmnist (N=1000, D=128, 31 checkpoints)", ROOT / "samples" / "cnn-fmnist", REPS)
    compare("synthetic N=2000, D=768, 30 checkpoints", run2k, REPS)
    if not QUICK:
        compare("synthetic N=10000, D=768, 30 checkpoints", run10k, max(1, min(REPS, 2)))
    encode_limit(run10k)
    tween_rate(ROOT / "samples" / "cnn-fmnist")
    live_latency(run10k)
    cache_rerender(run10k, max(1, min(REPS, 2)))
    umap_section()
    if not QUICK:
        memory_long(synthetic("run10k-100", 10000, 768, 100))
        large()
    write_results("-quick" if QUICK else "")


def write_results(suffix):
    name = f"{datetime.datetime.now():%Y-%m-%d-%H%M}-{platform.node()}{suffix}.md"
    (ROOT / "benchmarks" / "results" / name).write_text("\n".join(lines) + "\n")
    print(f"\nwritten to benchmarks/results/{name}")


if __name__ == "__main__":
    main()
