#!/usr/bin/env bash
# Snakemake runs this once, inside the new environment, from the workflow's working directory
# (the repository root): install jouleflow from this checkout, without touching the pinned deps.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
