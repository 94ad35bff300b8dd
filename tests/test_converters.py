"""ONNX and TFLite targets in the real interpreters (onnxruntime, ai-edge-litert, tflite-micro),
parity gates over long closed-loop streams, firmware profiles, budget checks and deploy bundles."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("ai_edge_quantizer")

from converters import check, convert as conv, profiles  # noqa: E402
from converters.verify import MIN_STEPS, verify  # noqa: E402
from edge.bundle import BundleError, make_bundle, open_bundle  # noqa: E402
from edge.artifact import load_artifact  # noqa: E402
from edge.cell import run  # noqa: E402
from edge.errors import ArtifactError, DigestMismatchError  # noqa: E402
from edge.targets import GPU_TARGETS, TARGETS, LiteRTGpuCell, open_target  # noqa: E402

from .conftest import sine_series, train_small, write_csv  # noqa: E402

ALL = list(TARGETS)
# on the GPU delegate's supported-op list (ai.google.dev/edge/litert/performance/gpu); the last two
# rotate a cycle reservoir's state
GPU_DELEGATE_OPS = {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "DEQUANTIZE", "STRIDED_SLICE",
                    "CONCATENATION"}


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    """A raw 2-channel stream unseen by training (seed 1), twice the verification minimum: one
    flipped alert costs `clear_after` steps or more of agreement, so at the minimum (2,000 steps, 20
    of slack) three flips fail an int8 gate. On this nearly noiseless sine the int8 toolchains' error
    is the size of the noise, so the novelty rule's z >= 1.5 flips on a few noise extremes: at 2,200
    steps onnx-int8 agreed on 98.95% (4 alerts against 7), at 4,200 on 99.33% (7 against 9)."""
    return sine_series(2 * MIN_STEPS + 200, 2, seed=1)


@pytest.fixture(scope="module")
def converted(small_model, tmp_path_factory):
    """Every target of every small model, emitted once into a scratch copy of its directory."""
    out = tmp_path_factory.mktemp("targets")
    return small_model, {name: conv.emit(small_model, name, out)[0] for name in ALL}


@pytest.mark.parametrize("name", ALL)
def test_every_target_passes_its_gate_in_the_real_interpreter(converted, stream, name):
    art, paths = converted
    p = verify(art, name, open_target(paths[name], name, art.config), stream)
    assert p.passed, p
    assert p.steps >= MIN_STEPS
    if TARGETS[name].precision == "float32":
        assert p.forecast_max <= 1e-5
        assert p.threshold_agreement == 1.0 and p.alert_agreement == 1.0


@pytest.mark.parametrize("kind", ["gru", "esn"])
def test_a_flat_training_series_makes_int8_targets_that_run(kind, tmp_path):
    """A sensor that never moved while the model trained (NAB's art_flatline): the input, and the
    readout of it, are zero on every calibration step. Such a tensor gets the grid of the tensor it
    is added into (the forecast's), on which XNNPACK still runs the ADD, not the quantizer's zero
    scale, and the target passes its gate. (Left at the quantizer's scale for an empty range, about
    4e-12, LiteRT refused a GRU's target with an error until its gates were pinned; such a graph now
    makes LiteRT abort the process while preparing it, which no Python code can catch.)"""
    flat = write_csv(tmp_path / "flat.csv", np.full(600, 45.0, np.float32))
    art = load_artifact(train_small(kind, tmp_path / "model", flat))
    steady = np.full((MIN_STEPS, 1), 45.0, np.float32)
    for name in ("tflite-int8", "onnx-int8"):
        path, _ = conv.emit(art, name, tmp_path)
        assert verify(art, name, open_target(path, name, art.config), steady).passed
    assert art.activation_ranges["ro_input"] == (0.0, 0.0)
    assert art.cell("int8").scales["ro_input"] == art.cell("int8").scales["output"]


def test_the_int8_target_of_a_pruned_gru_keeps_every_bias(tmp_path):
    """Pruning zeroes whole rows of a GRU's input weights (one number per row with one channel).
    ai-edge-quantizer alone gives such a row a scale of about 1e-14 on which its bias overflows
    int32; the converter quantizes those biases again, so every bias of the target is its float
    value within half a step of its grid."""
    from ai_edge_litert import schema_py_generated as s
    from converters.tflite_target import float_model
    from edge.quant import ZERO_ROW_SCALE
    from trainer.config import PruneConfig
    csv = write_csv(tmp_path / "sine.csv", sine_series(1200))
    art = load_artifact(train_small("gru", tmp_path / "model", csv,
                                    prune=PruneConfig(sparsity=0.5, steps=1, finetune_epochs=1)))
    path, _ = conv.emit(art, "tflite-int8", art.path)
    m, f = (s.ModelT.InitFromPackedBuf(b, 0) for b in (path.read_bytes(), float_model(art)))
    floats = {t.name: f.buffers[t.buffer].data for t in f.subgraphs[0].tensors}
    g, zero_rows, biases = m.subgraphs[0], 0, 0
    for op in g.operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode != s.BuiltinOperator.FULLY_CONNECTED or op.inputs[2] < 0:
            continue
        w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
        zero = ~np.frombuffer(bytes(m.buffers[w.buffer].data), np.int8).reshape(w.shape).any(axis=1)
        assert np.all(np.asarray(w.quantization.scale, np.float32)[zero] == np.float32(ZERO_ROW_SCALE))
        zero_rows += int(zero.sum())
        got = np.frombuffer(bytes(m.buffers[b.buffer].data), np.int32) * np.asarray(b.quantization.scale, np.float64)
        want = np.frombuffer(bytes(floats[b.name]), np.float32)
        assert np.all(np.abs(got - want) <= np.asarray(b.quantization.scale) / 2 * 1.001), b.name
        biases += len(want)
    assert zero_rows > 0 and biases >= 3 * 8


def test_fp16_target_holds_only_gpu_delegate_ops_and_fp16_weights(converted):
    art, paths = converted
    from ai_edge_litert import schema_py_generated as s
    ops, _, _ = check._tflite_graph(paths["tflite-fp16"])
    assert set(ops) <= GPU_DELEGATE_OPS, ops
    assert set(ops) <= set(profiles.load_profile("android-gpu").ops)
    m = s.ModelT.InitFromPackedBuf(paths["tflite-fp16"].read_bytes(), 0)
    consts = [t for t in m.subgraphs[0].tensors if m.buffers[t.buffer].data is not None
              and len(m.buffers[t.buffer].data) and len(t.shape) == 2]
    assert consts and all(t.type == s.TensorType.FLOAT16 for t in consts)


def test_a_cycle_reservoirs_targets_rotate_the_state_instead_of_multiplying_it(converted):
    """A cycle's W s is r times the state rotated one place: its targets hold the rotation's ops and
    no units x units matrix; a random reservoir's hold the matrix (parity: the tests below)."""
    art, paths = converted
    if art.config.kind != "esn":
        pytest.skip("reservoirs only")
    import onnx
    from onnx import numpy_helper
    from ai_edge_litert import schema_py_generated as s
    h, cycle = art.config.units, art.config.topology == "cycle"
    for name in ("tflite", "tflite-int8"):
        ops, _, _ = check._tflite_graph(paths[name])
        assert ({"STRIDED_SLICE", "CONCATENATION"} <= set(ops)) == cycle, (name, ops)
        m = s.ModelT.InitFromPackedBuf(paths[name].read_bytes(), 0)
        square = [t.shape for t in m.subgraphs[0].tensors if list(t.shape) == [h, h]]
        assert bool(square) != cycle, (name, square)
    for name in ("onnx", "onnx-int8"):
        shapes = [numpy_helper.to_array(i).shape for i in onnx.load(paths[name]).graph.initializer]
        assert ((h, h) in shapes) != cycle, (name, shapes)


def test_int8_targets_share_one_scale_for_state_in_and_out(converted):
    art, paths = converted
    cell = open_target(paths["tflite-int8"], "tflite-int8", art.config)
    ins = {d["name"]: d for d in cell.interpreter.get_input_details()}
    outs = {d["name"]: d for d in cell.interpreter.get_output_details()}
    for name in [n for n in ins if n.startswith("state")]:
        assert ins[name]["dtype"] == np.int8
        assert ins[name]["quantization"] == outs[f"{name}_out"]["quantization"]
    import onnx
    from onnx import numpy_helper
    m = onnx.load(paths["onnx-int8"])
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for name in [i.name for i in m.graph.input if i.name.startswith("state")]:
        assert float(inits[f"{name}_scale"]) == float(inits[f"{name}_out_scale"])


def test_int8_targets_round_on_the_reference_cells_grids(converted):
    """x, y_hat and the state carry exactly the reference cell's scales (zero point 0), and so does
    every tensor the cell names a grid for (an ESN's fully-connected outputs, pre-activation, tanh
    and leaky-update terms; a GRU's gate parts, pre-activations, products and n), so the target
    rounds where the reference does."""
    import onnx
    from onnx import numpy_helper

    from edge.quant import range_scale
    from edge.targets import state_names
    art, paths = converted
    r = art.activation_ranges
    want = {"x": range_scale(*r["input"]), "y_hat": range_scale(*r["output"]),
            **{n: range_scale(*r["state"]) for n in state_names(art.config)}, **art.cell("int8").grids()}
    if art.config.kind == "esn":
        ring = {"ring"} if art.config.topology == "cycle" else set()  # the rotated state
        assert set(want) == {"x", "y_hat", "state", "fc_in", "fc_rec", "preact", "tanh", "keep", "new", "ro_state",
                             "ro_input", *ring}
    else:
        from edge.gru import N, PARTS
        layers = [f"_l{i}" for i in range(art.config.layers)]
        assert set(want) == {"x", "y_hat", *state_names(art.config), "ro_state", "ro_input",
                             *(p + suffix for suffix in layers for p in (*PARTS, N))}
    tensors = {d["name"]: d for d in open_target(paths["tflite-int8"], "tflite-int8", art.config)
               .interpreter.get_tensor_details()}
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(paths["onnx-int8"]).graph.initializer}
    for name, scale in want.items():
        q = tensors[name]["quantization_parameters"]
        assert (list(q["zero_points"]), q["scales"][0]) == ([0], pytest.approx(scale, rel=1e-6)), name
        assert float(inits[f"{name}_scale"]) == pytest.approx(scale, rel=1e-6), name


@pytest.mark.parametrize("runtime, arithmetic", [("litert", "xnnpack"), ("tflite-micro", "gemmlowp")])
def test_the_int8_reference_steps_as_its_tflite_target_does_bit_for_bit(converted, stream, runtime, arithmetic):
    """The int8 reference (ESN, GRU of one and two layers) computes each op as LiteRT's CPU path
    (XNNPACK) or TFLite Micro's reference kernels (gemmlowp) do, from the float32 scales the target
    is pinned to: forecasts and states are equal at every step of a closed loop, so a figure measured
    on either holds for the other."""
    art, paths = converted
    if runtime == "tflite-micro":
        pytest.importorskip("tflite_micro")
    ref = art.cell("int8", arithmetic)
    target = open_target(paths["tflite-int8"], "tflite-int8", art.config, runtime=runtime)
    z = art.normalizer.normalize(stream)
    y_ref, s_ref = run(ref, z, return_states=True)[::2]
    y, s = run(target, z, return_states=True)[::2]
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(s, s_ref)
    # one step of 2,000 streams from random states on the grid: ties of an ESN's leaky update's ADD
    # (a tanh of 0 and a state whose (1 - a) share lies half-way between two steps) come up here
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2000, art.config.input_size)).astype(np.float32)
    state = rng.integers(-128, 128, (2000, art.config.state_size)).astype(np.float32) * np.float32(ref.scales["state"])
    for got, want in zip(target.step(x, state), ref.step(x, state)):
        np.testing.assert_array_equal(got, want)


