"""TRL reward functions: ``f(completions, **columns) -> list[float | None]``, and the registry of their names."""
