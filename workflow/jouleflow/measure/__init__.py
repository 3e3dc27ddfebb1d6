"""Measurement of one grid point: sessions (LLM, diffusion), engines, the load client, GPU devices,
power sampling and allocation, request inputs, dummy models.

Writes a run directory through `jouleflow.traces`; never imports plotting (docs/architecture.md).
"""