def _int8_op_model(op: str, inputs: list[tuple[float, int]], output: tuple[float, int], width: int = 256) -> bytes:
    """A TFLite model of one int8 op over `width` values: `inputs` and `output` as (scale, zero point)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(name, scale, zero):
        t, q = s.TensorT(), s.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(scale)], [int(zero)]
        t.name, t.shape, t.type, t.quantization = name, [1, width], s.TensorType.INT8, q
        return t
    sg, o, code, model = s.SubGraphT(), s.OperatorT(), s.OperatorCodeT(), s.ModelT()
    sg.tensors = [tensor(f"x{i}", *q) for i, q in enumerate(inputs)] + [tensor("y", *output)]
    sg.inputs, sg.outputs = list(range(len(inputs))), [len(inputs)]
    o.opcodeIndex, o.inputs, o.outputs = 0, sg.inputs, sg.outputs
    options = {"MUL": (s.BuiltinOptions.MulOptions, s.MulOptionsT), "SUB": (s.BuiltinOptions.SubOptions, s.SubOptionsT)}
    if op in options:
        o.builtinOptionsType, o.builtinOptions = options[op][0], options[op][1]()
    sg.operators = [o]
    code.builtinCode = code.deprecatedBuiltinCode = getattr(s.BuiltinOperator, op)
    code.version = 1
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sg], [s.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _interpreter(runtime: str):
    """(invoke(model bytes, int8 inputs) -> int8 output as float32, the reference's arithmetic)."""
    if runtime == "tflite-micro":
        tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

        def invoke(model, xs):
            it = tflm.Interpreter.from_bytes(model, arena_size=1 << 20)
            for i, x in enumerate(xs):
                it.set_input(x.astype(np.int8)[None], i)
            it.invoke()
            return it.get_output(0)[0].astype(np.float32)
        return invoke, "gemmlowp"
    from ai_edge_litert.interpreter import Interpreter

    def invoke(model, xs):
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), xs):
            it.set_tensor(d["index"], x.astype(np.int8)[None])
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])[0].astype(np.float32)
    return invoke, "xnnpack"


