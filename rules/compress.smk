# Teacher -> compression steps. One rule per method; a variant is a chain of steps, each cached
# under results/steps/<method>-<hash>/ where the hash covers the whole prefix of the recipe.


rule teacher_logits:
    input:
        model=model_dir(TEACHER),
        data="results/data/tokenized",
    output:
        TEACHER_LOGITS,
    log:
        "results/logs/teacher_logits.log",
    threads: res("evaluate", "threads")
    resources:
        **group_resources("evaluate"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/ner.py"


for _method, _spec in METHODS.items():
    _trains = _spec.trains
    _group = "train" if _trains else "evaluate"

    rule:
        name:
            _method
        input:
            unpack(partial(step_inputs, method=_method)),
        output:
            **step_outputs(_method, _trains),
        wildcard_constraints:
            hash="[0-9a-f]{8}",
        params:
            method=_method,
            step=lambda wc, method=_method: step_of(method, wc).params,
            key=lambda wc, method=_method: step_key(f"{method}-{wc.hash}"),
            train=TRAIN_PARAMS,
            teacher=config["teacher"],
            seed=config["seed"],
            checkpoints=f"results/checkpoints/{_method}-{{hash}}",
        log:
            f"results/logs/{_method}-{{hash}}.log",
        threads: res(_group, "threads")
        resources:
            **group_resources(_group),
            **train_tasks(_trains),
        conda:
            "../envs/train.yaml"
        script:
            "../workflow/scripts/ner.py"
