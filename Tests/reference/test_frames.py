"""Issue 11: frames that stay legible. Golden frames, label layout, density, the summary map and the
leaderboards, checked on rendered PNGs and the layout that --dump-data writes."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, frames_in, run_cli
from test_cli import tiny_run
from test_tween import decoded

GOLDEN = ROOT / "Tests" / "golden"
REFRESH = os.environ.get("EMBEDLAPSE_REFRESH_GOLDEN") == "1"

# The scatter panel at 1280x720 (FrameLayout: margin 24, top 76, side 618), with a pixel of slack.
PANEL = (23, 75, 643, 695)


def golden_run(root):
    """A fixed small run: four classes drifting apart over four checkpoints, a few planted
    outliers, labels, names, images and losses. Seeded: the same bytes on every machine."""
    rng = np.random.default_rng(20261128)
    n, d = 400, 16
    labels = np.arange(n) % 4
    root.mkdir(parents=True)
    centres = rng.standard_normal((4, d)) * 3
    noise = rng.standard_normal((n, d))
    for i, step in enumerate((0, 50, 100, 150)):
        x = noise * (1.5 - 0.3 * i) + centres[labels] * (0.3 + 0.3 * i)
        x[:6] = rng.standard_normal((6, d)) * 6
        (root / f"checkpoint-{step}").mkdir()
        np.save(root / f"checkpoint-{step}" / "embeddings.npy", x.astype(np.float32))
    np.save(root / "labels.npy", labels)
    (root / "class_names.json").write_text(json.dumps(["cat", "dog", "bird", "fish"]))
    np.save(root / "images.npy", rng.integers(0, 255, (n, 16, 16), dtype=np.uint8))
    (root / "losses.csv").write_text("step,loss\n" + "".join(f"{s},{2.5 * np.exp(-s / 60) + 0.1:.6f}\n" for s in range(0, 151, 5)))
    return root


GOLDEN_FRAMES = {"keyframe-first": 0, "between": 4, "keyframe-last": 9, "summary": 10}


@pytest.fixture(scope="module")
def golden_frames(tmp_path_factory, binary):
    out = tmp_path_factory.mktemp("golden")
    run = golden_run(out / "run")
    run_cli("render", run, "--frames-dir", out / "frames", "--tween", 3, "--trails", 2, "--summary-frame")
    return out / "frames"


@pytest.mark.parametrize("name", list(GOLDEN_FRAMES))
def test_golden_frames(golden_frames, name, tmp_path):
    """The frame as a person approved it, within a tolerance for antialiasing; `make golden`
    refreshes the files on purpose. On failure the difference image is written beside the test's files."""
    frame = golden_frames / f"frame-{GOLDEN_FRAMES[name]:04d}.png"
    golden = GOLDEN / f"{name}.png"
    if REFRESH:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(frame.read_bytes())
        return
    assert golden.exists(), f"{golden} is missing: run `make golden`, look at the frames, and commit them"
    got, want = decoded(frame).astype(np.int16), decoded(golden).astype(np.int16)
    difference = np.abs(got - want).max(axis=2)
    off = (difference > 24).mean()
    if off > 0.002 or difference.mean() > 1.0:
        diff_path = tmp_path / f"{name}-diff.png"
        image = np.where(difference[..., None] > 24, np.array([255, 0, 0], np.uint8), (want // 3 + 170).astype(np.uint8))
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "1280x720", "-i", "-", str(diff_path)],
                       input=image.astype(np.uint8).tobytes(), check=True)
        pytest.fail(f"{name}: {off:.3%} of pixels differ (mean {difference.mean():.2f}); difference image: {diff_path}")


def overlaps(a, b):
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def crowded_run(root, seed):
    """Thirty-two outliers packed into one spot of the plane, where their labels would pile up."""
    rng = np.random.default_rng(seed)
    n, d = 900, 12
    labels = np.arange(n) % 3
    root.mkdir(parents=True)
    for i, step in enumerate((0, 10)):
        x = rng.standard_normal((n, d)) * 0.3 + np.eye(3, d)[labels] * 4
        x[:32] = np.eye(3, d)[0] * 4 + rng.standard_normal((32, d)) * 2.5 + np.eye(d)[5] * 3
        (root / f"checkpoint-{step}").mkdir()
        np.save(root / f"checkpoint-{step}" / "embeddings.npy", x.astype(np.float32))
    np.save(root / "labels.npy", labels)
    return root


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("size", ["1280x720", "1920x1080"])
def test_outlier_labels_never_overlap_nor_leave_the_panel(tmp_path, binary, seed, size):
    run = crowded_run(tmp_path / "run", seed)
    run_cli("render", run, "--dump-data", tmp_path / "dump", "--top", 32, "--size", size)
    scale = int(size.split("x")[1]) / 720
    left, top, right, bottom = (v * scale for v in PANEL)
    for step in (0, 10):
        labels = json.loads((tmp_path / "dump" / f"labels-{step}.json").read_text())
        assert sorted(label["text"] for label in labels) == sorted(str(r) for r in range(1, 33))
        for i, a in enumerate(labels):
            assert a["width"] > 0 and a["height"] > 0
            assert left <= a["x"] and a["x"] + a["width"] <= right and top <= a["y"] and a["y"] + a["height"] <= bottom, a
            for b in labels[i + 1:]:
                assert not overlaps(a, b), (a, b)


