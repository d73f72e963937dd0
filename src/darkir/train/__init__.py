"""Training: losses, distributed setup, the training loop with exact resume."""
