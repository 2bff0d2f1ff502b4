"""The ONNX Runtime inference engine: a bert-tf task model (token or sequence classifier) written as an ONNX graph,
optionally quantized to int8 (CPUs) or converted to float16 (CUDA GPUs), and run over the same batches as
`Trainer.predict`, handing back the same outputs.

    from bert_tf import onnx_engine
    predictor = onnx_engine.predictor_for(task, "int8", cache_dir="out/onnx")
    predictor.predict(dataset, num_batches, on_batch)   # as Trainer.predict: {"logits": ..., other batch keys}

The graph is built from the model's weights with ONNX Runtime's fused transformer operators (com.microsoft
Attention, SkipLayerNormalization, BiasGelu or FastGelu), so it needs ONNX Runtime to run: the standard BERT
encoder (post-LayerNorm, epsilon 1e-12, learned absolute positions from 0, two segments), the exact (erf) or tanh
GELU or ReLU as the model's, then the task head (pooler, [CLS] state or the mention's state at length // 2; one
logit per label and per position for a token classifier). Padding masks the attention keys as in keras-hub.

Precisions: float32 (the model's weights as they are; CPU or CUDA), int8 (dynamic quantization of the encoder's
matrix products: int8 weights, activations quantized per batch; CPU), float16 (every weight and activation in
float16 except the inputs and the float32 logits; CUDA only).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from bert_tf.batch_format import FEATURE_KEYS, PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.config import INFERENCE_PRECISIONS as PRECISIONS
from bert_tf.errors import InputError

OPSET = 17
MS_DOMAIN = "com.microsoft"
LAYER_NORM_EPSILON = 1e-12
# Largest absolute difference of any logit between the exported float32 graph and the TensorFlow model on a
# check batch: more means the graph is not the model (an architecture this exporter does not know).
EXPORT_TOLERANCE = 1e-3
# Nodes kept in float32 by the int8 quantization: the small task head, where rounding would reach the logits
# directly and which costs nothing.
HEAD_NODES = ("pooler_matmul", "classifier_matmul")
# Part of a cached export's name: changes whenever the graph or the quantization changes, so that an export made by
# another version is never reused.
EXPORT_VERSION = 2


def require_onnx():
    """The onnx and onnxruntime modules; InputError when they are not installed."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise InputError(f"--inference_engine=onnxruntime needs the onnx and onnxruntime packages ({error}); "
                         "pip install -r requirements.txt (onnxruntime-gpu on GPU machines)") from None
    return onnx, onnxruntime


class _GraphBuilder:
    """Nodes and initializers of an ONNX graph under construction."""

    def __init__(self):
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []

    def weight(self, name: str, value: np.ndarray) -> str:
        """Add a constant; its name."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))  # 0-d stays 0-d
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, outputs: int = 1, domain: str = "", **attrs) -> str:
        """Add a node; its (first) output's name."""
        from onnx import helper

        names = [name] + [f"{name}_out{i}" for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=name, domain=domain, **attrs))
        return name

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray, name: str) -> str:
        """x @ kernel + bias, with `kernel` in [in, out] layout."""
        product = self.node("MatMul", [x, self.weight(f"{name}_kernel", kernel)], f"{name}_matmul")
        return self.node("Add", [product, self.weight(f"{name}_bias", bias)], name)


def _kernel(state: Dict[str, np.ndarray], key: str) -> np.ndarray:
    """A dense weight of the canonical (PyTorch, [out, in]) state in ONNX's [in, out] layout."""
    return np.ascontiguousarray(state[key + ".weight"].T.astype(np.float32))


