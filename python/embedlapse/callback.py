"""EmbedlapseCallback: a HuggingFace Trainer callback that writes the embeddings Embedlapse renders."""
import os

from transformers import TrainerCallback

from .watcher import WatchProcess, watch_command
from .writer import RunWriter, find_embedlapse, is_main_process

EMBED_FN_EXAMPLE = ('EmbedlapseCallback(..., embed_fn=lambda model, batch: '
                    'model.backbone(batch["pixel_values"]).pooler_output)')


def last_hidden_state(output):
    """The (batch, tokens, width) last hidden state of a model output asked for its hidden states.

    Any array with .ndim and .shape will do, so this check needs no torch."""
    hidden_states = getattr(output, "hidden_states", None)
    last = hidden_states[-1] if hidden_states is not None and len(hidden_states) else None
    if last is None:
        found = "the model output has no hidden_states"
    elif getattr(last, "ndim", None) != 3:
        found = f"the last hidden state has shape {tuple(getattr(last, 'shape', ()))}, not (batch, tokens, width)"
    else:
        return last
    raise ValueError(f"no [CLS] token to embed: {found}. Pass embed_fn to say what to embed, "
                     f"e.g. {EMBED_FN_EXAMPLE}")


def cls_embedding(model, batch):
    """The default: the [CLS] token of the last hidden state (as in the ViT fine-tuning notebook)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "label")}
    return last_hidden_state(model(**inputs, output_hidden_states=True))[:, 0]


class EmbedlapseCallback(TrainerCallback):
    """Embeds a fixed evaluation set at every save (or every `every_steps`) and writes the run.

    eval_dataset  the samples to embed, in a fixed order (a Dataset of dicts, as the Trainer uses)
    labels, class_names, images   as for RunWriter: colours, legend and leaderboard thumbnails
    every_steps   embed every this many steps instead of at each save
    embed_fn      embed_fn(model, batch) -> (batch, D) tensor, for anything but the [CLS] token
    run_dir       where to write (default: the Trainer's output_dir, next to its checkpoints)
    overwrite     replace a previous Embedlapse run in run_dir; without it such a folder is refused.
                  Only the files Embedlapse wrote go: the Trainer's weights, optimizer, scheduler, RNG
                  state and trainer_state.json stay. A training resumed from a checkpoint
                  (`trainer.train(resume_from_checkpoint=...)`) needs no overwrite: it continues the run
                  (same run_id, the embeddings and losses up to the resumed step kept, the callback's own
                  later checkpoints removed).
    render        a video path: runs `embedlapse watch` during training and finalises it at the end;
                  a failed render is warned about at once and raised (RuntimeError) when training ends.
                  With render or serve, the binary is looked for first ($EMBEDLAPSE_BIN, then PATH):
                  without it, FileNotFoundError at the start of training, before anything is written.
    idle_timeout  seconds without a new checkpoint after which the watch gives up (None: never)
    film_args     more `embedlapse watch` options for the video, e.g. ("--leaderboard", "label-issues",
                  "--summary-frame") or ("--tween", "1") for one frame per checkpoint
    serve         True: the explorer in the browser while training, on a free port (or an int: that
                  port); its URL is printed and kept in `url`. It goes on serving after training
                  until this Python process exits, with or without a video to render.

    In a distributed training only the main process embeds and writes.
    """

    def __init__(self, eval_dataset, labels=None, class_names=None, images=None, every_steps=None,
                 embed_fn=cls_embedding, batch_size=64, collate_fn=None, run_dir=None, render=None,
                 dtype="float16", overwrite=False, idle_timeout=3600, film_args=(), serve=False):
        self.eval_dataset = eval_dataset
        self.labels, self.class_names, self.images = labels, class_names, images
        self.every_steps = every_steps
        self.embed_fn = embed_fn
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.run_dir = run_dir
        self.render = render
        self.dtype = dtype
        self.overwrite = overwrite
        self.idle_timeout = idle_timeout
        self.film_args = tuple(film_args)
        self.serve = serve
        self.url = None
        self.writer = None  # stays None on every process but the main one: then each event does nothing
        self.watch = None
        self._last_step = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not (state.is_world_process_zero and is_main_process()):
            return
        run_dir = self.run_dir or args.output_dir
        # Before anything is written: a training that asked for a film must not leave a run without one.
        binary = find_embedlapse() if self.render or self.serve is not False else None
        # A Trainer resumed from a checkpoint starts at its step: the run goes on from there.
        resumed = state.global_step > 0 or getattr(args, "resume_from_checkpoint", None)
        # shared: the output_dir holds the Trainer's own files (logs, checkpoints); only an old run is refused.
        self.writer = RunWriter(run_dir, self.labels, self.class_names, self.images, dtype=self.dtype,
                                overwrite=self.overwrite, shared=True,
                                resume_at=state.global_step if resumed else None)
        if binary is not None:
            video = os.fspath(self.render) if self.render else None
            self.watch = WatchProcess(watch_command(binary, run_dir, video, self.idle_timeout,
                                                    self.film_args, serve=self.serve))
            if self.serve is not False:
                self.url = self.watch.wait_for_url()
        if state.global_step in self.writer.steps:
            self._last_step = state.global_step  # resumed where the run has its embeddings already
        else:
            self._checkpoint(state, model)  # the starting point: the pretrained backbone with its new head

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None:
            return
        if logs and "loss" in logs:
            self.writer.log_loss(state.global_step, logs["loss"], logs.get("epoch"))
        self._check_watch()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.writer is None:
            return
        if self.every_steps and state.global_step % self.every_steps == 0:
            self._checkpoint(state, model)
        self._check_watch()

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.writer is None:
            return
        if not self.every_steps:
            self._checkpoint(state, model)
        self._check_watch()

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.writer is None:
            return
        if self._last_step != state.global_step:
            self._checkpoint(state, model)
        self.writer.close()  # DONE: the watcher renders what is left, finalises the video and exits
        if self.watch is None:
            return
        # RuntimeError if the render failed, so a lost video does not pass unnoticed.
        if self.serve is False:
            self.watch.wait()
        elif self.render:
            self.watch.wait_for_film()  # then it goes on serving until this process exits

    def _check_watch(self):
        # A failed render is told at once (a warning, once), not only when training ends hours later.
        if self.watch is not None:
            self.watch.check()

    def _checkpoint(self, state, model):
        # The writer keeps a Trainer checkpoint's own trainer_state.json (needed to resume) as it is.
        self.writer.checkpoint(state.global_step, self._embed(model), epoch=state.epoch)
        self._last_step = state.global_step

    def _embed(self, model):
        # torch is imported here, not at the top: the rest of the module (the run, the watch, the
        # [CLS] check) can then be imported and tested where torch is not installed.
        import torch
        from torch.utils.data import DataLoader

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        loader = DataLoader(self.eval_dataset, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate_fn)
        parts = []
        with torch.no_grad():
            for batch in loader:
                batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
                parts.append(self.embed_fn(model, batch).float().cpu())
        model.train(was_training)
        return torch.cat(parts).numpy()
