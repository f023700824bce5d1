"""Hardware: which devices there are, how much memory and time a run needs (`tunesmith plan`), and the
memory levers (gradient checkpointing, `train.batch_size: auto`, the out-of-memory policy)."""
