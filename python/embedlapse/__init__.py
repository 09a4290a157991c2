"""Feed Embedlapse from a Python training: write the run layout that `embedlapse watch` renders live.

    from embedlapse import RunWriter
    with RunWriter("runs/mine", labels=y_eval, class_names=names, images=x_eval_uint8) as run:
        ...
        run.log_loss(step, loss)
        run.checkpoint(step, embeddings)     # (N, D) array-like: numpy, torch, lists

`RunWriter(..., resume_at=step)` continues a run for a training resumed from a checkpoint. The helper
never changes or deletes a file it did not write (see manifest.py): `overwrite=True` removes only its own.

HuggingFace users add `EmbedlapseCallback` to their `Trainer` (imported lazily; needs transformers, torch
and accelerate: `pip install './python[transformers]'`).
"""
# The one version number: pyproject.toml reads it from here, and writer.py writes it into run.json.
__version__ = "0.2.0"

from .watcher import WatchProcess, watch_command
from .writer import RunWriter, is_main_process, previous_run

__all__ = ["RunWriter", "EmbedlapseCallback", "WatchProcess", "watch_command", "is_main_process", "previous_run"]


def __getattr__(name):
    # The callback needs transformers and torch; import them only when it is asked for.
    if name == "EmbedlapseCallback":
        from .callback import EmbedlapseCallback
        return EmbedlapseCallback
    raise AttributeError(name)
