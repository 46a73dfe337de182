"""shrink.ner.deploy, shrink.core.onnx_export and shrink.ner.serve: an export ONNX Runtime runs with
PyTorch's logits and F1, sparse weights stored sparse, int8 variants exported, a bad export refused,
and raw text tagged end to end from an export folder."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from shrink.core import onnx_export
from shrink.core.errors import ShrinkError
from shrink.ner.deploy import ONNX_FILES, RECORD, deploy_model, float_copy
from shrink.ner.variants import save_variant

torch.set_num_threads(1)

CFG = {"runtimes": ["pytorch_fp32", "pytorch_int8", "onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static",
                    "onnx_fused_fp32", "onnx_fused_int8_dynamic"],
       "logit_tolerance": 1e-3, "check_sentences": 16, "calibration_sentences": 8, "keep": 0.98}
FAST = {"batch_size": 16, "latency_sentences": 3, "throughput_batches": 1}


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """A synthetic corpus cleaned and tokenized with the MiniLM tokenizer, as the workflow does."""
    from shrink.core.encoders import minilm_path
    from shrink.ner.cleaning import clean_corpus
    from shrink.ner.conll import write_conll
    from shrink.ner.synthetic import write_corpus
    from shrink.ner.tokens import tokenize_corpus

    root = tmp_path_factory.mktemp("deploy_data")
    write_corpus(root / "raw", {"train": 30, "validation": 20, "test": 24}, seed=3)
    splits, labels, _ = clean_corpus({s: root / "raw" / f"{s}.txt" for s in ("train", "validation", "test")})
    for s, sents in splits.items():
        write_conll(sents, root / f"{s}.txt")
    (root / "labels.json").write_text(json.dumps(labels))
    tokenize_corpus({s: root / f"{s}.txt" for s in splits}, root / "labels.json", minilm_path(), root / "tok",
                    max_length=24, stride=4)  # short windows: some sentences are split, as in CI
    return root / "tok", labels


def tiny_tagger(labels, seed=0):
    from transformers import AutoModelForTokenClassification, BertConfig

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    model = AutoModelForTokenClassification.from_config(config).eval()
    with torch.no_grad():  # spread the classifier so predictions differ between words (entities appear)
        model.classifier.weight.mul_(20)
    return model


def prune_linears(model, share):
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and "encoder" in name:
                w = m.weight
                cut = w.abs().flatten().kthvalue(int(share * w.numel())).values
                w[w.abs() <= cut] = 0
    return model


def deploy(tmp_path, tokenized, model, name="m", cfg=CFG):
    tok_dir, _ = tokenized
    from transformers import AutoTokenizer

    src = tmp_path / f"{name}_model"
    save_variant(model, AutoTokenizer.from_pretrained(tok_dir / "tokenizer"), src)
    return deploy_model(src, tok_dir, tmp_path / name, name, cfg, eval_cfg=FAST, threads=1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, tokenized):
    """The plain tiny tagger exported and measured in every runtime of CFG (shared by the tests below)."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    model = tiny_tagger(tokenized[1])
    return tmp_path, model, deploy(tmp_path, tokenized, model)


def test_export_matches_pytorch_logits_and_f1(deployed, tokenized):
    tmp_path, _, record = deployed
    export = record["export"]
    assert export["max_abs_logit_difference"] < 1e-4 and export["inputs"] == ["input_ids", "attention_mask"]
    r = record["runtimes"]
    assert set(r) == set(CFG["runtimes"])
    # the same function: the exported model's entity F1 is PyTorch's on both splits
    for split in ("validation", "test"):
        assert r["onnx_fp32"][split]["f1"] == r["pytorch_fp32"][split]["f1"]
    assert r["pytorch_fp32"]["test"]["f1"] > 0  # the random tagger does find entities: the check compares something
    assert export["test_f1_difference"] == 0
    folder = tmp_path / "m"
    assert {*ONNX_FILES.values(), RECORD, "labels.json", "windows.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    # a plain model is also saved for from_pretrained
    from transformers import AutoModelForTokenClassification

    assert AutoModelForTokenClassification.from_pretrained(folder / "pytorch").config.num_labels == len(tokenized[1])
    # int8 files are smaller than fp32, and what the record says
    assert r["onnx_int8_dynamic"]["file_bytes"] < r["onnx_fp32"]["file_bytes"]
    assert r["onnx_int8_static"]["file_bytes"] == (folder / ONNX_FILES["onnx_int8_static"]).stat().st_size
    assert record["calibration"]["sentences"] == CFG["calibration_sentences"]


def test_fused_export_fuses_every_layer_and_keeps_pytorchs_f1(deployed):
    tmp_path, model, record = deployed
    fused = record["fused"]
    # both layers' attention fused: the export ran with eager attention (0 Attention nodes from SDPA)
    assert fused["num_heads"] == 4 and fused["fusions"]["Attention"] == 2, fused
    assert fused["fusions"]["SkipLayerNormalization"] == 4 and fused["max_abs_logit_difference"] < 1e-4
    r = record["runtimes"]
    assert r["onnx_fused_fp32"]["test"]["f1"] == r["pytorch_fp32"]["test"]["f1"]
    assert r["onnx_fused_int8_dynamic"]["file_bytes"] < r["onnx_fused_fp32"]["file_bytes"]
    # the PyTorch runtimes are measured with the model's own attention, not the eager one of the export
    assert model.config._attn_implementation != "eager"
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "m" / ONNX_FILES["onnx_fused_int8_dynamic"])).graph.node}
    assert {"QAttention", "DynamicQuantizeMatMul"} & ops, ops  # int8 made from the fused graph, not model.onnx


