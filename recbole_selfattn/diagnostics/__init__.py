"""Diagnostics of trained models, run on a checkpoint (one module per model)."""
