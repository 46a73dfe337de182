"""The whole CI-sized DAG with a non-BERT teacher: a tiny random DistilBERT folder as `teacher.name_or_path` goes
through every compression method of `.test/config.yaml`, the summary table included (issue 15).

DistilBERT differs from BERT where the methods reach in: no `encoder.layer` (its layers are
`transformer.layer`), fused-free but differently named projections (`q_lin`, `k_lin`, `v_lin`, `out_lin`), a
feed-forward block of `lin1`/`lin2`, and no token-type embeddings. Unit tests of every family are in
tests/test_architectures.py; this is the end-to-end check that nothing on the way assumes BERT.
"""

import pandas as pd
import pytest
import yaml

from conftest import TEST_CONFIG, completed_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def distilbert_teacher(tmp_path_factory):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForTokenClassification

    from shrink.core.encoders import minilm_path

    folder = tmp_path_factory.mktemp("tiny_distilbert")
    tok = AutoTokenizer.from_pretrained(minilm_path())
    config = DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=128)
    DistilBertForTokenClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory, distilbert_teacher):
    workdir = tmp_path_factory.mktemp("distilbert_dag")
    return completed_run(workdir, config={"teacher": {"preset": "tiny", "name_or_path": str(distilbert_teacher)}},
                         timeout=1200)


def test_every_method_runs_on_a_distilbert_teacher(finished):
    planned = yaml.safe_load(TEST_CONFIG.read_text())["compress"]["run"]
    df = pd.read_csv(finished / "results" / "tables" / "summary.csv").set_index("model")
    names = set(df.index)
    for name in planned:  # a swept entry appears as its variants
        assert name in names or any(n.startswith(f"{name}_") for n in names), (name, sorted(names))
    assert "teacher" in names
    teacher = df.loc["teacher"]
    assert teacher["heads_kept"] == "4/4"  # 2 layers x 2 heads, counted through the DistilBERT adapter
    # the head-gate sweep's strong penalty closed heads, and the pruned model was evaluated
    gated = df[df.index.str.startswith("gates_")]
    assert (gated["heads_kept"] != "4/4").any(), gated["heads_kept"]
    for sparse in ("sgpt_sparsity0.5", "mag_sparsity0.5"):
        assert df.loc[sparse, "sparsity"] == pytest.approx(0.5, abs=0.02)