def test_head_pruned_layers_leave_attention_unfused_and_the_export_exact(tmp_path, tokenized):
    from shrink.methods.attention_heads import prune_heads
    from shrink.methods.ops import record_op

    keep = {0: [0, 1, 2], 1: [3]}
    model = record_op(prune_heads(tiny_tagger(tokenized[1]), keep), "prune_heads", keep={str(k): v for k, v in keep.items()})
    record = deploy(tmp_path, tokenized, model, "heads", dict(CFG, runtimes=["pytorch_fp32", "onnx_fused_fp32"]))
    fused = record["fused"]
    # one Attention node takes one head count for the graph: 3 and 1 heads cannot be fused as one
    assert fused["num_heads"] is None and "Attention" not in fused["fusions"] and fused["fusions"]["SkipLayerNormalization"] == 4
    assert fused["max_abs_logit_difference"] < 1e-4
    r = record["runtimes"]
    assert r["onnx_fused_fp32"]["test"]["f1"] == r["pytorch_fp32"]["test"]["f1"]


def test_a_fused_file_off_pytorch_fails_naming_it(tmp_path, tokenized, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from shrink.ner import deploy as deploy_module

    real = deploy_module.fuse

    def off(src, dst, *args, **kwargs):
        fusions = real(src, dst, *args, **kwargs)
        m = onnx.load(str(dst))
        last = next(n for n in m.graph.node if "logits" in n.output)  # the classifier's bias Add
        bias = next(i for i in m.graph.initializer if i.name in last.input)
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.01, bias.name))
        onnx.save(m, str(dst))
        return fusions

    monkeypatch.setattr(deploy_module, "fuse", off)
    with pytest.raises(ShrinkError, match=r"model\.fused\.onnx differ from PyTorch's by up to 0\.01"):
        deploy(tmp_path, tokenized, tiny_tagger(tokenized[1]), "badfused", dict(CFG, runtimes=["pytorch_fp32", "onnx_fused_fp32"]))
    assert not (tmp_path / "badfused").exists()


def test_sparse_weights_are_stored_sparse(tmp_path, tokenized):
    # with the int8 files too: ONNX Runtime's quantizers cannot read sparse initializers, so they must come first
    record = deploy(tmp_path, tokenized, prune_linears(tiny_tagger(tokenized[1]), 0.8), "sparse",
                    dict(CFG, runtimes=["pytorch_fp32", "onnx_fp32", "onnx_int8_dynamic"]))
    export = record["export"]
    moved = export["sparse_initializers"]
    # the 2 layers' query, key, value, output, intermediate and output matrices: 6 each
    assert len(moved) == 12 and all(v["zeros"] >= 0.79 for v in moved.values())
    saved = sum(v["dense_bytes"] - v["sparse_bytes"] for v in moved.values())
    assert saved > 0 and export["bytes"] < export["dense_bytes"] - 0.9 * saved  # less a little protobuf overhead
    assert export["max_abs_logit_difference"] < 1e-4
    r = record["runtimes"]
    assert r["onnx_fp32"]["test"]["f1"] == r["pytorch_fp32"]["test"]["f1"]


def test_store_sparse_keeps_half_sparse_matrices_dense(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    half = (np.arange(64).reshape(8, 8) * (np.arange(64).reshape(8, 8) % 2)).astype(np.float32)  # 50% zeros
    mostly = np.zeros((8, 8), dtype=np.float32)
    mostly[0, :3] = 1.0  # 95% zeros
    graph = helper.make_graph(
        [helper.make_node("Add", ["half", "mostly"], ["y"])], "g", [],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [8, 8])],
        [numpy_helper.from_array(half, "half"), numpy_helper.from_array(mostly, "mostly")])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    moved = onnx_export.store_sparse(path)
    assert list(moved) == ["mostly"]  # 32 kept weights at 12 bytes would be 384 > 256 dense bytes
    out = onnx_export.session(path).run(None, {})[0]
    assert np.array_equal(out, half + mostly)