def _embeddings(g: _GraphBuilder, state: Dict[str, np.ndarray]) -> str:
    """Token + position (0..length-1) + segment embeddings, LayerNorm."""
    words = g.node("Gather", [g.weight("word_embeddings", state["embeddings.word_embeddings.weight"]), TOKEN_IDS],
                   "word_lookup")
    segments = g.node("Gather", [g.weight("segment_embeddings", state["embeddings.token_type_embeddings.weight"]),
                                 SEGMENT_IDS], "segment_lookup")
    length = g.node("Gather", [g.node("Shape", [TOKEN_IDS], "input_shape"),
                               g.weight("length_axis", np.array([1], np.int64))], "input_length")
    positions = g.node("Slice", [g.weight("position_embeddings", state["embeddings.position_embeddings.weight"]),
                                 g.weight("zero", np.array([0], np.int64)), length,
                                 g.weight("first_axis", np.array([0], np.int64))], "position_rows")
    summed = g.node("Add", [g.node("Add", [words, segments], "word_plus_segment"), positions], "embedding_sum")
    return g.node("LayerNormalization", [summed, g.weight("embeddings_gamma", state["embeddings.LayerNorm.weight"]),
                                         g.weight("embeddings_beta", state["embeddings.LayerNorm.bias"])],
                  "embeddings", axis=-1, epsilon=LAYER_NORM_EPSILON)


def _feedforward_activation(g: _GraphBuilder, x: str, bias: str, activation: str, name: str) -> str:
    """activation(x + bias) with the model's activation (exact GELU, tanh GELU or ReLU)."""
    if activation == "gelu_exact":
        return g.node("BiasGelu", [x, bias], name, domain=MS_DOMAIN)
    if activation == "gelu_tanh":
        return g.node("FastGelu", [x, bias], name, domain=MS_DOMAIN)
    if activation == "relu":
        return g.node("Relu", [g.node("Add", [x, bias], f"{name}_biased")], name)
    raise InputError(f"activation {activation!r}: the ONNX export knows gelu_exact, gelu_tanh and relu")


def _self_attention(g: _GraphBuilder, x: str, mask: str, state: Dict[str, np.ndarray], p: str, n: str,
                    heads: int, query: Optional[str]) -> str:
    """Multi-head self-attention of `x` [batch, length, hidden] with padded keys masked, before the output
    projection: for every position (one fused Attention node), or with `query` (the input states of the only
    positions read, [batch, k, hidden]) for those positions alone."""
    qkv = [f"{p}attention.self.{part}" for part in ("query", "key", "value")]
    bias = g.weight(f"{n}_qkv_bias", np.concatenate([state[k + ".bias"] for k in qkv]))
    if query is None:
        kernel = g.weight(f"{n}_qkv_kernel", np.concatenate([_kernel(state, k) for k in qkv], 1))
        return g.node("Attention", [x, kernel, bias, mask], f"{n}_attention", domain=MS_DOMAIN, num_heads=heads)
    projections = [g.node("MatMul", [source, g.weight(f"{n}_{part}_kernel", _kernel(state, key))], f"{n}_{part}_matmul")
                   for source, part, key in zip((query, x, x), ("query", "key", "value"), qkv)]
    return g.node("MultiHeadAttention", projections + [bias, mask], f"{n}_attention", domain=MS_DOMAIN,
                  num_heads=heads)


def _encoder_layer(g: _GraphBuilder, x: str, mask: str, state: Dict[str, np.ndarray], i: int, heads: int,
                   activation: str, query: Optional[str] = None) -> str:
    """One post-LayerNorm transformer layer: self-attention, output projection + residual + LayerNorm,
    feed-forward + residual + LayerNorm. With `query` (some positions' input states, [batch, k, hidden]) only those
    positions' outputs are computed (attending to every position of `x`): the same numbers for them, less
    arithmetic."""
    p, n = f"encoder.layer.{i}.", f"layer{i}"
    attended = _self_attention(g, x, mask, state, p, n, heads, query)
    projected = g.node("MatMul", [attended, g.weight(f"{n}_attention_output_kernel",
                                                     _kernel(state, p + "attention.output.dense"))],
                       f"{n}_attention_output_matmul")
    x = _add_norm(g, projected, x if query is None else query, state, p + "attention.output", f"{n}_attention")
    inner = g.node("MatMul", [x, g.weight(f"{n}_intermediate_kernel", _kernel(state, p + "intermediate.dense"))],
                   f"{n}_intermediate_matmul")
    inner = _feedforward_activation(g, inner, g.weight(f"{n}_intermediate_bias", state[p + "intermediate.dense.bias"]),
                                    activation, f"{n}_intermediate")
    out = g.node("MatMul", [inner, g.weight(f"{n}_output_kernel", _kernel(state, p + "output.dense"))],
                 f"{n}_output_matmul")
    return _add_norm(g, out, x, state, p + "output", f"{n}_output")


