# Teacher fine-tune. Epoch checkpoints live in an undeclared folder so a killed job resumes.


rule train_teacher:
    input:
        data="results/data/tokenized",
    output:
        model=directory(f"results/models/{TEACHER}"),
        steps=f"results/train/{TEACHER}/steps.csv",
        epochs=f"results/train/{TEACHER}/epochs.csv",
    params:
        train=TRAIN_PARAMS,
        teacher=config["teacher"],
        seed=config["seed"],
        checkpoints=checkpoint_dir(TEACHER),
    log:
        f"results/logs/train_{TEACHER}.log",
    threads: res("train", "threads")
    resources:
        **group_resources("train"),
        **train_tasks(),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/ner.py"
