"""Issue 11: films that move (--tween, --trails) and the command line that asks for them."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, SHARED, frames_in, run_cli, wait_for
from test_cli import tiny_run


def duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=r_frame_rate,duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    stream = json.loads(out.stdout)["streams"][0]
    num, den = map(int, stream["r_frame_rate"].split("/"))
    return float(stream["duration"]), num / den


@pytest.mark.parametrize("tween", [1, 2, 4])
def test_film_has_a_keyframe_per_checkpoint_and_n_minus_one_between(tmp_path, binary, tween):
    run = tiny_run(tmp_path / "run", steps=(0, 10, 20, 30))
    run_cli("render", run, "-o", tmp_path / "film.mp4", "-o", tmp_path / "film.gif", "--frames-dir", tmp_path / "frames",
            "--tween", tween)
    expected = 3 * tween + 1
    assert frames_in(tmp_path / "film.mp4") == expected
    assert frames_in(tmp_path / "film.gif") == expected
    assert len(list((tmp_path / "frames").glob("frame-*.png"))) == expected


def test_keyframes_are_pixel_identical_to_the_untweened_film(tmp_path, binary):
    run = tiny_run(tmp_path / "run", n=150, steps=(0, 7, 20, 33, 50))
    for tween, trails in [(1, 2), (5, 2)]:
        run_cli("render", run, "--frames-dir", tmp_path / f"t{tween}", "--tween", tween, "--trails", trails)
    plain = sorted((tmp_path / "t1").glob("frame-*.png"))
    tweened = sorted((tmp_path / "t5").glob("frame-*.png"))
    assert len(plain) == 5 and len(tweened) == 21
    for k, frame in enumerate(plain):
        assert frame.read_bytes() == tweened[5 * k].read_bytes(), f"keyframe {k}"
    # The frames between are not copies of either neighbour: the points travel.
    assert tweened[2].read_bytes() != tweened[0].read_bytes() and tweened[2].read_bytes() != tweened[5].read_bytes()


def decoded(path):
    """RGB pixels of a PNG, decoded by ffmpeg (a real client)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True)
    return np.frombuffer(out.stdout, np.uint8).reshape(720, 1280, 3)


def test_in_between_frames_move_the_clusters_gradually(tmp_path, binary):
    """Each class's cloud travels between two checkpoints in steps, not in one cut: the centroid of
    its colour's pixels moves by a fraction of the whole way each frame, and ends where it goes."""
    run = tiny_run(tmp_path / "run", n=300, steps=(0, 10, 20))
    run_cli("render", run, "--frames-dir", tmp_path / "frames", "--tween", 6)
    frames = [decoded(p).astype(np.int16)[76:694, 24:642] for p in sorted((tmp_path / "frames").glob("frame-*.png"))]
    assert len(frames) == 13
    colours = {0: (0x33, 0x22, 0x88), 1: (0x88, 0xCC, 0xEE), 2: (0x44, 0xAA, 0x99)}  # the palette's first three
    moved = 0
    for colour in colours.values():
        def centroid(frame):
            ys, xs = np.nonzero(np.abs(frame - np.array(colour)).max(axis=2) < 40)
            return np.array([xs.mean(), ys.mean()])
        path = [centroid(f) for f in frames[:7]]
        whole = np.linalg.norm(path[6] - path[0])
        if whole < 20:
            continue  # this class hardly moves between these checkpoints
        moved += 1
        steps = [np.linalg.norm(path[i + 1] - path[i]) for i in range(6)]
        assert max(steps) < 0.5 * whole, (steps, whole)
        assert sum(steps) < 1.6 * whole, "the cloud goes the way it is going, without detours"
    assert moved >= 1, "the clusters should travel between these checkpoints"


def test_default_film_of_thirty_checkpoints_moves_for_ten_to_fifteen_seconds(tmp_path, binary):
    generator = SHARED / "reference" / "make_synthetic_run.py"
    run = tmp_path / "run"
    subprocess.run([sys.executable, str(generator), str(run), "--n", "300", "--dim", "16", "--checkpoints", "30", "--seed", "4"],
                   check=True, capture_output=True)
    run_cli("render", run, "-o", tmp_path / "film.mp4")
    seconds, fps = duration(tmp_path / "film.mp4")
    assert fps >= 24 and 10 <= seconds <= 15, (seconds, fps)
    run_cli("render", run, "-o", tmp_path / "slides.mp4", "--tween", "1")
    assert frames_in(tmp_path / "slides.mp4") == 30


def test_trails_change_the_frame_and_keep_keyframe_zero(tmp_path, binary):
    run = tiny_run(tmp_path / "run", n=200, steps=(0, 10, 20))
    for trails in (0, 2):
        run_cli("render", run, "--frames-dir", tmp_path / f"trails{trails}", "--tween", 1, "--trails", trails)
    plain, trailed = (sorted((tmp_path / f"trails{t}").glob("*.png")) for t in (0, 2))
    assert plain[0].read_bytes() == trailed[0].read_bytes(), "no trail before the second checkpoint"
    assert plain[2].read_bytes() != trailed[2].read_bytes()


