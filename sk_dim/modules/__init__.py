"""Torch building blocks: encoders, critics, prior, and the training objectives."""