def test_density_draws_large_sets_and_dots_stay_for_small_ones(tmp_path, binary):
    run = tiny_run(tmp_path / "run", n=300)
    for style in ("auto", "dots", "density"):
        run_cli("render", run, "--frames-dir", tmp_path / style, "--tween", 1, "--points", style)
    frame = "frame-0002.png"
    assert (tmp_path / "auto" / frame).read_bytes() == (tmp_path / "dots" / frame).read_bytes(), "300 points are dots"
    dense = decoded(tmp_path / "density" / frame)[76:694, 24:642]
    dots = decoded(tmp_path / "dots" / frame)[76:694, 24:642]
    assert not np.array_equal(dense, dots)
    # Density colours each occupied pixel; dots cover discs around each point: both show the cloud.
    assert (np.abs(dense.astype(int) - 250).max(axis=2) > 30).sum() > 100


def test_points_beyond_the_view_become_edge_markers(tmp_path, binary):
    """A sample far beyond the 99th-percentile radius is marked on the panel's edge, pointing out,
    instead of sitting clipped on the border."""
    rng = np.random.default_rng(5)
    run = tmp_path / "run"
    run.mkdir()
    x = rng.standard_normal((500, 6)).astype(np.float32)
    x[0] = 0
    x[0, 0] = 80  # far along the first principal axis
    for step in (0, 10):
        (run / f"checkpoint-{step}").mkdir()
        np.save(run / f"checkpoint-{step}" / "embeddings.npy", x + rng.standard_normal(x.shape).astype(np.float32) * 0.01)
    run_cli("render", run, "--frames-dir", tmp_path / "frames", "--tween", 1, "--dump-data", tmp_path / "dump")
    aligned = np.load(tmp_path / "dump" / "aligned-0.npy")
    assert np.abs(aligned[0]).max() > 1.08, "the sample lies beyond the view"
    pixels = decoded(tmp_path / "frames" / "frame-0000.png").astype(int)
    panel = pixels[76:694, 24:642]
    # The first class colour (0x332288) appears within a few pixels of the edge the sample lies beyond.
    ink = np.abs(panel - np.array([0x33, 0x22, 0x88])).max(axis=2) < 40
    edges = {"left": ink[:, :9], "right": ink[:, -9:], "top": ink[:9, :], "bottom": ink[-9:, :]}
    dx, dy = aligned[0]
    side = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("top" if dy > 0 else "bottom")
    assert edges[side].sum() >= 6, f"no marker on the {side} edge"


def test_summary_frame_closes_the_film(tmp_path, binary):
    run = tiny_run(tmp_path / "run", n=200, steps=(0, 10, 20, 30))
    run_cli("render", run, "--frames-dir", tmp_path / "frames", "-o", tmp_path / "film.mp4", "--tween", 2, "--summary-frame",
            "--fps", 10)
    frames = sorted((tmp_path / "frames").glob("frame-*.png"))
    assert len(frames) == 3 * 2 + 1 + 1
    # Videos hold it for three seconds.
    assert frames_in(tmp_path / "film.mp4") == 7 + 30
    last, before = decoded(frames[-1]), decoded(frames[-2])
    assert (np.abs(last.astype(int) - before.astype(int)).max(axis=2) > 40).mean() > 0.05, "a different frame"


@pytest.mark.parametrize("flags", [["--summary-frame"], ["--leaderboard", "label-issues"]])
def test_label_views_need_labels(tmp_path, binary, flags):
    run = tiny_run(tmp_path / "run")
    (run / "labels.npy").unlink()
    proc = run_cli("render", run, "-o", tmp_path / "film.mp4", *flags, check=False)
    assert proc.returncode == 1 and "labels" in proc.stderr and flags[0] in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "film.mp4").exists()


@pytest.mark.parametrize("ranking", ["outliers", "label-issues", "movers"])
def test_leaderboards_render_and_rank_as_the_dump_says(tmp_path, binary, ranking):
    run = tiny_run(tmp_path / "run", n=240, steps=(0, 10, 20))
    run_cli("render", run, "--frames-dir", tmp_path / "frames", "--tween", 1, "--leaderboard", ranking, "--dump-data", tmp_path / "d")
    assert len(list((tmp_path / "frames").glob("*.png"))) == 3
    labels = json.loads((tmp_path / "d" / "labels-20.json").read_text())
    if ranking == "movers":
        assert {label["text"] for label in labels} <= {str(r) for r in range(1, 9)}
    else:
        assert sorted(int(label["text"]) for label in labels) == list(range(1, 9))


@pytest.mark.parametrize("command", ["", "render", "watch", "compare", "serve", "export", "analyse", "demo", "inspect"])
def test_help_text_snapshot(binary, command):
    """The help as approved (Tests/golden/help-*.txt; `make golden` rewrites them): a flag or default
    that changes shows up here, in review."""
    args = [command, "--help"] if command else ["--help"]
    text = subprocess.run([str(binary), *args], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout
    golden = GOLDEN / f"help-{command or 'embedlapse'}.txt"
    if REFRESH:
        golden.write_text(text)
        return
    assert golden.exists(), f"{golden} is missing: run `make golden`"
    assert text == golden.read_text(), f"`embedlapse {' '.join(args)}` changed: review it, then `make golden`"
