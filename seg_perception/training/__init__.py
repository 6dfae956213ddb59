"""Training the default models on generated road scenes: the run's settings, the data stream,
the loop (resumable, reproducible) and the model card written beside the weights."""
