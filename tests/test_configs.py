"""The shipped NER configurations beyond config.yaml plan what their comments say (dry runs)."""

from conftest import REPO, snakemake
from test_workflow import planned_jobs

CASED = REPO / "config" / "ner_distilbert_cased.yaml"


def test_cased_teacher_config_plans_the_homework_variants(tmp_path):
    r = snakemake(tmp_path, "-n", configfiles=[CASED], config={"data": {"source": "synthetic"}})
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    jobs = planned_jobs(r.stdout)
    # the teacher and six variants evaluated; rank-64 embeddings computed once for emb64 and emb64_kd
    assert jobs["evaluate"] == 7 and jobs["factorize_embeddings"] == 1
    assert jobs["distill"] == 2 and jobs["prune"] == 1 and jobs["gate_heads"] == 1 and jobs["quantize"] == 1
