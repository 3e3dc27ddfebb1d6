"""The interactive campaign page: one self-contained HTML file (Plotly, its JS inlined), no server.

`data` gathers what the page shows from the campaign's tables (the recommendations at every deadline
come from `analysis.deadlines`, the rule of `jouleflow recommend`); `charts` draws the time–energy
charts; `html` writes the file. docs/analysis.md, "Campaign page".
"""
