"""Quantises the fp32 graph that minilm_to_onnx.py writes to the int8 graph the gateway runs.

Dynamic quantisation with ONNX Runtime's own tool: every MatMul with a weight matrix gets int8
weights, one scale per output channel, and quantises its input on each run, one scale for the
whole tensor (uint8). BERT's activations have a few outlier channels (one LayerNorm channel
reaches 28 where the median is 1.9), and a scale stretched to them leaves the other channels a
handful of levels. So the channels of an input above three times its median (two at most) are
taken out first and multiplied in fp32 (LLM.int8()'s decomposition): on the labelled prompts
the vectors' mean cosine to fp32 goes from 0.9944 to 0.9992, for 0.2 ms a run. The outlier
channels are found on random token sequences (seeded): they are the same whatever the text.

The int8 weight matrices go to OUT.onnx.data, each at a page-aligned offset, and OUT.onnx.json
lists them (name, ONNX data_type, dims, offset, length): the gateway reads that file once and
hands the same tensors to each of its sessions, which share that one copy. What else
runs read (biases, scales, LayerNorm, the outliers' rows) stays in the graph. ONNX Runtime
loads OUT.onnx on its own too, as a graph with external data.
usage: quantize_minilm.py MODEL_DIR   (model_fp32.onnx and embeddings.bin in, then
       model_quantized.onnx, .onnx.data and .onnx.json out)
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

OUTLIER_RATIO = 3.0
MAX_OUTLIERS = 2
CALIBRATION_RUNS = 64
# Weight matrices are 147 KiB and more; the per-channel zero points, also int8, are 1.5 KiB.
SHARED_MIN_BYTES = 64 * 1024
PAGE = 4096


def read_tables(path):
    """Word rows and position rows, as minilm_to_onnx.py writes them."""
    data = path.read_bytes()
    words, positions, dims = struct.unpack("<III", data[:12])
    rows = np.frombuffer(data[12:], dtype=[("scale", "<f4"), ("q", "i1", dims)], count=words)
    at = 12 + rows.nbytes
    position_rows = np.frombuffer(data[at:], dtype="<f4", count=positions * dims).reshape(positions, dims)
    return rows["q"].astype(np.float32) * rows["scale"][:, None], position_rows


def activation_peaks(model, tables, inputs):
    """The largest |value| of each channel of each input, over random token sequences."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in inputs:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    words, positions = tables
    rng = np.random.default_rng(0)
    cls, sep, first_word = 101, 102, 1000
    peaks = {}
    for _ in range(CALIBRATION_RUNS):
        ids = [cls, *rng.integers(first_word, len(words), size=rng.integers(4, 60)), sep]
        embeddings = words[ids] + positions[: len(ids)]
        feed = {"embeddings": embeddings[None], "attention_mask": np.ones((1, len(ids)), np.int64)}
        for name, value in zip(inputs, session.run(inputs, feed)):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            peaks[name] = np.maximum(peaks.get(name, peak), peak)
    return peaks


def split_outliers(model, tables):
    """Rewrites y = x W + b as (x * mask) W + b + x[:, outliers] W[outliers] for the inputs
    with outlier channels; returns the names of the fp32 MatMuls, which stay unquantised."""
    weights = {t.name: t for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    by_input = {}
    for node in matmuls:
        by_input.setdefault(node.input[0], []).append(node)
    peaks = activation_peaks(model, tables, list(by_input))
    nodes = list(model.graph.node)
    kept = []
    for x, consumers in by_input.items():
        peak = peaks[x]
        outliers = [int(c) for c in np.argsort(-peak)[:MAX_OUTLIERS] if peak[c] > OUTLIER_RATIO * np.median(peak)]
        if not outliers:
            continue
        mask = np.ones(len(peak), np.float32)
        mask[outliers] = 0
        model.graph.initializer.extend(
            [numpy_helper.from_array(mask, f"{x}.inliers"), numpy_helper.from_array(np.array(outliers), f"{x}.outliers")]
        )
        split = [
            helper.make_node("Mul", [x, f"{x}.inliers"], [f"{x}.inlier_part"], name=f"{x}.inlier_part"),
            helper.make_node("Gather", [x, f"{x}.outliers"], [f"{x}.outlier_part"], name=f"{x}.outlier_part", axis=-1),
        ]
        at = min(nodes.index(c) for c in consumers)
        nodes[at:at] = split
        for node in consumers:
            rows = numpy_helper.to_array(weights[node.input[1]])[outliers, :]
            model.graph.initializer.append(numpy_helper.from_array(rows, f"{node.name}.outlier_rows"))
            fp32 = helper.make_node(
                "MatMul", [f"{x}.outlier_part", f"{node.name}.outlier_rows"], [f"{node.name}.outlier_out"],
                name=f"{node.name}.outlier_matmul",
            )
            kept.append(fp32.name)
            node.input[0] = f"{x}.inlier_part"
            # Joined after the bias, so ONNX Runtime can still fuse the bias into the int8 MatMul.
            bias = next((n for n in nodes if n.op_type == "Add" and n.input[0] == node.output[0]), node)
            joined = bias.output[0]
            bias.output[0] = f"{joined}.inlier_out"
            join = helper.make_node("Add", [bias.output[0], fp32.output[0]], [joined], name=f"{joined}.join")
            after = nodes.index(bias) + 1
            nodes[after:after] = [fp32, join]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return kept


def externalize(model, out):
    """Moves the int8 weight matrices to OUT.onnx.data and returns the manifest."""
    data = bytearray()
    manifest = []
    for tensor in model.graph.initializer:
        if tensor.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) or len(tensor.raw_data) < SHARED_MIN_BYTES:
            continue
        data += bytes(-len(data) % PAGE)
        offset, raw = len(data), tensor.raw_data
        data += raw
        manifest.append(
            {"name": tensor.name, "data_type": tensor.data_type, "dims": list(tensor.dims),
             "offset": offset, "length": len(raw)}
        )
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", out.name + ".data"), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return bytes(data), manifest


def write(path, payload):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.rename(path)


def main():
    model_dir = Path(sys.argv[1])
    out = model_dir / "model_quantized.onnx"
    model = onnx.load(str(model_dir / "model_fp32.onnx"))
    kept = split_outliers(model, read_tables(model_dir / "embeddings.bin"))
    split, staged = out.with_name(out.name + ".split.tmp"), out.with_name(out.name + ".int8.tmp")
    onnx.save(model, str(split))
    quantize_dynamic(
        str(split), str(staged), weight_type=QuantType.QUInt8, per_channel=True,
        op_types_to_quantize=["MatMul"], nodes_to_exclude=kept,
    )
    model = onnx.load(str(staged))
    split.unlink()
    staged.unlink()
    data, manifest = externalize(model, out)
    write(out.with_name(out.name + ".data"), data)
    write(out.with_name(out.name + ".json"), json.dumps(manifest, indent=1).encode())
    write(out, model.SerializeToString())


if __name__ == "__main__":
    main()