def _add_norm(g: _GraphBuilder, x: str, residual: str, state: Dict[str, np.ndarray], key: str, n: str) -> str:
    """LayerNorm(x + the dense layer's bias + residual) of the dense layer `key` (one SkipLayerNormalization)."""
    return g.node("SkipLayerNormalization", [x, residual, g.weight(f"{n}_gamma", state[key + ".LayerNorm.weight"]),
                                             g.weight(f"{n}_beta", state[key + ".LayerNorm.bias"]),
                                             g.weight(f"{n}_dense_bias", state[key + ".dense.bias"])],
                  f"{n}_norm", domain=MS_DOMAIN, epsilon=LAYER_NORM_EPSILON)


def _read_position(g: _GraphBuilder, x: str, pooling: str) -> str:
    """The hidden states [batch, 1, hidden] at the position a sequence classifier reads (models.POOLINGS): the
    first, or the middle (length // 2) for pooling "mention"."""
    if pooling == "mention":
        length = g.node("Gather", [g.node("Shape", [x], "sequence_shape"),
                                   g.weight("length_axis_index", np.array([1], np.int64))], "sequence_length")
        index = g.node("Div", [length, g.weight("two", np.array([2], np.int64))], "middle_index")
    else:
        index = g.weight("first_index", np.array([0], np.int64))
    return g.node("Gather", [x, index], f"{pooling}_position", axis=1)


def _sequence_features(g: _GraphBuilder, token: str, pooling: str, state: Dict[str, np.ndarray]) -> str:
    """The vector [batch, hidden] a sequence classifier reads, from the last layer's output at its position."""
    vector = g.node("Squeeze", [token, g.weight("position_axis", np.array([1], np.int64))], f"{pooling}_token")
    if pooling != "pooler":
        return vector
    return g.node("Tanh", [g.dense(vector, _kernel(state, "pooler.dense"), state["pooler.dense.bias"], "pooler")],
                  "pooled")


def build_onnx_model(task) -> Any:
    """The ONNX model (float32) of a bert-tf task model: int32 inputs token_ids, padding_mask, segment_ids
    [batch, length]; float32 output logits [batch, labels] (sequence) or [batch, length, labels] (token)."""
    onnx, _ = require_onnx()
    from onnx import TensorProto, helper

    from bert_tf.checkpoints.names import backbone_state

    state = {k: np.asarray(v, np.float32) for k, v in
             backbone_state(task.backbone, include_pooler=task.head == "sequence").items()}
    g = _GraphBuilder()
    mask = PADDING_MASK
    x = _embeddings(g, state)
    layers, heads = task.backbone.num_layers, task.backbone.num_heads
    for i in range(layers - 1):
        x = _encoder_layer(g, x, mask, state, i, heads, task.activation)
    if task.head == "sequence":  # the last layer for the one position the classifier reads
        token = _encoder_layer(g, x, mask, state, layers - 1, heads, task.activation, _read_position(g, x, task.pooling))
        features = _sequence_features(g, token, task.pooling, state)
    else:
        features = _encoder_layer(g, x, mask, state, layers - 1, heads, task.activation)
    classifier = task.model.get_layer("classifier")
    product = g.node("MatMul", [features, g.weight("classifier_kernel", np.asarray(classifier.kernel.numpy(), np.float32))],
                     "classifier_matmul")
    g.node("Add", [product, g.weight("classifier_bias", np.asarray(classifier.bias.numpy(), np.float32))], "logits")
    num_logits = int(classifier.kernel.shape[-1])
    inputs = [helper.make_tensor_value_info(k, TensorProto.INT32, ["batch", "length"]) for k in FEATURE_KEYS]
    out_shape = ["batch", num_logits] if task.head == "sequence" else ["batch", "length", num_logits]
    graph = helper.make_graph(g.nodes, f"bert_tf_{task.head}_classifier", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
                              producer_name="bert-tf")
    model.ir_version = 8
    model.metadata_props.add(key="labels", value="\n".join(task.labels))
    model.metadata_props.add(key="head", value=task.head)
    return model


