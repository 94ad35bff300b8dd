"""TFLite targets, written without TensorFlow.

float32: the step graph of `graph.py` serialised directly with the flatbuffer schema that
ai_edge_litert ships (`schema_py_generated`, object API) and `flatbuffers`, with a `serving_default`
signature and a dynamic batch axis (shape [1, W], shape_signature [-1, W]).

float16 and int8: made from that float model by ai-edge-quantizer. float16 stores the
fully-connected weights as fp16 and DEQUANTIZEs them to float32, the layout the GPU delegate
consumes. int8 is full-integer (static: per-channel int8 weights, int8 activations), calibrated on
the artifact's representative samples fed as one whole batch: the quantizer's default
moving-average update over single samples narrows the ranges far below what the stream reaches.
Then the input x, the output y_hat and every state tensor get the artifact's calibrated ranges, and
each state input and its output one scale, so the runtime feeds the state back without requantizing;
the tensors the graph names get the int8 reference cell's grids (`grids()`), so the target rounds
where the reference does (an ESN: everywhere, its four fully-connected outputs included).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge.artifact import Artifact
from edge.errors import ArtifactError, RnnEdgeError
from edge.quant import ZERO_ROW_SCALE, int8_range, pinnable, range_scale
from edge.targets import INPUT, split_state

from . import graph

SIGNATURE = "serving_default"


class _TFLiteBuilder:
    def __init__(self) -> None:
        from ai_edge_litert import schema_py_generated as s
        self.s = s
        self.buffers = [s.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors: list = []
        self.ops: list = []
        self.opcodes: list[int] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.renames: dict[int, str] = {}

    def _tensor(self, name: str, shape: list[int], data: np.ndarray | None = None, batch: bool = False) -> int:
        t = self.s.TensorT()
        int32 = data is not None and np.asarray(data).dtype == np.int32  # a slice's begin, end, strides
        t.name, t.shape = name, list(shape)
        t.type = self.s.TensorType.INT32 if int32 else self.s.TensorType.FLOAT32
        if batch:
            t.shapeSignature = [-1, *shape[1:]]
        if data is not None:
            b = self.s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data, np.int32 if int32 else np.float32).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def _op(self, code: int, ins: list[int], width: int, options_type: int = 0, options=None) -> int:
        if code not in self.opcodes:
            self.opcodes.append(code)
        out = self._tensor(f"t{len(self.tensors)}", [1, width], batch=True)
        op = self.s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.opcodes.index(code), ins, [out]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.ops.append(op)
        return out

    def _width(self, t: int) -> int:
        return self.tensors[t].shape[-1]

    def _binary(self, code: int, opt_type: int, opt_cls, a: int, b: int) -> int:
        return self._op(code, [a, b], max(self._width(a), self._width(b)), opt_type, opt_cls())

    def input(self, name: str, width: int) -> int:
        t = self._tensor(name, [1, width], batch=True)
        self.inputs.append(t)
        return t

    def output(self, t: int, name: str, width: int) -> None:
        self.tensors[t].name = name
        self.outputs.append(t)

    def fc(self, x: int, w: np.ndarray, b: np.ndarray | None) -> int:
        s = self.s
        wt = self._tensor(f"w{len(self.tensors)}", list(w.shape), w)
        bt = -1 if b is None else self._tensor(f"b{len(self.tensors)}", [w.shape[0]], b)
        opt = s.FullyConnectedOptionsT()
        opt.fusedActivationFunction = s.ActivationFunctionType.NONE
        return self._op(s.BuiltinOperator.FULLY_CONNECTED, [x, wt, bt], w.shape[0],
                        s.BuiltinOptions.FullyConnectedOptions, opt)

    def add(self, a: int, b: int) -> int:
        s = self.s
        return self._binary(s.BuiltinOperator.ADD, s.BuiltinOptions.AddOptions, s.AddOptionsT, a, b)

    def sub(self, a: int, b: int) -> int:
        s = self.s
        return self._binary(s.BuiltinOperator.SUB, s.BuiltinOptions.SubOptions, s.SubOptionsT, a, b)

    def mul(self, a: int, b: int) -> int:
        s = self.s
        return self._binary(s.BuiltinOperator.MUL, s.BuiltinOptions.MulOptions, s.MulOptionsT, a, b)

    def scale(self, a: int, c: float) -> int:
        return self.mul(a, self._tensor(f"c{len(self.tensors)}", [1], np.array([c], np.float32)))

    def sigmoid(self, a: int) -> int:
        return self._op(self.s.BuiltinOperator.LOGISTIC, [a], self._width(a))

    def tanh(self, a: int) -> int:
        return self._op(self.s.BuiltinOperator.TANH, [a], self._width(a))

    def rotate(self, a: int) -> int:
        # the last unit, then the others: STRIDED_SLICE x 2 and CONCATENATION (every batch row: mask bit 0)
        s, n = self.s, self._width(a)

        def cols(begin: int, end: int) -> int:
            const = lambda v: self._tensor(f"i{len(self.tensors)}", [2], np.array(v, np.int32))  # noqa: E731
            opt = s.StridedSliceOptionsT()
            opt.beginMask = opt.endMask = 1
            return self._op(s.BuiltinOperator.STRIDED_SLICE, [a, const([0, begin]), const([0, end]), const([1, 1])],
                            end - begin, s.BuiltinOptions.StridedSliceOptions, opt)
        opt = s.ConcatenationOptionsT()
        opt.axis, opt.fusedActivationFunction = 1, s.ActivationFunctionType.NONE
        return self._op(s.BuiltinOperator.CONCATENATION, [cols(n - 1, n), cols(0, n - 1)], n,
                        s.BuiltinOptions.ConcatenationOptions, opt)

    def label(self, t: int, name: str) -> int:
        self.tensors[t].name = name
        return t

    def finish(self, description: str) -> bytes:
        import flatbuffers
        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = (
            self.tensors, self.inputs, self.outputs, self.ops, "main")
        codes = []
        for code in self.opcodes:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = SIGNATURE, 0

        def tmap(i: int):
            m = s.TensorMapT()
            m.name, m.tensorIndex = self.tensors[i].name, i
            return m
        sig.inputs, sig.outputs = [tmap(i) for i in self.inputs], [tmap(i) for i in self.outputs]
        model = s.ModelT()
        model.version, model.description = 3, description
        model.operatorCodes, model.subgraphs, model.buffers, model.signatureDefs = codes, [sg], self.buffers, [sig]
        b = flatbuffers.Builder(1024)
        b.Finish(model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def float_model(art: Artifact) -> bytes:
    """The float32 step graph as TFLite flatbuffer bytes."""
    b = _TFLiteBuilder()
    graph.build(art.config, art.weights, b)
    return b.finish(f"rnnedge step graph, model {art.model_id}: (x, state) -> (y_hat, state')")


def write_float(art: Artifact, path: Path) -> Path:
    Path(path).write_bytes(float_model(art))
    return path


def write_fp16(art: Artifact, path: Path) -> Path:
    """fp16 fully-connected weights with DEQUANTIZE to float32: the GPU delegate's layout."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer
    q = quantizer.Quantizer(bytearray(float_model(art)))
    q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
                             num_bits=16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    Path(path).write_bytes(bytes(q.quantize(enable_progress_report=False).quantized_model))
    return path


