"""Analysis of run directories: steady windows, energy accounting, validity, summaries, frontiers,
recommendations and cross-configuration comparisons.

Reads only what `jouleflow.traces` defines; never imports `jouleflow.measure`, so it runs anywhere
without GPU or serving dependencies (docs/architecture.md).
"""