# input scales at which the kernels part from the float32 table: 0.007268082, an exact tie
# (tanh x 128 = 87.5 in numpy's float32, 87.4999... in glibc's tanhf, which LiteRT uses); the others
# where TFLite Micro's fixed-point tanh lands one step away from the float tanh
TANH_EDGE_SCALES = (0.007268082, 0.041947532, 0.017643742, 0.02711464)


@pytest.mark.parametrize("runtime", ["litert", "tflite-micro"])
def test_the_int8_activation_tables_are_each_interpreters_for_every_input(runtime):
    """The reference's int8 TANH and LOGISTIC in each arithmetic are the interpreter's for all 256
    inputs: LiteRT's (XNNPACK's tables of the C library's tanhf and expf) and TFLite Micro's
    (gemmlowp's fixed-point tanh and logistic, written out), at 1,000 input scales drawn
    log-uniformly from 1e-4 to 8 (500 for LOGISTIC) and at the scales where TANH parts from the
    plain float32 table."""
    from edge.quant import LOGISTIC_SCALE, LOGISTIC_ZERO, TANH_SCALE, int8_logistic_table, int8_tanh_table
    invoke, arithmetic = _interpreter(runtime)
    x = np.arange(-128, 128)
    rng = np.random.default_rng(11)
    scales = np.exp(rng.uniform(np.log(1e-4), np.log(8.0), 1000)).astype(np.float32).tolist()
    for scale in [*TANH_EDGE_SCALES, *scales]:
        np.testing.assert_array_equal(invoke(_int8_op_model("TANH", [(scale, 0)], (TANH_SCALE, 0)), [x]),
                                      int8_tanh_table(scale, arithmetic), err_msg=f"TANH, scale {scale}")
    for scale in scales[::2]:
        np.testing.assert_array_equal(
            invoke(_int8_op_model("LOGISTIC", [(scale, 0)], (LOGISTIC_SCALE, LOGISTIC_ZERO)), [x]),
            int8_logistic_table(scale, arithmetic), err_msg=f"LOGISTIC, scale {scale}")


