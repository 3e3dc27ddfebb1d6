# Per run: steady-state window, energy and latency figures (summary.json). Kept outside the run
# directory, which is the immutable measurement; changing a validity threshold reruns only this.


rule energy:
    input:
        run=RUN,
    output:
        ENERGY,
    log:
        f"logs/energy/{POINT}.log",
    conda:
        ENV_ANALYSIS
    params:
        validity=validity_flags(),
    shell:
        "jouleflow energy {input.run} -o {output} {params.validity} > {log} 2>&1"
