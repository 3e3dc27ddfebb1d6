"""Figures (matplotlib, Agg): batch sweeps, frontiers, power timelines, task energy bars. PNG + SVG."""
