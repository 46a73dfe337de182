"""A PyTorch encoder as a self-contained ONNX model, run and quantized by ONNX Runtime.

Task-free: the model is any module whose forward takes `input_ids` and `attention_mask` (and
optionally `token_type_ids`) and returns an object with `.logits`; inputs have dynamic batch and
sequence axes.

Exporter: torch's TorchScript exporter (`dynamo=False`). It exported a 2-layer tiny BERT in 2.5 s
against 28 s for the dynamo exporter (2-core AMD EPYC, torch 2.13, one thread), with the same logits
to 1e-7 in ONNX Runtime; every variant of a CI run is exported, so that difference is minutes.

Fused graphs: ONNX Runtime's transformer fusions (`onnxruntime.transformers.optimizer`, what Hugging
Face optimum's ORTOptimizer runs) rewrite an encoder exported with eager attention into its contrib
ops (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu). Only ONNX Runtime runs
those ops, so the fused file is an extra beside the portable one, not a replacement.

Sparse weights: ONNX stores a sparse initializer as COO values plus int64 flat indices (the spec, and
`onnx.checker`, require int64), 12 bytes per kept fp32 weight against 4 dense, so a matrix is stored
sparse only where that is smaller: above two-thirds zeros. ONNX Runtime densifies them when it loads
the model, so this saves disk and download, not time.
"""

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
OPSET = 17


class _Logits(torch.nn.Module):
    """The model with positional inputs and a plain logits output, which the exporter needs."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.names, inputs))).logits


@contextlib.contextmanager
def _quiet_exporter():
    # the TorchScript exporter's deprecation notice and tracer warnings about Python control flow on
    # shapes (transformers' mask code), which the dynamic axes and the logit check below make harmless
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        yield


def export(model, sample, path):
    """Write `model` to `path` (one file, weights included) traced on `sample`, a dict of int64 tensors.
    The graph may keep fewer inputs than `sample` has: the exporter drops one the model never reads."""
    names = [n for n in INPUT_NAMES if n in sample]
    model = model.eval()
    wrapped = _Logits(model, names).eval()
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, OUTPUT_NAME]}
    with torch.no_grad(), _quiet_exporter():
        torch.onnx.export(wrapped, tuple(sample[n] for n in names), str(path), dynamo=False,
                          input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    model.eval()  # the exporter restores the wrapper's training flag, which reaches the model


@contextlib.contextmanager
def eager_attention(model):
    """`model` with eager attention in every transformers model it holds while the block runs, then their own.
    ONNX Runtime's attention fusion matches the eager softmax(QK^T)V subgraph, not the SDPA one:
    a tiny BERT exported with eager attention fused 2 of its 2 layers into Attention nodes, 0 with SDPA."""
    # every transformers model inside it: a task head of this project's own may wrap the encoder
    inner = [m for m in model.modules() if hasattr(m, "set_attn_implementation")]
    before = [m.config._attn_implementation for m in inner]
    for m in inner:
        m.set_attn_implementation("eager")
    try:
        yield model
    finally:
        for m, b in zip(inner, before):
            m.set_attn_implementation(b)


def fuse(src, dst, num_heads=None, hidden_size=0):
    """ONNX Runtime's BERT graph fusions of the file at `src` (exported with eager attention), written
    to `dst`; returns {fused op type: count}. `num_heads` is the head count of every layer; None where
    layers differ (head pruning), which leaves attention unfused, since the fused Attention node takes
    one head count for the whole graph and the exporter writes -1 for it, which the optimizer cannot read.
    ONNX Runtime's basic graph optimizations (constant folding) run first, the optimizer's default for BERT."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = num_heads is not None
    # the optimizer asserts hidden_size % num_heads == 0, or both 0 (nothing to read them for)
    model = optimize_model(str(src), model_type="bert", num_heads=num_heads or 0,
                           hidden_size=hidden_size if num_heads else 0, optimization_options=options)
    model.save_model_to_file(str(dst))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def sparse_bytes(nonzero):
    """Bytes of a COO sparse fp32 initializer: a value and an int64 index per kept weight."""
    return nonzero * (4 + 8)