@pytest.mark.parametrize("flag,value", [("--tween", "0"), ("--tween", "101"), ("--tween", "2.5"), ("--trails", "-1"),
                                        ("--trails", "21"), ("--size", "1280x720x"), ("--size", "+1280x720"),
                                        ("--size", "1280x720px"), ("--size", "1280 x720"), ("--size", "958x540"),
                                        ("--size", "960x538"), ("--size", "0x0")])
def test_bad_film_flags_are_refused_in_two_lines(tmp_path, binary, flag, value):
    run = tiny_run(tmp_path / "run")
    proc = run_cli("render", run, "-o", tmp_path / "film.mp4", flag, value, check=False)
    assert proc.returncode != 0 and proc.returncode < 128
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and flag in lines[0], proc.stderr
    assert not (tmp_path / "film.mp4").exists()


def test_smallest_legible_size_renders(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    run_cli("render", run, "--frames-dir", tmp_path / "frames", "--size", "960x540", "--tween", 1)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 3


def test_help_shows_sizes_as_people_type_them(binary):
    for command in ("render", "watch", "demo"):
        text = run_cli(command, "--help").stdout
        assert "(default: 1280x720)" in text and "FrameSize" not in text, command
        assert "\\\n" not in text and " \\ " not in text, f"stray backslash in {command} --help"
        assert "--tween" in text and "--trails" in text


def test_version_is_the_python_helpers(binary):
    import embedlapse
    proc = run_cli("--version")
    assert proc.stdout.strip() == embedlapse.__version__


def test_watch_runs_one_checkpoint_behind_and_latest_is_at_once(tmp_path, binary):
    from test_watch import RunWriter
    writer = RunWriter(tmp_path / "run", n=150, d=10)
    writer.renamed(0, 0)
    proc = subprocess.Popen([str(BINARY), "watch", writer.root, "-o", tmp_path / "live.mp4", "--latest", tmp_path / "latest.png",
                             "--tween", "4", "--frames-dir", tmp_path / "frames", "--dump-data", tmp_path / "dump"],
                            stderr=subprocess.PIPE, text=True)
    try:
        check_one_behind(writer, proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_one_behind(writer, proc, tmp_path):
    from test_watch import finish
    assert wait_for(lambda: (tmp_path / "latest.png").exists())
    # Checkpoint 0 alone: no segment to draw yet.
    time.sleep(1)
    assert not list((tmp_path / "frames").glob("frame-*.png"))
    writer.renamed(10, 1)
    # Checkpoint 1 lands: the segment from 0 to 1 is drawn (4 frames), the film ends one behind.
    assert wait_for(lambda: len(list((tmp_path / "frames").glob("frame-*.png"))) == 4)
    writer.renamed(20, 2)
    assert wait_for(lambda: len(list((tmp_path / "frames").glob("frame-*.png"))) == 8)
    latest = decoded(tmp_path / "latest.png")
    writer.done()
    finish(proc)
    frames = sorted((tmp_path / "frames").glob("frame-*.png"))
    assert len(frames) == 9 and frames_in(tmp_path / "live.mp4") == 9
    # --latest had the newest checkpoint before the film caught up to it.
    assert np.array_equal(latest, decoded(frames[8]))


def test_a_doubled_stop_signal_finalises_a_tweened_watch_with_every_checkpoint(tmp_path, binary):
    """A parent's death signal can arrive twice at once: it is one request, and the checkpoint the
    live film ran behind is still drawn before the video is closed."""
    from test_watch import RunWriter
    writer = RunWriter(tmp_path / "run", n=120, d=10)
    writer.renamed(0, 0)
    writer.renamed(10, 1)
    video = tmp_path / "live.mp4"
    proc = subprocess.Popen([str(BINARY), "watch", writer.root, "-o", video, "--tween", "3", "--latest", tmp_path / "latest.png"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: frames_in(video) == 3, timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "aborting" not in err, err
    assert frames_in(video) == 4, "the last checkpoint's own frame is drawn before the video closes"


def test_points_pass_through_checkpoints_without_slowing_to_a_stop(tmp_path, binary):
    """The scatter keeps moving through each checkpoint: on a real run, the mean pixel change from one
    frame to the next at a checkpoint is at least 60% of that in the middle of a segment (monotone
    per-coordinate paths, which stopped wherever a coordinate turned, gave 40%)."""
    tween = 10
    run_cli("render", SHARED / "runs" / "cnn-fmnist", "--frames-dir", tmp_path / "frames", "--tween", tween)
    frames = [decoded(p).astype(np.float32).mean(axis=2)[80:690, 25:640]
              for p in sorted((tmp_path / "frames").glob("frame-*.png"))]
    changes = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]
    # Each change by its place in the segment, past the first two segments (the fastest training).
    by_place = np.array([np.mean(changes[place::tween][2:]) for place in range(tween)])
    assert by_place.min() >= 0.6 * by_place.max(), by_place
