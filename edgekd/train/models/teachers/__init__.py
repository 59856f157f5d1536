"""Teacher architectures: large models whose logits the students learn from (never shipped to a board)."""