def test_int8_variant_is_exported_from_its_dequantized_weights(tmp_path, tokenized):
    from shrink.methods.ops import record_op
    from shrink.methods.quantize import quantize_int8

    model = record_op(quantize_int8(tiny_tagger(tokenized[1])), "quantize_int8")
    record = deploy(tmp_path, tokenized, model, "int8", dict(CFG, runtimes=["pytorch_fp32", "pytorch_int8", "onnx_fp32"]))
    assert record["export"]["dequantized_int8_layers"] == 2 * 6 + 1  # 6 linears a layer and the classifier
    assert record["export"]["max_abs_logit_difference"] < 1e-4
    assert not (tmp_path / "int8" / "pytorch").exists()  # an int8 variant is no plain from_pretrained model


def test_float_copy_computes_what_the_int8_weights_hold(tokenized):
    from shrink.core.model_size import is_quantized_linear
    from shrink.methods.quantize import quantize_int8

    q = quantize_int8(tiny_tagger(tokenized[1]))
    ref = {n: m.weight().dequantize() for n, m in q.named_modules() if is_quantized_linear(m)}
    f, n = float_copy(q)
    assert n == len(ref) and not any(is_quantized_linear(m) for m in f.modules())
    for name, w in ref.items():
        assert torch.equal(f.get_submodule(name).weight, w)


def test_export_over_tolerance_fails_and_leaves_nothing(tmp_path, tokenized, monkeypatch):
    real = onnx_export.OnnxLogits.__call__

    def off_by_a_bit(self, **batch):
        out = real(self, **batch)
        out.logits = out.logits + 0.01
        return out

    monkeypatch.setattr(onnx_export.OnnxLogits, "__call__", off_by_a_bit)
    with pytest.raises(ShrinkError, match=r"differ from PyTorch's by up to 0\.01.*deploy\.logit_tolerance"):
        deploy(tmp_path, tokenized, tiny_tagger(tokenized[1]), "bad")
    assert not (tmp_path / "bad").exists()


def test_unknown_runtime_or_no_reference_names_the_key(tmp_path, tokenized):
    with pytest.raises(ShrinkError, match="deploy.runtimes.*tensorrt"):
        deploy(tmp_path, tokenized, tiny_tagger(tokenized[1]), "x", dict(CFG, runtimes=["pytorch_fp32", "tensorrt"]))
    with pytest.raises(ShrinkError, match="deploy.runtimes: pytorch_fp32 is the reference"):
        deploy(tmp_path, tokenized, tiny_tagger(tokenized[1]), "y", dict(CFG, runtimes=["onnx_fp32"]))


def test_serve_tags_raw_text_like_pytorch(deployed, tokenized):
    from seqeval.metrics.sequence_labeling import get_entities

    from shrink.ner.serve import WORD, Tagger

    tok_dir, labels = tokenized
    tmp_path, model, _ = deployed
    text = "Peter Blackburn said in Brussels on Tuesday that the European Union 's plan , worth 3.5 million , " * 3
    got = Tagger(tmp_path / "m").tag(text)
    # the expected spans from PyTorch directly: the same words, windows of 24 pieces, first-piece tags
    from datasets import Dataset
    from transformers import AutoTokenizer

    from shrink.ner.conll import Sentence
    from shrink.ner.metrics import predict_tags
    from shrink.ner.tokens import encode_split

    spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
    words = [text[a:b] for a, b in spans]
    tok = AutoTokenizer.from_pretrained(tok_dir / "tokenizer")
    rows = encode_split([Sentence(words, ["O"] * len(words), 1)], tok, labels, 24, False, 4)
    assert len(rows["input_ids"]) > 1  # the text is tagged in several windows
    tags = predict_tags(model, Dataset.from_dict(rows), tok, labels)[0]
    want = [(k, spans[a][0], spans[b][1]) for k, a, b in get_entities(tags)]
    assert want and [(e["type"], e["start"], e["end"]) for e in got["entities"]] == want
    assert all(e["text"] == text[e["start"]: e["end"]] for e in got["entities"])
    # the command line prints the same, one JSON line per input line
    out = subprocess.run([sys.executable, "-m", "shrink.ner.serve", str(tmp_path / "m"), "-"], input=text + "\n",
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == got


class _MaskBlind(torch.nn.Module):
    """A tagger that never reads attention_mask, like a BERT whose every attention head was pruned."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.out(self.emb(input_ids))})()


def test_static_int8_calibrates_a_graph_that_dropped_attention_mask(tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (2, 7))
    sample = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    onnx_export.export(_MaskBlind().eval(), sample, tmp_path / "m.onnx")
    assert onnx_export.graph_inputs(tmp_path / "m.onnx") == {"input_ids"}
    assert [i.name for i in onnx_export.session(tmp_path / "m.onnx").get_inputs()] == ["input_ids"]
    # calibration feeds carry the mask; the quantizer must be given only what the graph takes
    feeds = [{k: v[i:i + 1].numpy() for k, v in sample.items()} for i in range(2)]
    onnx_export.quantize_static(tmp_path / "m.onnx", tmp_path / "q.onnx", feeds)
    got = onnx_export.OnnxLogits(tmp_path / "q.onnx")(**sample).logits
    assert got.shape == (2, 7, 3)


def test_peer_comparison_chooses_on_validation_among_rows_that_keep_the_teachers_f1():
    """perf/deploy_peers.py's verdict: each side's fastest row keeping 98% of the reference's validation
    F1; a faster row below that share, or one better only on test, must not be chosen."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("deploy_peers", REPO / "perf" / "deploy_peers.py")
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)

    def row(name, val, test, ms):
        return {"row": name, "validation_f1": val, "test_f1": test, "latency_ms": ms, "speedup": 10.0 / ms}

    rows = [row("pytorch_fp32", 0.90, 0.86, 10.0),
            row("onnx_fp32", 0.90, 0.86, 4.0), row("v onnx_int8_dynamic", 0.80, 0.99, 0.5),
            row("onnx_int8_dynamic", 0.895, 0.85, 2.0),
            row("openvino_fp32", 0.90, 0.86, 3.0), row("openvino_int8_nncf", 0.89, 0.85, 2.5)]
    verdict = peers.compare(rows, 4, 0.98)
    assert "ours onnx_int8_dynamic (2.00 ms" in verdict
    assert "peers openvino_int8_nncf (2.50 ms" in verdict
    assert verdict.endswith("ours / peers 1.25x")
    assert "peers none" in peers.compare(rows[:4] + [row("openvino_int8_nncf", 0.5, 0.5, 1.0)], 4, 0.98)


