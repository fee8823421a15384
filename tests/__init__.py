"""biofm's test suite (a regular package, so that `tests` resolves here and not to a
stray top-level `tests` package that some installed data packages ship)."""
