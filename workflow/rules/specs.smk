# System, model and training YAML files, each written from its own config section only, so that
# editing one section reruns exactly the jobs that depend on it (params are a rerun trigger).


localrules:
    system_yaml,
    model_yaml,
    training_yaml,


rule system_yaml:
    input:
        unpack(system_inputs),
    output:
        "results/systems/{system}/{size}.yaml",
    params:
        section=system_params,
    log:
        "logs/specs/system_{system}_{size}.log",
    run:
        write_yaml(output[0], system_spec(wildcards, input))


rule model_yaml:
    output:
        "results/models/{model}.yaml",
    params:
        spec=model_params,
    log:
        "logs/specs/model_{model}.log",
    run:
        write_yaml(output[0], params.spec)


rule training_yaml:
    output:
        "results/training/{system}/{tag}.yaml",
    params:
        spec=training_spec,
    log:
        "logs/specs/training_{system}_{tag}.log",
    run:
        write_yaml(output[0], params.spec)
