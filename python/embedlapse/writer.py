"""RunWriter: the run layout of docs/run-layout.md, every file written atomically."""
import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from datetime import datetime, timezone

import numpy as np

THUMBNAIL_SIZE = 64
DONE = "DONE"
RUN_JSON = "run.json"
RUN_FORMAT = 1
# Tells a watcher that checkpoint-<step>/embeddings.npy is complete, without waiting for the file to settle.
COMPLETE_SUFFIX = ".complete"
# The files an Embedlapse run puts at its root; with the checkpoint-<step> folders, all that is ours.
RUN_FILES = (RUN_JSON, DONE, "labels.npy", "class_names.json", "images.npy", "losses.csv")
_CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")


def is_main_process():
    """False on every process of a distributed training but rank 0, which alone writes the run.

    torch.distributed when it is initialised, else the RANK variable torchrun and accelerate set.
    torch is only looked at if the training has imported it: a training without torch never loads it."""
    torch = sys.modules.get("torch")
    distributed = getattr(torch, "distributed", None)
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank() == 0
    rank = os.environ.get("RANK", "").strip()
    return rank in ("", "0")


def _checkpoint_dirs(run_dir):
    with os.scandir(run_dir) as entries:
        return sorted(e.path for e in entries if _CHECKPOINT_NAME.fullmatch(e.name) and e.is_dir(follow_symlinks=False))


def previous_run(run_dir):
    """The files an earlier Embedlapse run left in run_dir (its root files and checkpoint embeddings), or [].

    Anything else (a Trainer's logs and model checkpoints) is not a run, so a Trainer's output_dir
    that holds only those can take a new run."""
    if not os.path.isdir(run_dir):
        return []
    found = [os.path.join(run_dir, name) for name in RUN_FILES if os.path.lexists(os.path.join(run_dir, name))]
    found += [os.path.join(d, "embeddings.npy") for d in _checkpoint_dirs(run_dir)
              if os.path.lexists(os.path.join(d, "embeddings.npy"))]
    return found


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _prepare_run_dir(run_dir, overwrite, shared):
    """Makes run_dir ready for a new run: a watcher would film a new run written over an old one as one
    run, old checkpoints included. So a folder that holds anything (shared: a previous run) is refused,
    or with overwrite cleared first."""
    if not os.path.isdir(run_dir):
        os.makedirs(run_dir)  # FileExistsError when run_dir is a file: the right error
        return
    if shared:
        in_the_way = previous_run(run_dir)
        what, remedy = "holds a previous Embedlapse run", "delete that run"
        # Every checkpoint-<step> folder goes, a Trainer's model checkpoints included: they are the old
        # run's, and would mix with the new run's checkpoints of the same names.
        to_remove = [os.path.join(run_dir, name) for name in RUN_FILES] + _checkpoint_dirs(run_dir)
    else:
        in_the_way = to_remove = [os.path.join(run_dir, name) for name in sorted(os.listdir(run_dir))]
        what, remedy = "is not empty", "delete what it holds"
    if in_the_way and not overwrite:
        example = os.path.relpath(in_the_way[0], run_dir) + (" and more" if len(in_the_way) > 1 else "")
        raise FileExistsError(f"{run_dir} {what} ({example}): pass overwrite=True to {remedy}, "
                              "or choose another folder")
    if overwrite:
        for path in to_remove:
            if os.path.lexists(path):
                _remove(path)


