# Config blocks as files: each stage command reads one validated block (a system, an alloy, a
# model, the phase-diagram scans, one run's training settings). The block is also the rule's
# params, so editing it reruns exactly the jobs that read it.


localrules:
    config_block,
    phase_diagram_block,
    training_block,


rule config_block:
    output:
        "results/config/{section}/{name}.json",
    params:
        block=section_block,
    log:
        "logs/config/{section}_{name}.log",
    run:
        write_json(output[0], params.block)


rule phase_diagram_block:
    output:
        "results/config/phase_diagram.json",
    params:
        block=config.get("phase_diagram"),
    log:
        "logs/config/phase_diagram.log",
    run:
        write_json(output[0], params.block)


rule training_block:
    output:
        "results/config/training/{system}/{tag}.json",
    params:
        block=training_block,
    log:
        "logs/config/training_{system}_{tag}.log",
    run:
        write_json(output[0], params.block)