def store_sparse(path, min_saving=0.0):
    """Rewrite the ONNX file at `path` with each fp32 matrix initializer stored sparse where that is
    smaller than dense (by more than `min_saving`, a share). Returns {name: (zero share, dense bytes,
    sparse bytes)} of the matrices moved."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    keep, sparse, moved = [], [], {}
    for init in graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim == 2 and a.dtype == np.float32:
            flat = a.ravel()
            nz = np.flatnonzero(flat)
            dense, small = a.nbytes, sparse_bytes(len(nz))
            if small < dense * (1 - min_saving):
                values = numpy_helper.from_array(flat[nz], init.name)
                indices = numpy_helper.from_array(nz.astype(np.int64), f"{init.name}.indices")
                sparse.append(helper.make_sparse_tensor(values, indices, list(a.shape)))
                moved[init.name] = (1 - len(nz) / flat.size, dense, small)
                continue
        keep.append(init)
    if moved:
        del graph.initializer[:]
        graph.initializer.extend(keep)
        graph.sparse_initializer.extend(sparse)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return moved


def graph_inputs(path):
    """Names of the inputs an ONNX file takes (initializers listed as inputs by old exporters excluded)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer} | {i.values.name for i in graph.sparse_initializer}
    return {i.name for i in graph.input} - weights


def session(path, threads=1):
    """An ONNX Runtime CPU session with `threads` intra-op threads (one inter-op: a sequential graph)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer otherwise
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxLogits:
    """An ONNX Runtime session called like a Hugging Face model: `model(**batch).logits` as a torch
    tensor, so the evaluation and timing code written for PyTorch models runs it unchanged."""

    class _Output:
        def __init__(self, logits):
            self.logits = logits

    def __init__(self, path, threads=1):
        self.session = session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self):
        return self

    def __call__(self, **batch):
        feed = {n: batch[n].cpu().numpy().astype(np.int64) for n in self.inputs if n in batch}
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            if missing != ["token_type_ids"]:
                raise ValueError(f"the ONNX model needs inputs {missing} that the batch does not have")
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return self._Output(torch.from_numpy(self.session.run([OUTPUT_NAME], feed)[0]))


@contextlib.contextmanager
def _prepared(src):
    """ONNX Runtime's documented step before quantizing: graph clean-up and ONNX shape inference into a
    temporary copy. Its symbolic shape inference is skipped: it fails on the exported attention mask
    (`Min(max_position_embeddings, sequence)` broadcasts), and ONNX's own inference is what the
    quantizer needs."""
    import tempfile

    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        yield prepared


def empty_matmuls(path):
    """Names of the MatMul nodes with an input of static size 0 in some dimension: the projections of a
    layer whose every attention head was pruned. They are left in fp32: quantizing them scales an empty
    tensor, and the int8 model's logits were off by 10.6 (dynamic) and 9.8 (static) against a largest
    fp32 logit of 7.4 (tiny BERT, one layer without heads); on full CoNLL-2003 a MiniLM with two such
    layers fell from validation F1 0.877 to 0.847 (dynamic) and 0.195 (static)."""
    import onnx

    model = onnx.load(str(path))
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        dims = v.type.tensor_type.shape.dim
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and any(0 in shapes.get(i, []) for i in n.input)]


def quantize_dynamic(src, dst, fused=False):
    """ONNX Runtime dynamic int8: int8 weights per output channel, activations quantized per batch.

    `fused`: `src` is a fuse() output. Its contrib ops are unknown to ONNX shape inference, so the
    pre-processing step is skipped and the quantizer is told their outputs are float. Per channel
    there as here: on the fused MiniLM teacher (full CoNLL-2003) it kept validation F1 0.9034 / test
    0.8617 against 0.9010 / 0.8534 per tensor (optimum's avx512_vnni preset), at the same batch-1
    latency (1.28 ms against 1.26, 2-core Xeon with AMX)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_dynamic

    source = contextlib.nullcontext(src) if fused else _prepared(src)
    extra = {"DefaultTensorType": TensorProto.FLOAT} if fused else {}
    with source as path:
        ort_dynamic(str(path), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=empty_matmuls(path), extra_options=extra)


class _Batches:
    """onnxruntime.quantization's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def quantize_static(src, dst, calibration):
    """ONNX Runtime static int8 (QDQ, per-channel int8 weights, uint8 activations) of the MatMul nodes
    only, with activation ranges calibrated (min/max) on `calibration`, a list of {input name: int64
    numpy array}.

    MatMul only: with ONNX Runtime's default node types (Add, Gather, ... quantized too) the fine-tuned
    MiniLM teacher fell to validation F1 0.8607 (test 0.8160) from 0.9077; with MatMul only it kept
    0.8956 (test 0.8525), 128 calibration sentences, 2-core AMD EPYC (issue 17; chosen on validation).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_static

    # only the inputs the graph kept: a model whose every attention head was pruned has no attention_mask input
    taken = graph_inputs(src)
    calibration = [{k: v for k, v in feed.items() if k in taken} for feed in calibration]
    with _prepared(src) as prepared:
        ort_static(str(prepared), str(dst), _Batches(calibration), quant_format=QuantFormat.QDQ,
                   per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                   calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"],
                   nodes_to_exclude=empty_matmuls(prepared))
