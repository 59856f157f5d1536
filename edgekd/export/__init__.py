"""Host-side export: checkpoints to bundles (model file + manifest + golden files)."""
