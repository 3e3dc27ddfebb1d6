"""Cross-configuration analyses over a summary table (traces.SUMMARY), as in the ML.ENERGY v3 study.

One module per analysis, each with a `compare_*` function returning a result that renders a JSON
summary, CSV rows and a Markdown table (its figure is drawn by jouleflow.plots.compare_figures):

- gpus: GPU generations at matched latency deadlines
- precision: FP8 vs BF16 by batch-size bucket
- scaling: more GPUs at the same batch size
- tasks: one model across tasks
- moe: MoE vs dense models of similar total size
- tdp: TDP-based estimate vs measured energy

Only polars and the standard library are used: analysis never imports measurement or plotting
code.
"""
