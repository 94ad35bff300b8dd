"""ONNX targets: the float32 step graph built from the weights with onnx.helper, and its int8 QDQ
version made by onnxruntime.quantization.

Why onnx.helper and not torch.onnx.export: the converters must run without torch (the ESN never
touches it), the step graph is a dozen ops we already describe once in `graph.py` for TFLite too,
and the exporters have traps for a recurrent step (the dynamo exporter needs onnxscript and opset
>= 18; traced with a batch-1 example it silently fixes the batch axis). Here the batch axis is a
named symbolic dimension by construction.

The int8 model is per-channel symmetric int8 weights and symmetric int8 activations in QDQ form,
calibrated (MinMax) on the artifact's representative samples fed as one whole batch, so the
ranges cover every sample rather than a running average. The state input and each state output
are pinned to the artifact's one state scale, so the state fed back lies on the grid the next step
quantizes it to, as in the numpy int8 reference, and the tensors the graph names on the reference
cell's grids (`grids()`: an ESN's fully-connected outputs, pre-activation, tanh and leaky-update terms).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from edge.artifact import Artifact
from edge.errors import ArtifactError
from edge.targets import INPUT, split_state

from . import graph

OPSET = 17     # onnxruntime >= 1.14, TensorRT >= 8.6
IR_VERSION = 8  # readable by onnxruntime >= 1.14


class _OnnxBuilder:
    def __init__(self) -> None:
        from onnx import helper
        self.h = helper
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.renames: dict[str, str] = {}
        self._n = 0

    def _name(self, op: str) -> str:
        self._n += 1
        return f"{op.lower()}_{self._n}"

    def _op(self, op: str, *ins: str, **attrs) -> str:
        out = self._name(op)
        self.nodes.append(self.h.make_node(op, list(ins), [out], name=out, **attrs))
        return out

    def _const(self, a: np.ndarray, hint: str, dtype=np.float32) -> str:
        from onnx import numpy_helper
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype), name))
        return name

    def input(self, name: str, width: int) -> str:
        from onnx import TensorProto
        self.inputs.append(self.h.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width]))
        return name

    def output(self, t: str, name: str, width: int) -> None:
        # Rename the tensor rather than add an Identity: the readout then reads the very tensor the
        # graph outputs as state, so int8 pins one scale on both.
        from onnx import TensorProto
        self.renames[t] = name
        self.outputs.append(self.h.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width]))

    def fc(self, x: str, w: np.ndarray, b: np.ndarray | None) -> str:
        if b is None:
            return self._op("MatMul", x, self._const(w.T, "weight"))
        # one Gemm, not MatMul + Add: int8 then adds the bias in the int32 accumulator (as TFLite's
        # FULLY_CONNECTED does) instead of rounding the product onto a grid of its own first
        return self._op("Gemm", x, self._const(w, "weight"), self._const(b, "bias"), transB=1)

    def add(self, a: str, b: str) -> str:
        return self._op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self._op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self._op("Mul", a, b)

    def scale(self, a: str, c: float) -> str:
        return self._op("Mul", a, self._const(np.array(c, np.float32), "scale"))

    def rotate(self, a: str) -> str:
        # the last unit, then the others, along axis 1
        cols = lambda begin, end: self._op("Slice", a, *(self._const([v], "slice", np.int64)  # noqa: E731
                                                         for v in (begin, end, 1)))
        return self._op("Concat", cols(-1, np.iinfo(np.int64).max), cols(0, -1), axis=1)

    def label(self, t: str, name: str) -> str:
        self.renames[t] = name
        return t

    def sigmoid(self, a: str) -> str:
        return self._op("Sigmoid", a)

    def tanh(self, a: str) -> str:
        return self._op("Tanh", a)


def float_model(art: Artifact):
    """The float32 step graph as an onnx.ModelProto, checked by onnx.checker."""
    import onnx
    b = _OnnxBuilder()
    graph.build(art.config, art.weights, b)
    for node in b.nodes:
        node.input[:] = [b.renames.get(i, i) for i in node.input]
        node.output[:] = [b.renames.get(o, o) for o in node.output]
    g = b.h.make_graph(b.nodes, f"rnnedge_{art.config.kind}_step", b.inputs, b.outputs, b.inits)
    model = b.h.make_model(g, producer_name="rnnedge", opset_imports=[b.h.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = f"rnnedge step graph, model {art.model_id}: (x, state) -> (y_hat, state')"
    onnx.helper.set_model_props(model, {"rnnedge.model_id": art.model_id, "rnnedge.kind": art.config.kind})
    onnx.checker.check_model(model, full_check=True)
    return model


def write_float(art: Artifact, path: Path) -> Path:
    import onnx
    onnx.save(float_model(art), path)
    return path


def write_int8(art: Artifact, path: Path) -> Path:
    """Quantize the float graph to QDQ int8 with onnxruntime.quantization."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    if art.activation_ranges is None:
        raise ArtifactError(f"{art.path}: int8 targets need a quantized model; train it with --int8")
    feeds = {INPUT: art.calibration["x"], **split_state(art.config, art.calibration["state"])}

    class OneBatch(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([feeds])

        def get_next(self):
            return next(self.batches, None)

    overrides = {name: [{"scale": np.array(scale, np.float32), "zero_point": np.array(0, np.int8)}]
                 for name, scale in graph.int8_grids(art).items()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        write_float(art, src)
        logging.disable(logging.WARNING)  # its advice to run ORT's pre-processing is for large CNNs
        try:
            quantize_static(str(src), str(path), OneBatch(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1, "Gemm": 0},
                                           "TensorQuantOverrides": overrides})
        finally:
            logging.disable(logging.NOTSET)
    return path