def test_deployment_table_chooses_on_validation_and_shows_every_model_by_runtime(tmp_path):
    from shrink.ner.deployment_table import write_deployment

    def record(model, runtimes):
        runs = {rt: {"validation": {"f1": v}, "test": {"f1": t}, "speed": {"latency_ms_batch1_median": ms,
                "latency_ms_batch1_p90": ms * 1.5, "throughput_sentences_per_s": 100 / ms}}
                for rt, (v, t, ms) in runtimes.items()}
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"model": model, "runtimes": runs}))
        return path

    paths = [record("teacher", {"pytorch_fp32": (0.90, 0.86, 6.0), "onnx_int8_dynamic": (0.899, 0.80, 1.2)}),
             record("small", {"pytorch_fp32": (0.85, 0.95, 0.4), "pytorch_bf16": (0.90, 0.85, 2.0)})]
    df, best = write_deployment(paths, tmp_path / "t.csv", tmp_path / "t.md")
    # the 0.4 ms row scores best on test but keeps only 94% on validation: not chosen
    assert (best["model"], best["runtime"]) == ("teacher", "onnx_int8_dynamic")
    md = (tmp_path / "t.md").read_text()
    assert "teacher in onnx_int8_dynamic, test F1 0.8000 (93.0% of the teacher's), 5.00x" in md
    wide = md.split("Batch-1 median latency in ms by runtime:")[1]
    small = next(line for line in wide.splitlines() if line.startswith("| small"))
    assert [c.strip() for c in small.strip("|").split("|")] == ["small", "0.40", "", "2.00"]


def test_int8_files_leave_the_projections_of_a_layer_without_heads_in_fp32(tmp_path):
    """A layer whose every head was pruned has 0-wide projections; quantizing them wrecked both int8
    files (logits off by ~10 against a largest logit of 7.4) before they were excluded."""
    from shrink.methods.attention_heads import prune_heads

    torch.manual_seed(0)
    model = prune_heads(tiny_tagger(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), {1: []}).eval()
    ids = torch.randint(1000, 5000, (4, 12))
    sample = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    onnx_export.export(model, sample, tmp_path / "m.onnx")
    assert onnx_export.empty_matmuls(tmp_path / "m.onnx") == ["/model/bert/encoder/layer.1/attention/output/dense/MatMul"]
    onnx_export.quantize_dynamic(tmp_path / "m.onnx", tmp_path / "dynamic.onnx")
    onnx_export.quantize_static(tmp_path / "m.onnx", tmp_path / "static.onnx",
                                [{k: v[i:i + 1].numpy() for k, v in sample.items()} for i in range(4)])
    with torch.no_grad():
        ref = model(**sample).logits
    for name in ("dynamic.onnx", "static.onnx"):
        got = onnx_export.OnnxLogits(tmp_path / name)(**sample).logits
        assert (got - ref).abs().max() < 0.05 * ref.abs().max(), name  # 0.10 and 0.13 of 7.4 here
