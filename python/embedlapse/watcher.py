"""WatchProcess: `embedlapse watch` beside a training, whose failure is reported instead of lost."""
import collections
import ctypes
import signal
import subprocess
import sys
import threading
import warnings

PREFIX = "embedlapse: "
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def watch_command(binary, run_dir, video, idle_timeout=3600, film_args=()):
    """`embedlapse watch` for a training: it ends with its parent, and after idle_timeout seconds
    without a new checkpoint (None: waits for DONE however long). film_args are more of the
    command's options, as on its command line: ("--tween", "1") or ("--leaderboard", "label-issues")."""
    command = [binary, "watch", str(run_dir), "-o", str(video), "--stop-with-parent"]
    if idle_timeout is not None:
        command += ["--idle-timeout", str(idle_timeout)]
    return command + [str(arg) for arg in film_args]


def _terminate_with_parent():
    """A preexec_fn (Linux only) that has the kernel send SIGTERM to the child when its parent dies,
    even by SIGKILL: watch then finalises its video rather than filming on alone.

    prctl is looked up here, in the parent, because the child must only call it: loading a library
    between fork and exec can deadlock. The signal comes when the thread that started the child ends,
    so start it from the training's own thread. None where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lambda: prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class WatchProcess:
    """Runs `command` (an `embedlapse watch`), forwards its stderr and reports its failure.

    A thread reads stderr as it comes, so the child can never block on a full pipe; each line goes on
    to our stderr, prefixed "embedlapse: ", and the last ones are kept for the failure message.
    check() warns once, as soon as the process has failed; wait() raises if it failed."""

    def __init__(self, command, keep_lines=20):
        self.command = [str(c) for c in command]
        self.last_lines = collections.deque(maxlen=keep_lines)
        self.reported = False
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        errors="replace", preexec_fn=_terminate_with_parent())
        self._reader = threading.Thread(target=self._forward_stderr, name="embedlapse-watch-stderr", daemon=True)
        self._reader.start()

    def _forward_stderr(self):
        with self.process.stderr:  # closed when the child closes its end: no pipe left open
            for line in self.process.stderr:
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                self.last_lines.append(line)
                sys.stderr.write((line if line.startswith(PREFIX) else PREFIX + line) + "\n")
                sys.stderr.flush()

    @property
    def last_line(self):
        """The last thing the process said on stderr, without the prefix."""
        return self.last_lines[-1].removeprefix(PREFIX) if self.last_lines else "(nothing on stderr)"

    def _failure(self, status):
        self._reader.join(timeout=5)  # its last lines, which say why
        return f"embedlapse watch failed (exit status {status}): {self.last_line}"

    def check(self):
        """False once the process has failed, warning the first time; True while it runs or after success."""
        if self.reported:
            return False
        status = self.process.poll()
        if status is None or status == 0:
            return True
        self.reported = True
        warnings.warn(self._failure(status) + "; training goes on, and `embedlapse render` can film the run "
                      "afterwards", RuntimeWarning, stacklevel=2)
        return False

    def wait(self, timeout=None):
        """Waits for the process to end: its exit status, or RuntimeError naming it and the last stderr line."""
        status = self.process.wait(timeout)
        if status != 0:
            raise RuntimeError(self._failure(status))
        self._reader.join(timeout=5)
        return status