def write_int8(art: Artifact, path: Path) -> Path:
    """Full-integer int8 (int8 weights per channel, int8 activations), calibrated on whole batches."""
    from ai_edge_quantizer import qtyping, quantizer
    if art.activation_ranges is None:
        raise ArtifactError(f"{art.path}: int8 targets need a quantized model; train it with --int8")
    floats = float_model(art)
    q = quantizer.Quantizer(bytearray(floats))
    q.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                        activation_num_bits=8, weight_num_bits=8)
    feeds = {INPUT: art.calibration["x"], **split_state(art.config, art.calibration["state"])}
    with warnings.catch_warnings():  # its calibrator warns that it preserves all tensors: it must
        warnings.simplefilter("ignore", UserWarning)
        qsvs = q.calibrate({SIGNATURE: [feeds]})
        _pin(qsvs, art)
        with np.errstate(invalid="ignore"):  # the bias cast `_zero_rows` redoes
            model = _zero_rows(bytes(q.quantize(qsvs, enable_progress_report=False).quantized_model), floats)
    _check_scales(model, art)
    Path(path).write_bytes(model)
    return path


def _pin(qsvs: dict, art: Artifact) -> None:
    """Put the tensors `graph.int8_grids` names on those grids: [-128, 127] steps, stated so that
    the quantizer's scale is the grid's float32 value exactly (`edge.quant.int8_range`). A tensor
    that was zero on every calibration step (a flat training series' input times a weight) gets
    `range_scale`'s grid for an empty range, as a pinned one does: a zero scale no kernel takes."""
    empty = {name: pinnable(range_scale(0.0, 0.0))
             for name, v in qsvs.items() if not np.any(v["min"]) and not np.any(v["max"])}
    for name, scale in {**empty, **graph.int8_grids(art)}.items():
        lo, hi = int8_range(scale)
        qsvs[name] = {"min": np.array(lo, np.float32), "max": np.array(hi, np.float32)}


