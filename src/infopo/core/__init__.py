"""Framework-free core math: pure functions on tensors, selected by name from registries."""