@pytest.mark.parametrize("runtime", ["litert", "tflite-micro"])
def test_the_int8_mul_and_sub_are_each_interpreters(runtime):
    """A GRU's int8 MUL (of a LOGISTIC's output, zero point -128, or of zero point 0) and SUB, as the
    reference computes them (`edge.quant.Int8Mul`, `Int8Add` with subtract) in each arithmetic, equal
    the interpreter's on 4,096 input pairs at 200 draws of the three scales (each input's and the
    output's within a factor of 20 of the next, as a calibrated GRU's are)."""
    from edge.quant import LOGISTIC_SCALE, LOGISTIC_ZERO, Int8Add, Int8Mul
    invoke, arithmetic = _interpreter(runtime)
    rng = np.random.default_rng(3)
    a, b = (rng.integers(-128, 128, 4096).astype(np.float32) for _ in range(2))
    for i in range(200):
        s_b = float(np.exp(rng.uniform(-6, 0)))
        s_out = s_b * float(np.exp(rng.uniform(-3, 3)))
        s_a, z_a = (LOGISTIC_SCALE, LOGISTIC_ZERO) if i % 2 else (s_out * float(np.exp(rng.uniform(-3, 3))), 0)
        mul = _int8_op_model("MUL", [(s_a, z_a), (s_b, 0)], (s_out, 0), 4096)
        np.testing.assert_array_equal(invoke(mul, [a, b]), Int8Mul.build(s_a, z_a, s_b, s_out, arithmetic)(a, b),
                                      err_msg=f"MUL {s_a}, {z_a}, {s_b}, {s_out}")
        if z_a == 0:
            sub = _int8_op_model("SUB", [(s_a, 0), (s_b, 0)], (s_out, 0), 4096)
            np.testing.assert_array_equal(invoke(sub, [a, b]),
                                          Int8Add.build(s_a, s_b, s_out, arithmetic, subtract=True)(a, b),
                                          err_msg=f"SUB {s_a}, {s_b}, {s_out}")


