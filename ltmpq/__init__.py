"""ltmpq."""