def _zero_rows(model: bytes, floats: bytes) -> bytes:
    """ai-edge-quantizer gives an all-zero weight row (a pruned one: a GRU's input weights for one
    channel are one number each) a scale of about 1e-12 / 127, on which the row's bias overflows
    int32 (it stores -2^31: the op would add -3e-4 instead of the bias). Such a row gets the scale
    the reference gives it (`edge.quant.ZERO_ROW_SCALE`), and its bias is quantized again, from the
    float model, on the grid that gives it (input scale / 127: far finer than the op's output grid)."""
    from ai_edge_litert import schema_py_generated as s
    m, f = (s.ModelT.InitFromPackedBuf(b, 0) for b in (model, floats))
    g, fg = m.subgraphs[0], f.subgraphs[0]
    bias = {t.name: np.frombuffer(bytes(f.buffers[t.buffer].data), np.float32) for t in fg.tensors
            if f.buffers[t.buffer].data is not None and len(f.buffers[t.buffer].data)}
    changed = False
    for op in g.operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode != s.BuiltinOperator.FULLY_CONNECTED:
            continue
        wt = g.tensors[op.inputs[1]]
        zero = ~np.frombuffer(bytes(m.buffers[wt.buffer].data), np.int8).reshape(wt.shape).any(axis=1)
        if not zero.any():
            continue
        ws = np.array(wt.quantization.scale, np.float32)
        ws[zero] = np.float32(ZERO_ROW_SCALE)
        wt.quantization.scale = ws.tolist()
        changed = True
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        bt, s_in = g.tensors[op.inputs[2]], np.float32(g.tensors[op.inputs[0]].quantization.scale[0])
        bs = s_in * ws
        bq = np.frombuffer(bytes(m.buffers[bt.buffer].data), np.int32).copy()
        bq[zero] = np.clip(np.rint(bias[bt.name][zero] / bs[zero]), -(2**31 - 1), 2**31 - 1)
        bt.quantization.scale = bs.tolist()
        m.buffers[bt.buffer].data = np.frombuffer(bq.tobytes(), np.uint8)
    if not changed:
        return model
    import flatbuffers
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _check_scales(model: bytes, art: Artifact) -> None:
    """Refuse a target whose quantizer did not keep a pinned grid exactly."""
    from ai_edge_litert import schema_py_generated as s
    tensors = s.ModelT.InitFromPackedBuf(model, 0).subgraphs[0].tensors
    got = {t.name.decode() if isinstance(t.name, bytes) else t.name: t.quantization for t in tensors}
    for name, scale in graph.int8_grids(art).items():
        q = got.get(name)
        if q is None or q.scale is None or len(q.scale) != 1 or np.float32(q.scale[0]) != np.float32(scale) \
                or list(q.zeroPoint) != [0]:
            raise RnnEdgeError(f"{art.path}: the int8 quantizer did not keep tensor {name!r} on its grid "
                               f"(scale {scale!r}, zero point 0); got {None if q is None else (q.scale, q.zeroPoint)}")