def test_the_fixed_point_tanh_is_not_the_float_tanh_everywhere():
    """Why TFLite Micro's TANH is written out: at the edge scales its table differs from the float32
    table on one or two inputs, by one step (the test above shows which one each interpreter computes)."""
    from edge.quant import int8_tanh_table
    for scale in TANH_EDGE_SCALES[1:]:
        fixed, float_table = int8_tanh_table(scale, "gemmlowp"), np.rint(
            np.tanh(np.arange(-128, 128, dtype=np.float32) * np.float32(scale)) * np.float32(128))
        differ = fixed != np.clip(float_table, -128, 127)
        assert 1 <= differ.sum() <= 2 and np.abs(fixed - float_table)[differ].max() == 1, scale


def test_a_tanh_inputs_grid_keeps_its_table_off_the_c_librarys_rounding_ties():
    """LiteRT builds its int8 TANH table from the C library's tanhf, so at a grid where an entry's
    tanh sits on a rounding tie (0.007268082: 87.5 x 1/128 in numpy's float32 tanh, just under in
    glibc's) C libraries that round tanhf differently build different tables. The reference gives a
    TANH's input the next grid whose entries stay 4 float32 ulps from every tie: there numpy's
    float32 tanh and the C library's tanhf agree, at the edge scale and at 2,000 others; a tensor
    calibrated_grids is told feeds a TANH gets such a grid, and no other does."""
    from edge.quant import (TANH_TIE_ULPS, calibrated_grids, int8_tanh_table, pinnable, range_scale,
                            tanh_tie_distance, tie_free)
    numpy_table = lambda s: np.clip(np.rint(np.tanh(np.arange(-128, 128, dtype=np.float32)  # noqa: E731
                                                    * np.float32(s)) * np.float32(128)), -128, 127)
    edge = TANH_EDGE_SCALES[0]
    assert tanh_tie_distance(edge) < 1 and tie_free(edge) > edge and tie_free(edge) / edge - 1 < 1e-6
    assert tanh_tie_distance(tie_free(edge)) >= TANH_TIE_ULPS
    np.testing.assert_array_equal(numpy_table(tie_free(edge)), int8_tanh_table(tie_free(edge)))
    rng = np.random.default_rng(5)
    moved = 0
    for scale in np.exp(rng.uniform(np.log(1e-3), np.log(0.5), 2000)).tolist():
        free = tie_free(scale)
        moved += free != pinnable(scale)
        np.testing.assert_array_equal(numpy_table(free), int8_tanh_table(free), err_msg=f"scale {scale}")
    assert 1 <= moved <= 40  # about 1 scale in 300-600 moves
    lo, hi = -edge * 127.0, edge * 127.0
    grids = calibrated_grids({"preact": (lo, hi), "other": (lo, hi)}, ["preact", "other"], {}, ["preact"])
    assert grids == {"preact": tie_free(pinnable(range_scale(lo, hi))), "other": pinnable(range_scale(lo, hi))}


def test_a_calibrated_cells_tanh_inputs_lie_on_tie_free_grids(small_model):
    from edge.esn import PREACT
    from edge.quant import TANH_TIE_ULPS, tanh_tie_distance
    config = small_model.config
    names = [PREACT] if config.kind == "esn" else [f"n_pre_l{k}" for k in range(config.layers)]
    scales = small_model.cell("int8").scales
    assert all(tanh_tie_distance(scales[n]) >= TANH_TIE_ULPS for n in names)


