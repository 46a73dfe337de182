"""One convention for every task: each rule runs `workflow/scripts/<task>.py`, which runs the rule's job
from `shrink.<task>.jobs.JOBS`. A renamed rule or job fails here, not at run time."""

import importlib
import re
from types import SimpleNamespace

import pytest
from conftest import DM_CONFIG, LM_CONFIG, REPO, TRANSLATION_CONFIG, snakemake

from shrink.core.errors import ShrinkError
from shrink.core.harness import job_of

TASKS = {"ner": ("ner", ()), "translation": ("translation", (TRANSLATION_CONFIG,)),
         "lm": ("lm", (LM_CONFIG,)), "definition_match": ("defmatch", (DM_CONFIG,))}


def rules_of(tmp_path, configfiles):
    r = snakemake(tmp_path, "--list-rules", configfiles=configfiles)
    assert r.returncode == 0, r.stderr[-3000:]
    # target rules only gather other rules' outputs and run no script: `all`, and NER's `deployment`
    return {line.strip() for line in r.stdout.splitlines() if re.fullmatch(r"\s*\w+", line)} - {"all", "deployment"}


@pytest.mark.parametrize("task", TASKS)
def test_every_rule_has_a_job_and_every_job_a_rule(task, tmp_path):
    package, configfiles = TASKS[task]
    jobs = importlib.import_module(f"shrink.{package}.jobs").JOBS
    assert rules_of(tmp_path, configfiles) == set(jobs)


@pytest.mark.parametrize("task", TASKS)
def test_each_task_has_one_script_that_runs_its_jobs(task):
    package, _ = TASKS[task]
    script = (REPO / "workflow" / "scripts" / f"{task}.py").read_text()
    assert f'run_job(snakemake, "{package}")' in script
    rules = "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    scripts = set(re.findall(r"workflow/scripts/(\w+)\.py", rules))
    assert scripts == set(TASKS)  # no rule reaches its code another way


def test_a_rule_without_a_job_is_named():
    with pytest.raises(ShrinkError, match="rule 'lm_renamed' has no job in shrink.lm.jobs.JOBS"):
        job_of(SimpleNamespace(rule="lm_renamed"), "lm")
