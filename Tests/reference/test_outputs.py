"""The output side with the real binary: every path checked before any work, full disks, stale and
leftover files, aborts, and live outputs that hold the same frames at every moment."""
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ONE_FRAME_PER_CHECKPOINT, frame_written, frames_in, wait_for

# What Foundation's error descriptions look like; no output error may show one.
FOUNDATION_WORDS = ("NSCocoaErrorDomain", "Error Domain=", "CocoaError", "NSPOSIXErrorDomain",
                    "The operation could not be completed", "Foundation.")


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([str(BINARY), *map(str, args), *ONE_FRAME_PER_CHECKPOINT], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def error_line(proc):
    """The one `embedlapse: ...` line of a failed run, checked for plain words."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("embedlapse: ")]
    assert len(lines) == 1, proc.stderr
    assert not any(word in proc.stderr for word in FOUNDATION_WORDS), proc.stderr
    assert "Swift runtime failure" not in proc.stderr and "Fatal error" not in proc.stderr, proc.stderr
    return lines[0]


def make_run(root, n=60, d=8, checkpoints=3, seed=0):
    """A small valid run directory: `checkpoints` checkpoints of n x d embeddings and labels."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % 3
    for i in range(checkpoints):
        add_checkpoint(root, i, rng.standard_normal((n, d)) + (i + 1) * np.eye(3, d)[labels] * 2)
    np.save(root / "labels.npy", labels.astype(np.int32))
    return root


def add_checkpoint(root, i, embeddings):
    """Checkpoint i (step 10 i), written whole and renamed into place, as trainers do."""
    folder = Path(root) / f"checkpoint-{i * 10}"
    folder.mkdir(exist_ok=True)
    with open(folder / ".embeddings.npy.tmp", "wb") as f:
        np.save(f, np.asarray(embeddings, np.float32))
    (folder / ".embeddings.npy.tmp").rename(folder / "embeddings.npy")




def files_under(root):
    return {p.relative_to(root) for p in Path(root).rglob("*")}


def partials_under(root):
    return [p for p in Path(root).rglob("*") if p.name.endswith(".partial")]


def dead_pid():
    """The PID of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class Watched:
    """`embedlapse watch` in the background, with its stderr collected line by line."""

    def __init__(self, *args, cwd=None):
        self.proc = subprocess.Popen([str(BINARY), "watch", *map(str, args), *ONE_FRAME_PER_CHECKPOINT], stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def said(self, text):
        return any(text in line for line in self.lines)

    def finish(self, timeout=120):
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.proc.returncode, "".join(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def background():
    """Processes a test starts: killed if the test fails before they end."""
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- every path checked before any work


def setup_places(tmp):
    """Things in the way, shared by the cases below."""
    (tmp / "sub").mkdir()
    (tmp / "real").mkdir()
    (tmp / "link").symlink_to(tmp / "real")
    (tmp / "a-folder.mp4").mkdir()
    (tmp / "folder").mkdir()
    (tmp / "file.txt").write_text("not a folder")
    (tmp / "earlier.mp4").write_bytes(b"earlier video")
    (tmp / "alias.mp4").symlink_to(tmp / "earlier.mp4")


# (case, arguments, words the one error line must hold)
REFUSED = [
    ("same video twice", ["-o", "a.mp4", "-o", "./a.mp4"], ["a.mp4", "./a.mp4", "same file"]),
    ("same video through ..", ["-o", "sub/../a.gif", "-o", "a.gif"], ["sub/../a.gif", "a.gif", "same file"]),
    ("same video through a linked folder", ["-o", "link/a.mp4", "-o", "real/a.mp4"], ["link/a.mp4", "real/a.mp4", "same file"]),
    ("two names for one existing file", ["-o", "earlier.mp4", "-o", "alias.mp4"], ["earlier.mp4", "alias.mp4", "same file"]),
    ("latest on the video", ["--latest", "x.mp4", "-o", "x.mp4"], ["the video x.mp4", "x.mp4:", "same file"]),
    ("timings on the video", ["-o", "film.mp4", "--timings", "./film.mp4"], ["./film.mp4", "the video film.mp4", "same file"]),
    ("latest on a frame", ["--frames-dir", "frames", "--latest", "frames/frame-0001.png"],
     ["frames/frame-0001.png", "the frames folder frames"]),
    ("timings on a dump file", ["--dump-data", "dump", "-o", "a.mp4", "--timings", "dump/alignment.json"],
     ["dump/alignment.json", "the data folder dump"]),
    ("frames folder on the video", ["-o", "film.mp4", "--frames-dir", "film.mp4"], ["film.mp4", "same path"]),
    ("frames folder inside the video", ["-o", "film.mp4", "--frames-dir", "film.mp4/frames"], ["film.mp4/frames", "film.mp4"]),
    ("video is a folder", ["-o", "a-folder.mp4"], ["a-folder.mp4", "is a folder"]),
    ("timings is a folder", ["-o", "a.mp4", "--timings", "folder"], ["folder", "is a folder"]),
    ("unknown video type", ["-o", "film.avi"], ["film.avi", "must end in .mp4 or .gif"]),
    ("no video type", ["-o", "film"], ["film", "must end in .mp4 or .gif"]),
    ("latest not a png", ["-o", "a.mp4", "--latest", "latest.jpg"], ["latest.jpg", "must end in .png"]),
    ("timings folder missing", ["-o", "a.mp4", "--timings", "missing/t.json"], ["missing/t.json", "does not exist"]),
    ("timings folder is a file", ["-o", "a.mp4", "--timings", "file.txt/t.json"], ["file.txt/t.json", "not a folder"]),
    ("video folder missing", ["-o", "missing/a.mp4"], ["missing/a.mp4", "does not exist"]),
    ("video folder is a file", ["-o", "file.txt/a.gif"], ["file.txt/a.gif", "not a folder"]),
    ("latest folder missing", ["-o", "a.mp4", "--latest", "missing/l.png"], ["missing/l.png", "does not exist"]),
    ("frames folder is a file", ["-o", "a.mp4", "--frames-dir", "file.txt"], ["file.txt", "not a folder"]),
    ("dump folder under a file", ["-o", "a.mp4", "--dump-data", "file.txt/dump"], ["file.txt/dump", "not a folder"]),
    ("video name too long", ["-o", "v" * 250 + ".mp4"], ["too long"]),
    ("empty video path", ["-o", ""], ["empty"]),
]


@pytest.mark.parametrize("case,args,words", REFUSED, ids=[case for case, _, _ in REFUSED])
def test_outputs_are_checked_before_any_work(tmp_path, binary, case, args, words):
    run = make_run(tmp_path / "run")
    work = tmp_path / "work"
    work.mkdir()
    setup_places(work)
    before = files_under(work)
    proc = cli("render", run, *args, cwd=work)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc)
    for word in words:
        assert word in line, f"{case}: {word!r} not in {line!r}"
    assert files_under(work) == before, f"{case}: something was written: {files_under(work) - before}"
    assert (work / "earlier.mp4").read_bytes() == b"earlier video"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no one may write in: a read-only tmpfs as root (permission bits do not stop root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
            pytest.skip("root, and mount is not permitted: cannot make a folder root cannot write in")
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.mark.parametrize("option,name", [("-o", "film.mp4"), ("--latest", "latest.png"), ("--timings", "t.json"),
                                         ("--frames-dir", "frames"), ("--dump-data", "dump")])
def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, binary, read_only_folder, option, name):
    run = make_run(tmp_path / "run")
    extra = [] if option == "-o" else ["-o", tmp_path / "film.gif"]
    proc = cli("render", run, option, read_only_folder / name, *extra)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc)
    assert str(read_only_folder / name) in line and "not writable" in line, line
    assert not (tmp_path / "film.gif").exists(), "nothing may be written before the outputs are checked"


def test_extensions_are_known_in_either_case(tmp_path, binary):
    run = make_run(tmp_path / "run")
    proc = cli("render", run, "-o", tmp_path / "film.MP4", "-o", tmp_path / "film.Gif", "--latest", tmp_path / "latest.PNG")
    assert proc.returncode == 0, proc.stderr
    assert frames_in(tmp_path / "film.MP4") == 3 and frames_in(tmp_path / "film.Gif") == 3
    assert (tmp_path / "latest.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fps", ["1e-300", "5e-324", "0.001", "0.009", "1e300", "120.5", "nan", "inf", "-1"])
@pytest.mark.parametrize("video", ["a.gif", "a.mp4"])
def test_out_of_range_rates_are_refused_not_crashed_on(tmp_path, binary, fps, video):
    run = make_run(tmp_path / "run")
    proc = cli("render", run, "-o", tmp_path / video, "--fps", fps)
    assert proc.returncode in (1, 64), f"--fps {fps}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Swift runtime failure" not in proc.stderr and "Fatal error" not in proc.stderr
    assert "fps" in proc.stderr or "frames per second" in proc.stderr, proc.stderr
    assert not (tmp_path / video).exists() and not partials_under(tmp_path)


# ---------------------------------------------------------------- --frames-dir: no stale frames


def test_frames_of_an_earlier_longer_render_are_removed_and_nothing_else(tmp_path, binary):
    frames = tmp_path / "frames"
    longer = cli("render", make_run(tmp_path / "longer", checkpoints=12), "--frames-dir", frames)
    assert longer.returncode == 0, longer.stderr
    run = make_run(tmp_path / "run")
    # Files of frame names that Embedlapse did not write are someone else's: never removed.
    (frames / "frame-123456.png").write_bytes(b"earlier")
    (frames / "frame-00007.png").write_bytes(b"earlier")
    keep = ["notes.txt", "frame-12.png", "frame-0001.png.bak", "frame-0003.PNG", "frame-abcd.png", "Frame-0004.png",
            "frame-0005.jpg", "xframe-0006.png", "frame--0007.png", "frame-0008.png~", "frame-123456.png", "frame-00007.png"]
    for name in keep[:-2]:
        (frames / name).write_bytes(b"someone else's")
    (frames / "frame-0020.png").mkdir()  # a folder is not a frame, whatever its name
    proc = cli("render", run, "--frames-dir", frames)
    assert proc.returncode == 0, proc.stderr
    ours = sorted(p.name for p in frames.iterdir() if re.fullmatch(r"frame-\d{4,}\.png", p.name) and p.is_file())
    assert ours == sorted(["frame-0000.png", "frame-0001.png", "frame-0002.png", "frame-00007.png", "frame-123456.png"])
    assert all((frames / f"frame-000{i}.png").read_bytes()[:4] == b"\x89PNG" for i in range(3))
    for name in keep[:-2]:
        assert (frames / name).read_bytes() == b"someone else's", name
    assert (frames / "frame-0020.png").is_dir()


def test_a_failed_render_keeps_the_earlier_frames_it_did_not_replace(tmp_path, binary):
    run = make_run(tmp_path / "run", checkpoints=4)
    (run / "checkpoint-20" / "embeddings.npy").write_bytes(b"\x93NUMPY broken")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        (frames / f"frame-{i:04d}.png").write_bytes(b"earlier")
    proc = cli("render", run, "--frames-dir", frames)
    assert proc.returncode == 1
    assert all((frames / f"frame-{i:04d}.png").read_bytes() == b"earlier" for i in range(2, 8))


# ---------------------------------------------------------------- leftovers of killed runs


def test_leftover_temporaries_of_ended_runs_are_removed_and_nothing_else(tmp_path, binary):
    run = make_run(tmp_path / "run")
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "dump").mkdir()
    dead, alive = dead_pid(), os.getpid()
    removed = [f".film.mp4.{dead}.partial", f".film.gif.{dead}.partial", f".latest.png.{dead}.partial",
               f".t.json.{dead}.partial", f"frames/.frame-0001.png.{dead}.partial", f"frames/.frame-0040.png.{dead}.partial",
               f"dump/.pca-10.npy.{dead}.partial", f"dump/.alignment.json.{dead}.partial"]
    kept = [f".film.mp4.{alive}.partial", f".other.mp4.{dead}.partial", ".film.mp4.12ab.partial", ".film.mp4..partial",
            f"frames/.notes.txt.{dead}.partial", f"dump/.notes.npy.{dead}.partial", f"film.mp4.{dead}.partial"]
    # The same names without Embedlapse's mark are someone else's files: kept too.
    unmarked = [f".film.gif.{dead}.partial".replace(".film", ".film2"), f"dump/.pca-20.npy.{dead}.partial"]
    for name in removed + kept + unmarked:
        (out / name).write_bytes(b"left over")
        if name not in unmarked:
            os.setxattr(out / name, "user.embedlapse", b"output")  # as Embedlapse marks what it writes
    kept += unmarked
    proc = cli("render", run, "-o", out / "film.mp4", "-o", out / "film.gif", "--latest", out / "latest.png",
               "--timings", out / "t.json", "--frames-dir", out / "frames", "--dump-data", out / "dump")
    assert proc.returncode == 0, proc.stderr
    assert [name for name in removed if (out / name).exists()] == []
    assert [name for name in kept if not (out / name).exists()] == []


def slow_run(root, checkpoints=40):
    return make_run(root, n=2500, d=256, checkpoints=checkpoints)


def test_a_killed_render_leaves_no_visible_file_and_the_next_render_clears_what_it_staged(tmp_path, binary, background):
    run = slow_run(tmp_path / "run")
    frames = tmp_path / "frames"
    proc = subprocess.Popen([str(BINARY), "render", run, "-o", tmp_path / "film.mp4", "--frames-dir", frames, *ONE_FRAME_PER_CHECKPOINT],
                            stderr=subprocess.DEVNULL)
    background.append(proc)
    assert wait_for(lambda: frame_written(frames, 2) or proc.poll() is not None, timeout=120)
    assert proc.poll() is None, "the render ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The video was an unnamed file: nothing of it is left. The frames were staged out of sight.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "run"]
    assert [p.name for p in frames.iterdir()] == [f".embedlapse-staging.{proc.pid}.partial"]
    again = cli("render", make_run(tmp_path / "small"), "-o", tmp_path / "film.mp4", "--frames-dir", frames)
    assert again.returncode == 0, again.stderr
    assert partials_under(tmp_path) == [] and frames_in(tmp_path / "film.mp4") == 3
    assert sorted(p.name for p in frames.iterdir()) == ["frame-0000.png", "frame-0001.png", "frame-0002.png"]


# ---------------------------------------------------------------- a second Ctrl-C


def test_a_second_ctrl_c_leaves_playable_videos_or_none(tmp_path, binary, background):
    run = slow_run(tmp_path / "run")
    frames = tmp_path / "frames"
    proc = subprocess.Popen([str(BINARY), "render", run, *ONE_FRAME_PER_CHECKPOINT, "-o", tmp_path / "film.mp4", "-o", tmp_path / "film.gif",
                             "--frames-dir", frames, "--latest", tmp_path / "latest.png"],
                            stderr=subprocess.PIPE, text=True)
    background.append(proc)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    assert wait_for(lambda: frame_written(frames, 2) or proc.poll() is not None, timeout=120)
    assert proc.poll() is None, "the render ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: any("stopping" in line for line in lines), timeout=10)
    time.sleep(0.6)  # signals within half a second of the first are the same request
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130, "".join(lines)
    assert partials_under(tmp_path) == [], "temporaries left by the abort"
    for video in ("film.mp4", "film.gif"):
        assert not (tmp_path / video).exists() or frames_in(tmp_path / video), f"{video} exists but does not play"


def test_a_second_ctrl_c_in_a_watch_leaves_both_live_videos_whole_and_alike(tmp_path, binary):
    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "labels.npy", np.arange(200) % 4)
    for i in range(3):
        add_checkpoint(run, i, rng.standard_normal((200, 12)))
    mp4, gif = tmp_path / "live.mp4", tmp_path / "live.gif"
    watch = Watched(run, "-o", mp4, "-o", gif)
    try:
        assert wait_for(lambda: frames_in(mp4) == 3 and frames_in(gif) == 3, timeout=60), (frames_in(mp4), frames_in(gif))
        watch.proc.send_signal(signal.SIGINT)
        wait_for(lambda: watch.said("stopping"), timeout=10)
        time.sleep(0.6)
        watch.proc.send_signal(signal.SIGINT)
        code, err = watch.finish()
    finally:
        watch.kill()
    assert code == 130, err
    assert frames_in(mp4) == frames_in(gif) == 3
    assert gif.read_bytes()[-1:] == b"\x3b", "a GIF ends with its trailer"
    assert partials_under(tmp_path) == []


# ---------------------------------------------------------------- live outputs in step


def test_live_gif_and_mp4_hold_the_same_frames_after_every_checkpoint(tmp_path, binary):
    rng = np.random.default_rng(2)
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "labels.npy", np.arange(200) % 4)
    mp4, gif, latest = tmp_path / "live.mp4", tmp_path / "live.gif", tmp_path / "latest.png"
    watch = Watched(run, "-o", mp4, "-o", gif, "--latest", latest, "--frames-dir", tmp_path / "frames")
    try:
        for i in range(5):
            add_checkpoint(run, i, rng.standard_normal((200, 12)) + i)
            # Each output holds frame i as soon as it is rendered: no encoder or muxer holds one back.
            assert wait_for(lambda: frames_in(mp4) == i + 1 and frames_in(gif) == i + 1, timeout=30), \
                f"after checkpoint {i + 1}: mp4 {frames_in(mp4)}, gif {frames_in(gif)}"
            assert (tmp_path / "frames" / f"frame-{i:04d}.png").exists()
            assert gif.read_bytes()[-1:] == b"\x3b", "the live GIF is whole, trailer included, after each frame"
        (run / "DONE").write_text("")
        code, err = watch.finish()
    finally:
        watch.kill()
    assert code == 0, err
    assert frames_in(mp4) == frames_in(gif) == 5


# ---------------------------------------------------------------- full disks


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KiB file system (tmpfs, as root), to fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root and a mount permission")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave=0):
    """Fills the disk but for about `leave` bytes."""
    stats = os.statvfs(disk)
    with open(disk / "ballast", "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))


@pytest.mark.parametrize("video", ["film.mp4", "film.gif"])
def test_a_full_disk_leaves_an_offline_videos_earlier_file_as_it_was(tmp_path, binary, small_disk, video):
    run = make_run(tmp_path / "run", checkpoints=60)
    earlier = small_disk / video
    earlier.write_bytes(b"the earlier video")
    proc = cli("render", run, "-o", earlier)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc)
    assert re.search(rf"{re.escape(str(earlier))}: disk full after \d+ frames?: no video written", line), line
    assert earlier.read_bytes() == b"the earlier video"
    assert partials_under(small_disk) == []


@pytest.mark.parametrize("video", ["live.mp4", "live.gif"])
def test_a_full_disk_keeps_the_whole_frames_of_a_live_video(tmp_path, binary, small_disk, video):
    run = make_run(tmp_path / "run", checkpoints=60)
    (run / "DONE").write_text("")
    watch = Watched(run, "-o", small_disk / video)
    try:
        code, err = watch.finish()
    finally:
        watch.kill()
    assert code == 1, err
    line = [line for line in err.splitlines() if line.startswith("embedlapse: ")][-1]
    assert not any(word in err for word in FOUNDATION_WORDS), err
    found = re.search(rf"{re.escape(str(small_disk / video))}: disk full after (\d+) frames?: kept the (\d+) frames? written", line)
    assert found, line
    kept = int(found.group(2))
    assert 1 <= kept <= int(found.group(1)) < 60
    assert frames_in(small_disk / video) == kept, "the kept frames play, and no more"
    if video.endswith(".gif"):
        assert (small_disk / video).read_bytes()[-1:] == b"\x3b"


@pytest.mark.parametrize("option", ["--frames-dir", "--latest", "--timings"])
def test_a_full_disk_under_a_still_output_is_said_plainly_and_leaves_no_temporary(tmp_path, binary, small_disk, option):
    run = make_run(tmp_path / "run")
    target = small_disk / {"--frames-dir": "frames", "--latest": "latest.png", "--timings": "t.json"}[option]
    if option == "--frames-dir":
        target.mkdir()
    fill(small_disk, leave=0)
    proc = cli("render", run, option, target, "-o", tmp_path / "film.mp4")
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc)
    assert str(target) in line and "disk full" in line, line
    assert partials_under(small_disk) == []