def test_the_onnx_int8_target_steps_near_its_reference(converted, stream):
    """Pinned on the same grids, the ONNX target rounds where the reference does, but ONNX
    Runtime's int8 ADD (and a GRU's MUL, SUB and sigmoid) has a fixed point of its own, now and then
    a step apart, which the recurrent state carries on: an ESN's forecasts equal on most steps, and
    every forecast within a few steps of the output's grid."""
    art, paths = converted
    z = art.normalizer.normalize(stream)
    y_ref, _ = run(art.cell("int8"), z)
    y, _ = run(open_target(paths["onnx-int8"], "onnx-int8", art.config), z)
    equal = np.all(y == y_ref, axis=1)
    assert equal.mean() >= (0.8 if art.config.kind == "esn" else 0.5), f"{equal.mean():.1%} of forecasts equal"
    assert np.abs(y - y_ref).max() <= 8 * art.cell("int8").scales["output"]


@pytest.mark.parametrize("name", GPU_TARGETS)
def test_the_gpu_path_steps_like_the_interpreter(converted, stream, name):
    """LiteRTGpuCell drives LiteRT's CompiledModel API. On that API's CPU accelerator it steps
    exactly like the interpreter, closed loop, through a batch resize and back."""
    art, paths = converted
    api = LiteRTGpuCell(paths[name], art.config, precision=TARGETS[name].precision, accelerator="cpu")
    cell = open_target(paths[name], name, art.config)
    z = art.normalizer.normalize(stream[:300])
    for batch in (1, 4, 1):
        x = np.repeat(z[:1], batch, axis=0)
        state = np.zeros((batch, art.config.state_size), np.float32)
        for t in range(100):
            y, s = api.step(x, state)
            y_ref, s_ref = cell.step(x, state)
            np.testing.assert_allclose(y, y_ref, atol=1e-6, err_msg=f"B={batch}, step {t}")
            np.testing.assert_allclose(s, s_ref, atol=1e-6, err_msg=f"B={batch}, step {t}")
            x, state = np.repeat(z[t + 1:t + 2], batch, axis=0), s


def test_the_gpu_serves_only_the_float_tflite_targets(converted):
    art, paths = converted
    for name in set(ALL) - set(GPU_TARGETS):
        with pytest.raises(ArtifactError, match=f"target {name!r} has no GPU path"):
            open_target(paths[name], name, art.config, accelerator="gpu")
    with pytest.raises(ArtifactError, match="serves float targets"):
        LiteRTGpuCell(paths["tflite-int8"], art.config, precision="int8", accelerator="cpu")


def test_a_graph_without_the_models_tensors_is_refused_by_name(converted):
    """A file that is not this model's step graph (here: two state tensors expected, one present)."""
    from edge.specs import GRUConfig
    art, paths = converted
    other = GRUConfig(input_size=art.config.input_size, hidden=8, layers=2)
    if art.config == other:
        pytest.skip("the model is that configuration")
    for make in (lambda p: open_target(p, "tflite", other),
                 lambda p: LiteRTGpuCell(p, other, precision="float32", accelerator="cpu")):
        with pytest.raises(ArtifactError, match="not an rnnedge step graph for this model"):
            make(paths["tflite"])


@pytest.mark.skipif(os.environ.get("RNNEDGE_TEST_GPU") != "1",
                    reason="set RNNEDGE_TEST_GPU=1 where LiteRT sees a GPU (Vulkan on Linux)")
@pytest.mark.parametrize("name", GPU_TARGETS)
def test_float_tflite_targets_pass_their_gates_on_the_gpu(converted, stream, name):
    """float32 computes in float32 there and meets its 1e-5; float16 computes in float16 and is
    held to its decisions."""
    art, paths = converted
    p = verify(art, name, open_target(paths[name], name, art.config, accelerator="gpu"), stream)
    assert p.passed, p
    assert p.gate.startswith("forecast max <= 1e-05" if name == "tflite" else "decisions agree")


def test_a_target_computed_in_float16_is_held_to_its_decisions(converted, stream):
    art, paths = converted
    cell = LiteRTGpuCell(paths["tflite-fp16"], art.config, precision="float16", accelerator="cpu")
    assert cell.arithmetic == "float32"  # float16 weights, float32 arithmetic on the CPU
    assert verify(art, "tflite-fp16", cell, stream).gate == "forecast max <= 0.01"
    cell.arithmetic = "float16"  # what the GPU accelerator declares
    p = verify(art, "tflite-fp16", cell, stream)
    assert p.gate == "decisions agree >= 99%" and p.passed, p