def quantize_int8(source: str, target: str) -> None:
    """Dynamic int8 quantization of a float32 ONNX file's encoder matrix products (weights int8 with a scale per
    output channel: one scale per tensor moved MiniLM's probabilities by up to 0.7 and cost 1.5 points of accuracy
    on the consensus examples, bench/inference_engine_per_tensor.json; activations uint8, quantized per batch at
    run time; the task head stays float32)."""
    onnx, _ = require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The contrib operators' outputs have no inferred type: they are float32.
    quantize_dynamic(source, target, op_types_to_quantize=["MatMul", "Attention"], per_channel=True,
                     weight_type=QuantType.QInt8, nodes_to_exclude=list(HEAD_NODES),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def convert_float16(source: str, target: str) -> None:
    """The float32 ONNX file with every weight and activation in float16; inputs int32 and logits float32 as
    before (ONNX Runtime's float16 converter, for CUDA)."""
    onnx, _ = require_onnx()
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(source), keep_io_types=True), target)


def export_onnx(task, path: str, precision: str = "float32") -> str:
    """Write the task model as an ONNX file of `precision` (PRECISIONS) at `path` (atomically); `path`."""
    onnx, _ = require_onnx()
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    from bert_tf.io_utils import atomic_path

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model = build_onnx_model(task)
    with atomic_path(path) as tmp:
        if precision == "float32":
            onnx.save(model, tmp)
        else:
            float32 = tmp + ".float32"
            onnx.save(model, float32)
            try:
                (quantize_int8 if precision == "int8" else convert_float16)(float32, tmp)
            finally:
                if os.path.exists(float32):
                    os.remove(float32)
    return path


