"""Evaluation of frozen DINO features: weighted k-NN, linear probe, attention maps and the
attention-mask score, each reported beside random-init and raw-pixel baselines."""