@pytest.mark.parametrize("name", ["onnx", "tflite", "tflite-int8"])
def test_batch_axis_is_dynamic(converted, stream, name):
    """B streams stepped together equal each stream stepped alone."""
    art, paths = converted
    cell = open_target(paths[name], name, art.config)
    z = art.normalizer.normalize(stream[:4])
    state = np.zeros((4, art.config.state_size), np.float32)
    y4, s4 = cell.step(z, state)
    for b in range(4):
        y1, s1 = cell.step(z[b:b + 1], state[b:b + 1])
        np.testing.assert_allclose(y4[b:b + 1], y1, atol=1e-6)
        np.testing.assert_allclose(s4[b:b + 1], s1, atol=1e-6)


def test_microcontroller_arena_is_measured_in_tflite_micro(converted):
    pytest.importorskip("tflite_micro")
    art, paths = converted
    arena = check.micro_arena(paths["tflite-int8"])
    assert arena is not None and 1000 < arena < 200_000


@pytest.mark.parametrize("name", ["tflite", "tflite-int8"])
def test_tflite_targets_pass_their_gates_in_tflite_micro(converted, stream, name):
    """A microcontroller's runtime and kernels: float32 to 1e-5; int8 to its decisions (TFLite
    Micro's int8 kernels round in a fixed point of their own, not XNNPACK's)."""
    pytest.importorskip("tflite_micro")
    art, paths = converted
    p = verify(art, name, open_target(paths[name], name, art.config, runtime="tflite-micro"), stream)
    assert p.passed, p
    assert p.runtime == "tflite-micro"
    assert p.gate.startswith("forecast max <= 1e-05" if name == "tflite" else "decisions agree")


@pytest.mark.parametrize("name", ["tflite", "tflite-int8"])
def test_tflite_micro_steps_b_streams_as_each_alone(converted, stream, name):
    pytest.importorskip("tflite_micro")
    art, paths = converted
    cell = open_target(paths[name], name, art.config, runtime="tflite-micro")
    z = art.normalizer.normalize(stream[:3])
    state = np.stack([run(art.cell("int8"), art.normalizer.normalize(stream[k:k + 50]))[1][-1] for k in range(3)])
    y3, s3 = cell.step(z, state)
    for b in range(3):
        y1, s1 = cell.step(z[b:b + 1], state[b:b + 1])
        np.testing.assert_array_equal(y3[b:b + 1], y1)
        np.testing.assert_array_equal(s3[b:b + 1], s1)


def test_tflite_micro_refuses_what_it_cannot_run_with_the_reason(converted, tmp_path):
    pytest.importorskip("tflite_micro")
    art, paths = converted
    with pytest.raises(ArtifactError, match="TFLite Micro refused it"):  # float16 weights: no such DEQUANTIZE
        open_target(paths["tflite-fp16"], "tflite-fp16", art.config, runtime="tflite-micro")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(paths["tflite-int8"].read_bytes()[:2000])
    with pytest.raises(ArtifactError, match="cut.tflite: TFLite Micro refused it"):
        open_target(cut, "tflite-int8", art.config, runtime="tflite-micro")
    with pytest.raises(ArtifactError, match="does not run on 'tflite-micro'"):
        open_target(paths["onnx-int8"], "onnx-int8", art.config, runtime="tflite-micro")


@pytest.mark.parametrize("name", ["tflite-int8", "onnx-int8"])
def test_a_truncated_target_is_refused_with_the_interpreters_reason(converted, tmp_path, name):
    art, paths = converted
    cut = tmp_path / paths[name].name
    cut.write_bytes(paths[name].read_bytes()[:2000])
    runtime = "LiteRT" if name.startswith("tflite") else "ONNX Runtime"
    with pytest.raises(ArtifactError, match=f"{cut.name}: {runtime} refused it: ."):
        open_target(cut, name, art.config)


def test_shipped_profiles_load():
    loaded = {p.name for p in profiles.all_profiles()}
    assert {"raspberry-pi-4", "raspberry-pi-zero-2w", "jetson-orin-nano", "android-gpu", "coral-edgetpu",
            "esp32-s3"} <= loaded