def providers_for(precision: str) -> List[str]:
    """The ONNX Runtime execution providers a precision runs on: CUDA for float16 (InputError without it), the
    CPU for int8 (its integer kernels are CPU kernels), CUDA when present else the CPU for float32."""
    _, ort = require_onnx()
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if precision == "float16":
        if not cuda:
            raise InputError("--inference_precision=float16 runs on a CUDA GPU: install onnxruntime-gpu on a GPU "
                             f"machine (this onnxruntime has {', '.join(available)})")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if precision == "float32" and cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: str, precision: str, threads: Optional[int] = None) -> Any:
    """An ONNX Runtime session over an exported file (every graph optimization on)."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=providers_for(precision))


def check_export(task, session: Any, batch: int = 2, length: int = 16) -> float:
    """The largest absolute logit difference between the TensorFlow model and a float32 session on a random
    batch (one padded row); RuntimeError above EXPORT_TOLERANCE."""
    rng = np.random.default_rng(0)
    length = min(length, task.backbone.max_sequence_length)
    features = {TOKEN_IDS: rng.integers(1, task.backbone.vocabulary_size, (batch, length)).astype(np.int32),
                PADDING_MASK: np.ones((batch, length), np.int32),
                SEGMENT_IDS: (np.arange(length)[None, :] >= length // 2).repeat(batch, 0).astype(np.int32)}
    features[PADDING_MASK][-1, length * 3 // 4:] = 0
    expected = np.asarray(task.model(features, training=False), np.float32)
    got = session.run(["logits"], features)[0]
    if task.head == "token":  # a padded position's logits are never read
        keep = features[PADDING_MASK].astype(bool)
        expected, got = expected[keep], got[keep]
    difference = float(np.max(np.abs(expected - got)))
    if not difference <= EXPORT_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the model by {difference:.3g} in a logit (more than "
                           f"{EXPORT_TOLERANCE}): this model's architecture is not the one the exporter writes")
    return difference


class OnnxPredictor:
    """Runs an ONNX Runtime session over batches as `Trainer.predict` does: each batch's float32 "logits" with
    every non-feature key of the batch passed through (example index, labels, row ids)."""

    def __init__(self, session: Any, precision: str, verbose: bool = True):
        self.session, self.precision, self.verbose = session, precision, verbose
        self.progress_min_batches = 20

    @property
    def device(self) -> str:
        """Where the session runs, in words."""
        provider = self.session.get_providers()[0]
        return "a CUDA GPU" if provider.startswith("CUDA") else "the CPU"

    def run(self, features: Dict[str, np.ndarray]) -> np.ndarray:
        """The logits (float32) of one batch of features."""
        feeds = {k: np.ascontiguousarray(features[k], np.int32) for k in FEATURE_KEYS}
        return np.asarray(self.session.run(["logits"], feeds)[0], np.float32)

    def predict(self, dataset: Any, num_batches: Optional[int] = None,
                on_batch: Optional[Callable[[Dict[str, np.ndarray]], None]] = None,
                description: Optional[str] = None) -> None:
        """Run the session over `dataset` (a tf.data.Dataset of feature batches, or any iterable of dicts of
        arrays), handing each batch's outputs to `on_batch`."""
        from bert_tf.progress import ProgressBar

        show = self.verbose and num_batches is not None and num_batches >= self.progress_min_batches
        progbar = ProgressBar(num_batches, description or "predict", unit="batch") if show else None
        batches = dataset.as_numpy_iterator() if hasattr(dataset, "as_numpy_iterator") else iter(dataset)
        for i, batch in enumerate(batches, start=1):
            out = {k: np.asarray(v) for k, v in batch.items() if k not in FEATURE_KEYS}
            out["logits"] = self.run(batch)
            if on_batch is not None:
                on_batch(out)
            if progbar is not None:
                progbar.update(i)
            if num_batches is not None and i >= num_batches:
                break


def cached_path(cache_dir: str, digest: str, precision: str) -> str:
    """Where an export of the weights of `digest` in `precision` by this exporter (EXPORT_VERSION) is kept."""
    return os.path.join(cache_dir, f"model-{digest[:16]}-{precision}-v{EXPORT_VERSION}.onnx")


def predictor_for(task, precision: str, cache_dir: str, verbose: bool = True, digest: Optional[str] = None,
                  threads: Optional[int] = None) -> OnnxPredictor:
    """An ONNX Runtime predictor for the task model in `precision`: its export is read from `cache_dir` when an
    export of the same weights (digest) and precision is there, else written there first (and a float32 export
    checked against the model)."""
    from bert_tf import models

    if precision not in PRECISIONS:
        raise InputError(f"--inference_precision={precision}: must be one of {', '.join(PRECISIONS)}")
    providers_for(precision)  # refuse float16 without CUDA before exporting anything
    digest = digest or models.weights_digest(task.model)
    path = cached_path(cache_dir, digest, precision)
    if not os.path.isfile(path):
        started = time.time()
        export_onnx(task, path, precision)
        print(f"exported the model to ONNX ({precision}) in {time.time() - started:.1f} s: {path}", flush=True)
    session = make_session(path, precision, threads)
    if precision == "float32":
        check_export(task, session)
    predictor = OnnxPredictor(session, precision, verbose)
    print(f"predicting with ONNX Runtime {require_onnx()[1].__version__} ({precision}) on {predictor.device}",
          flush=True)
    return predictor
