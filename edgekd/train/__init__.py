"""Host-side training: students, teachers, distillation, the training loop, checkpoints (imports torch)."""