PROFILE = (profiles.firmware_profiles.path("esp32-s3")).read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('arch = "xtensa-lx7"', 'arch = "xtensa-lx7"\nflash_kb = 4'), "unknown key 'flash_kb'"),
    (lambda t: t.replace("ram_kib = 96", 'ram_kib = "96"'), "key 'ram_kib' must be an integer"),
    (lambda t: t.replace("speed_factor = 150.0", ""), "missing key 'speed_factor'"),
    (lambda t: t.replace("qos = 1", 'qos = "one"'), "key 'mqtt.qos' must be an integer"),
    (lambda t: t.replace("keepalive_s = 60", ""), "missing key 'mqtt.keepalive_s'"),
    (lambda t: t.replace('targets = ["tflite-int8"]', 'targets = ["tflite-int4"]'), "key 'targets'"),
    (lambda t: t.replace('precisions = ["int8"]', 'precisions = ["float32"]'), "not in precisions"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_malformed_profile_is_refused_naming_file_and_key(tmp_path, edit, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(PROFILE))
    with pytest.raises(profiles.ProfileError, match="bad.toml") as e:
        profiles.load_profile(bad)
    assert message in str(e.value)


def test_model_too_big_for_profile_is_refused_with_table(small_model, stream, tmp_path):
    tight = tmp_path / "tiny-mcu.toml"
    tight.write_text(PROFILE.replace("flash_kib = 1024", "flash_kib = 1").replace("ram_kib = 96", "ram_kib = 1")
                     .replace("step_budget_us = 50000.0", "step_budget_us = 1.0"))
    prof = profiles.load_profile(tight)
    with pytest.raises(conv.GateError) as e:
        conv.convert(small_model, ["tflite-int8"], stream, "test", profile=prof, out_dir=tmp_path / "m")
    text = str(e.value)
    for row in ("flash", "ram", "step latency", "profile allows"):
        assert row in text
    record = conv.read_record(tmp_path / "m")
    assert record["profile"]["fits"] is False and len(record["profile"]["violations"]) == 3


def test_a_microcontroller_profiles_targets_are_proved_in_its_runtime(small_model, stream, tmp_path):
    """esp32-s3 runs TFLite Micro: its int8 target is verified there, and timed in LiteRT (the
    profile's speed factor scales an XNNPACK step)."""
    pytest.importorskip("tflite_micro")
    prof = profiles.load_profile("esp32-s3")
    done, violations = conv.convert(small_model, ["tflite-int8"], stream, "test", profile=prof, out_dir=tmp_path)
    assert not violations and done[0].parity.passed
    assert conv.read_record(tmp_path)["targets"]["tflite-int8"]["parity"]["runtime"] == "tflite-micro"


def test_convert_records_targets_and_bundle_round_trips(small_model, stream, tmp_path):
    import shutil

    from edge.artifact import load_artifact
    model = tmp_path / "model"
    shutil.copytree(small_model.path, model)
    art = load_artifact(model)
    prof = profiles.load_profile("raspberry-pi-4")
    done, violations = conv.convert(art, list(prof.targets), stream, "test", profile=prof)
    assert not violations and {c.target for c in done} == set(prof.targets)
    record = conv.read_record(model)
    assert record["model_id"] == art.model_id and record["profile"]["fits"]
    assert {t["parity"]["runtime"] for t in record["targets"].values()} <= {"litert", "onnxruntime"}
    tar = make_bundle(model, list(prof.targets), prof.name, {"target": "tflite-int8"}, tmp_path / "b.tar")
    b = open_bundle(tar, tmp_path / "unpacked")
    assert b.artifact.model_id == art.model_id and b.index["profile"] == "raspberry-pi-4"
    cell = open_target(b.target_path("tflite-int8"), "tflite-int8", b.artifact.config)
    assert verify(b.artifact, "tflite-int8", cell, stream).passed

    # Tampering: one byte of a target changed, an extra member, a member missing.
    def rewrite(dst, *, flip=None, drop=None, add=None):
        with tarfile.open(tar) as src, tarfile.open(dst, "w") as out:
            for m in src.getmembers():
                data = src.extractfile(m).read()
                if m.name == drop:
                    continue
                if m.name == flip:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                out.addfile(m, io.BytesIO(data))
            if add:
                info = tarfile.TarInfo(add)
                info.size = 3
                out.addfile(info, io.BytesIO(b"x=1"))
        return dst

    with pytest.raises(DigestMismatchError, match="model/model.int8.tflite"):
        open_bundle(rewrite(tmp_path / "flip.tar", flip="model/model.int8.tflite"), tmp_path / "u1")
    with pytest.raises(BundleError, match="evil.sh"):
        open_bundle(rewrite(tmp_path / "extra.tar", add="model/evil.sh"), tmp_path / "u2")
    with pytest.raises(BundleError, match="weights.npz"):
        open_bundle(rewrite(tmp_path / "drop.tar", drop="model/weights.npz"), tmp_path / "u3")