def _umask():
    """The process umask. Linux shows it in /proc; elsewhere it can only be read by setting it, which
    changes it for a moment for the training's other threads too, so /proc comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _to_numpy(array):
    """numpy arrays, torch tensors (any device, with or without grad) and nested lists."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _atomic_write(path, data: bytes):
    """Write under a temporary name in the same directory, then rename: readers never see half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes the file private (0600); a run is for others to read too, as any file open() creates.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def _thumbnails(images, size=THUMBNAIL_SIZE):
    """uint8 (N, H, W), (N, H, W, 3|4) arrays, or PIL images; larger than `size` pixels is shrunk."""
    if not isinstance(images, np.ndarray) and len(images) and hasattr(images[0], "resize"):  # PIL images
        thumbs = []
        for image in images:
            image = image.convert("RGB") if image.mode not in ("L", "RGB", "RGBA") else image
            image = image.copy()
            image.thumbnail((size, size))
            thumbs.append(image)
        # All thumbnails share one size: pad onto a black square.
        mode = thumbs[0].mode
        side = max(max(t.size) for t in thumbs)
        channels = {"L": None, "RGB": 3, "RGBA": 4}[mode]
        out = np.zeros((len(thumbs), side, side) + ((channels,) if channels else ()), np.uint8)
        for i, t in enumerate(thumbs):
            a = np.asarray(t.convert(mode))
            out[i, : a.shape[0], : a.shape[1]] = a
        return out
    images = _to_numpy(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype} (scale to 0-255 first)")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (3, 4)):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 3) or (N, H, W, 4), got {images.shape}")
    h, w = images.shape[1:3]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(images[:, ::step, ::step])  # nearest-neighbour shrink, no extra dependency


class RunWriter:
    """Writes a training run in the layout `embedlapse watch` and `embedlapse render` read.

    run_dir      the run directory: created, or an empty one (see overwrite)
    labels       optional (N,) integer class of each evaluation sample
    class_names  optional list of names, indexed by label
    images       optional thumbnails: uint8 (N, H, W[, C]) or PIL images
    dtype        "float32" (default) or "float16" for the stored embeddings
    overwrite    clear a run_dir that is not empty instead of refusing it (FileExistsError)
    shared       run_dir also holds other files (a Trainer's output_dir): only a previous Embedlapse run
                 there is refused, or with overwrite removed (its files and the checkpoint-<step> folders)

    In a distributed training only rank 0 writes (see is_main_process): on the other processes the
    writer does nothing at all, so every process can run the same code.
    """

    def __init__(self, run_dir, labels=None, class_names=None, images=None, dtype="float32", overwrite=False,
                 *, shared=False):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
        self.run_dir = os.fspath(run_dir)
        self.dtype = np.dtype(dtype)
        self.count = None
        self.run_id = None
        self._losses = {}
        self._epochs = {}
        self._closed = False
        self.writes = is_main_process()
        if not self.writes:
            return
        # Check everything before touching the folder: a mistake must not cost the previous run.
        files = {}
        if labels is not None:
            labels = _to_numpy(labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
            self.count = len(labels)
            files["labels.npy"] = _npy_bytes(labels.astype(np.int64))
        if class_names is not None:
            files["class_names.json"] = json.dumps([str(n) for n in class_names]).encode()
        if images is not None:
            thumbs = _thumbnails(images)
            if self.count is not None and len(thumbs) != self.count:
                raise ValueError(f"{len(thumbs)} images for {self.count} labels")
            self.count = len(thumbs)
            files["images.npy"] = _npy_bytes(thumbs)
        _prepare_run_dir(self.run_dir, overwrite, shared)
        # run.json first: a watcher that sees a new run_id knows the folder holds a new run.
        self.run_id = uuid.uuid4().hex
        _atomic_write(self._path(RUN_JSON), json.dumps(run_metadata(self.run_id), indent=1).encode())
        for name, data in files.items():
            _atomic_write(self._path(name), data)

    def _path(self, *parts):
        return os.path.join(self.run_dir, *parts)

    def log_loss(self, step, loss, epoch=None):
        """Records the training loss at `step`; written out with the next checkpoint (and at close)."""
        if not self.writes:
            return
        self._losses[int(step)] = float(loss)
        if epoch is not None:
            self._epochs[int(step)] = float(epoch)

    def checkpoint(self, step, embeddings, epoch=None, trainer_state=True):
        """Writes checkpoint-<step>/embeddings.npy (N x D), after the losses so far.

        trainer_state=False leaves checkpoint-<step>/trainer_state.json alone (a HuggingFace
        Trainer has written its own there, which it needs to resume).
        Then checkpoint-<step>/embeddings.npy.complete: the watcher can take the checkpoint at once."""
        if not self.writes:
            return
        if self._closed:
            raise RuntimeError("RunWriter is closed")
        step = int(step)
        e = _to_numpy(embeddings)
        if e.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, D), got shape {e.shape}")
        if self.count is not None and e.shape[0] != self.count:
            raise ValueError(f"embeddings have {e.shape[0]} rows, the evaluation set has {self.count}")
        if not np.all(np.isfinite(e)):
            raise ValueError(f"step {step}: embeddings hold NaN or Inf")
        self.count = e.shape[0]
        directory = self._path(f"checkpoint-{step}")
        os.makedirs(directory, exist_ok=True)
        self._write_losses()
        log = [{"step": s, "loss": l, **({"epoch": self._epochs[s]} if s in self._epochs else {})}
               for s, l in sorted(self._losses.items())]
        state = {"global_step": step, "log_history": log}
        if epoch is not None:
            state["epoch"] = float(epoch)
        if trainer_state:
            _atomic_write(os.path.join(directory, "trainer_state.json"), json.dumps(state, indent=1).encode())
        embeddings_path = os.path.join(directory, "embeddings.npy")
        _atomic_write(embeddings_path, _npy_bytes(e.astype(self.dtype)))
        _atomic_write(embeddings_path + COMPLETE_SUFFIX, b"")

    def _write_losses(self):
        if not self._losses:
            return
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["step", "loss", "epoch"] if self._epochs else ["step", "loss"])
        for s, l in sorted(self._losses.items()):
            w.writerow([s, repr(l)] + ([self._epochs.get(s, "")] if self._epochs else []))
        _atomic_write(self._path("losses.csv"), text.getvalue().encode())

    def close(self):
        """Writes the last losses and the DONE marker: a watcher finishes its video and exits."""
        if self._closed or not self.writes:
            return
        self._write_losses()
        _atomic_write(self._path(DONE), b"")
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_metadata(run_id):
    """run.json: the layout's version, the run's identity, when and by what it was written."""
    from . import __version__  # here, not at the top: the package imports this module
    return {"format": RUN_FORMAT, "run_id": run_id,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "writer": f"embedlapse-python {__version__}"}


def find_embedlapse():
    """The embedlapse binary: $EMBEDLAPSE_BIN, else `embedlapse` on PATH."""
    binary = os.environ.get("EMBEDLAPSE_BIN") or shutil.which("embedlapse")
    if not binary:
        raise FileNotFoundError("embedlapse not found: put it on PATH or set EMBEDLAPSE_BIN")
    return binary
