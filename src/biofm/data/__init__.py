"""Records, readers' shared pieces, tasks and splits, collators, packaged data."""
