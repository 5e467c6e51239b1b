"""Training: a frozen `TrainConfig` turned into `open_clip_train.main(argv)` (no training loop of our own)."""
