"""The real binary end to end: outputs checked with ffprobe, bad input, signals, inspect."""
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ONE_FRAME_PER_CHECKPOINT, ROOT, frame_written, run_cli

SAMPLE = ROOT / "samples" / "cnn-fmnist"


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    return info["streams"][0], info["format"]


def tiny_run(root, n=60, d=8, steps=(0, 10, 20), seed=0, dtype=np.float32):
    """A small valid run: three checkpoints of n x d embeddings, labels, names, images, losses."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % 3
    for i, step in enumerate(steps):
        emb = rng.standard_normal((n, d)) + (i + 1) * np.eye(3, d)[labels] * 2
        (root / f"checkpoint-{step}").mkdir()
        np.save(root / f"checkpoint-{step}" / "embeddings.npy", emb.astype(dtype))
    np.save(root / "labels.npy", labels.astype(np.int32))
    (root / "class_names.json").write_text(json.dumps(["alpha", "beta", "gamma"]))
    np.save(root / "images.npy", rng.integers(0, 255, (n, 12, 12), dtype=np.uint8))
    (root / "losses.csv").write_text("step,loss\n" + "".join(f"{s},{2.0 / (1 + s)}\n" for s in range(0, steps[-1] + 1, 2)))
    return root


# ---------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, binary):
    out = tmp_path_factory.mktemp("render")
    run_cli("render", SAMPLE, "-o", out / "film.mp4", "-o", out / "film.gif", "--frames-dir", out / "frames", *ONE_FRAME_PER_CHECKPOINT)
    return out


def test_mp4_is_h264_yuv420p_with_one_frame_per_checkpoint(rendered):
    stream, fmt = probe(rendered / "film.mp4")
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert (stream["width"], stream["height"]) == (1280, 720)
    assert int(stream["nb_read_frames"]) == 31
    assert abs(float(fmt["duration"]) - 31 / 5) < 0.01
    data = (rendered / "film.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "moov must come before mdat (faststart)"


def test_gif_loops_forever_with_exact_delays(rendered):
    stream, fmt = probe(rendered / "film.gif")
    assert stream["codec_name"] == "gif" and (stream["width"], stream["height"]) == (1280, 720)
    assert int(stream["nb_read_frames"]) == 31
    assert abs(float(fmt["duration"]) - 31 / 5) < 0.01
    data = (rendered / "film.gif").read_bytes()
    i = data.find(b"NETSCAPE2.0")
    assert i > 0 and struct.unpack("<H", data[i + 13:i + 15])[0] == 0, "loop count 0 (forever)"
    assert data.count(b"\x21\xf9\x04") >= 31, "one graphic control extension (delay) per frame"


def test_gif_palette_is_quantised_not_a_fixed_cube(rendered, tmp_path):
    """Decoded GIF frame vs the PNG of the same frame: a fixed 8-bit cube gives about 25 dB."""
    png = tmp_path / "gif.rgb"
    subprocess.run(["ffmpeg", "-v", "error", "-i", rendered / "film.gif", "-vf", "select=eq(n\\,30)", "-frames:v", "1",
                    "-f", "rawvideo", "-pix_fmt", "rgb24", png], check=True)
    ref = tmp_path / "png.rgb"
    subprocess.run(["ffmpeg", "-v", "error", "-i", rendered / "frames" / "frame-0030.png", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", ref], check=True)
    a = np.frombuffer(png.read_bytes(), np.uint8).astype(float)
    b = np.frombuffer(ref.read_bytes(), np.uint8).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
    assert psnr > 35, f"GIF frame PSNR {psnr:.1f} dB"


def test_png_frames_decode_and_show_content(rendered):
    frames = sorted((rendered / "frames").glob("frame-*.png"))
    assert [f.name for f in frames] == [f"frame-{i:04d}.png" for i in range(31)]
    stream, _ = probe(frames[-1])
    assert (stream["width"], stream["height"]) == (1280, 720)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", frames[-1], "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    pixels = np.frombuffer(raw, np.uint8).reshape(720, 1280, 3)
    colours = {tuple(p) for p in pixels[80:690, 30:640].reshape(-1, 3)[::7]}
    assert len(colours) > 50, "the scatter panel should hold many coloured dots"
    assert not list((rendered / "frames").glob(".*partial")), "no temporary files left"


def test_size_and_fps_options(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    run_cli("render", run, "-o", tmp_path / "small.mp4", "--size", "960x540", "--fps", "2", *ONE_FRAME_PER_CHECKPOINT)
    stream, fmt = probe(tmp_path / "small.mp4")
    assert (stream["width"], stream["height"]) == (960, 540) and int(stream["nb_read_frames"]) == 3
    assert abs(float(fmt["duration"]) - 1.5) < 0.01


def test_checkpoints_are_ordered_by_integer_step_and_empty_folders_skipped(tmp_path, binary):
    run = tiny_run(tmp_path / "run", steps=(5, 20, 100))
    (run / "checkpoint-50").mkdir()
    proc = run_cli("render", run, "--dump-data", tmp_path / "dump")
    assert "checkpoint-50: no embeddings.npy, skipped" in proc.stderr
    steps = [c["step"] for c in json.loads((tmp_path / "dump" / "alignment.json").read_text())["checkpoints"]]
    assert steps == [5, 20, 100]


@pytest.mark.parametrize("variant", ["float16", "float64", "big-endian", "fortran", "version-2", "version-3"])
def test_npy_variants_read_like_little_endian_float32(tmp_path, binary, variant):
    plain = tiny_run(tmp_path / "plain", dtype=np.float64)
    other = tmp_path / "other"
    shutil.copytree(plain, other)
    for ckpt in other.glob("checkpoint-*"):
        x = np.load(ckpt / "embeddings.npy")
        path = ckpt / "embeddings.npy"
        if variant == "float16":
            x = x.astype(np.float16)
            np.save(plain / ckpt.name / "embeddings.npy", x.astype(np.float32))
            np.save(path, x)
        elif variant == "float64":
            np.save(plain / ckpt.name / "embeddings.npy", x.astype(np.float32))
        elif variant == "big-endian":
            np.save(path, x.astype(">f4"))
        elif variant == "fortran":
            np.save(path, np.asfortranarray(x))
        else:
            with open(path, "wb") as f:
                version = (2, 0) if variant == "version-2" else (3, 0)
                np.lib.format.write_array(f, x, version=version)
    run_cli("render", plain, "--dump-data", tmp_path / "a")
    run_cli("render", other, "--dump-data", tmp_path / "b")
    for step in (0, 10, 20):
        a, b = np.load(tmp_path / "a" / f"pca-{step}.npy"), np.load(tmp_path / "b" / f"pca-{step}.npy")
        assert np.allclose(a, b, atol=1e-5 * np.abs(a).max()), variant


# ---------------------------------------------------------------- bad input


def corrupt(run, case):
    """Breaks a valid tiny run in one way; returns the file the error must name."""
    c10 = run / "checkpoint-10" / "embeddings.npy"
    if case == "missing-run":
        shutil.rmtree(run)
        return run
    if case == "empty-run":
        for p in run.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return run
    if case == "truncated-npy":
        c10.write_bytes(c10.read_bytes()[:-40])
        return c10
    if case == "not-npy":
        c10.write_bytes(b"hello, I am not an array")
        return c10
    if case == "integer-embeddings":
        np.save(c10, np.ones((60, 8), np.int32))
        return c10
    if case == "rows-differ":
        np.save(c10, np.ones((59, 8), np.float32))
        return c10
    if case == "dimension-changes":
        np.save(c10, np.ones((60, 9), np.float32))
        return c10
    if case == "nan-row":
        x = np.load(c10)
        x[7, 3] = np.nan
        np.save(c10, x)
        return c10
    if case == "inf-row":
        x = np.load(c10)
        x[2, 0] = np.inf
        np.save(c10, x)
        return c10
    if case == "labels-count":
        np.save(run / "labels.npy", np.zeros(61, np.int64))
        return run / "labels.npy"
    if case == "labels-float":
        np.save(run / "labels.npy", np.zeros(60, np.float32))
        return run / "labels.npy"
    if case == "images-count":
        np.save(run / "images.npy", np.zeros((59, 12, 12), np.uint8))
        return run / "images.npy"
    if case == "class-names-json":
        (run / "class_names.json").write_text("[\"alpha\", ")
        return run / "class_names.json"
    if case == "trainer-state-json":
        (run / "checkpoint-10" / "trainer_state.json").write_text("{not json")
        return run / "checkpoint-10" / "trainer_state.json"
    if case == "losses-csv-header":
        (run / "losses.csv").write_text("iteration,value\n1,2\n")
        return run / "losses.csv"
    if case == "losses-csv-value":
        (run / "losses.csv").write_text("step,loss\n1,2\n2,abc\n")
        return run / "losses.csv"
    if case == "fewer-than-3-samples":
        for p in run.glob("checkpoint-*/embeddings.npy"):
            np.save(p, np.ones((2, 8), np.float32))
        (run / "labels.npy").unlink()
        (run / "images.npy").unlink()
        return run / "checkpoint-0" / "embeddings.npy"
    if case == "identical-points":
        for p in run.glob("checkpoint-*/embeddings.npy"):
            np.save(p, np.ones((60, 8), np.float32))
        return run / "checkpoint-0" / "embeddings.npy"
    raise ValueError(case)


BAD_INPUTS = ["missing-run", "empty-run", "truncated-npy", "not-npy", "integer-embeddings", "rows-differ",
              "dimension-changes", "nan-row", "inf-row", "labels-count", "labels-float", "images-count",
              "class-names-json", "trainer-state-json", "losses-csv-header", "losses-csv-value",
              "fewer-than-3-samples", "identical-points"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_one_line_naming_the_file_and_leaves_nothing(tmp_path, binary, case):
    run = tiny_run(tmp_path / "run")
    culprit = corrupt(run, case)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("render", run, "-o", out / "film.mp4", "-o", out / "film.gif", "--frames-dir", out / "frames",
                   check=False)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("embedlapse: ") and str(culprit) in lines[0], lines[0]
    assert not (out / "film.mp4").exists() and not (out / "film.gif").exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name], "temporary files left behind"


@pytest.mark.parametrize("target,problem", [("missing-dir/film.mp4", "does not exist"), ("film.avi", "must end in .mp4 or .gif"),
                                            ("readonly/film.mp4", "not writable")])
def test_unwritable_output_is_refused_before_work(tmp_path, binary, target, problem):
    run = tiny_run(tmp_path / "run")
    (tmp_path / "readonly").mkdir()
    os.chmod(tmp_path / "readonly", 0o555)
    path = tmp_path / target
    proc = run_cli("render", run, "-o", path, check=False)
    os.chmod(tmp_path / "readonly", 0o755)
    if os.geteuid() == 0 and target.startswith("readonly"):
        pytest.skip("root writes anywhere: permission bits do not stop it")
    assert proc.returncode == 1 and str(path) in proc.stderr and problem in proc.stderr, proc.stderr
    assert not path.exists()


def test_usage_errors_exit_non_zero(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    for args in (["render", run], ["render", run, "-o", tmp_path / "a.mp4", "--size", "641x360"],
                 ["render", run, "-o", tmp_path / "a.mp4", "--fps", "0"], ["render", run, "-o", tmp_path / "a.mp4", "--align", "sideways"]):
        proc = run_cli(*args, check=False)
        assert proc.returncode != 0 and "Error" in proc.stderr, args


# ---------------------------------------------------------------- signals and inspect


def test_ctrl_c_finalises_a_playable_video(tmp_path, binary):
    run = tiny_run(tmp_path / "run", n=2500, d=256, steps=tuple(range(0, 400, 10)))
    frames = tmp_path / "frames"
    proc = subprocess.Popen([str(BINARY), "render", run, "-o", tmp_path / "film.mp4", "--frames-dir", frames, *ONE_FRAME_PER_CHECKPOINT],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not frame_written(frames, 2):
        assert proc.poll() is None and time.time() < deadline, "render ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    stream, _ = probe(tmp_path / "film.mp4")
    written = len(list(frames.glob("frame-*.png")))
    assert 3 <= int(stream["nb_read_frames"]) == written < 40


def test_inspect_describes_a_run(binary):
    proc = run_cli("inspect", SAMPLE)
    assert "checkpoints: 31 (steps 0 to 600)" in proc.stdout
    assert "N = 1000 samples, D = 128, float16" in proc.stdout
    assert "10 classes" in proc.stdout and "images: 1000 of 28x28 grey" in proc.stdout
    assert "problems: none" in proc.stdout


def test_inspect_lists_every_problem(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    corrupt(run, "nan-row")
    corrupt(run, "labels-count")
    (run / "checkpoint-20" / "embeddings.npy").write_bytes(b"\x93NUMPY garbage")
    proc = run_cli("inspect", run, check=False)
    assert proc.returncode == 1
    assert "problems: 3" in proc.stdout, proc.stdout
    assert "labels.npy" in proc.stdout and "checkpoint-20" in proc.stdout
