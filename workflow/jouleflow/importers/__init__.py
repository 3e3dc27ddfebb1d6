"""Importers of published benchmark results into jouleflow's summary schema (traces.SUMMARY)."""
