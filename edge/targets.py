"""Emitted targets and the interpreters that serve them, under the one step contract.

A target is a file next to the artifact (model.onnx, model.int8.tflite, ...) holding the step
graph with explicit state: inputs `x` and one state tensor per GRU layer (or the reservoir),
outputs `y_hat` and `<state>_out`. `OnnxCell` and `LiteRTCell` wrap onnxruntime and ai-edge-litert
(tflite-runtime as a fallback), `LiteRTGpuCell` LiteRT's GPU accelerator for the float TFLite
targets and `MicroCell` TFLite Micro's interpreter (a microcontroller's runtime, run on the host),
so that they step exactly like the numpy reference cells:
`step(x float32[B, D], state float32[B, S]) -> (y_hat, state')`. They hold no per-stream state;
int8 inputs and outputs are (de)quantized at the boundary with the scales the file declares.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .artifact import sha256_file
from .errors import ArtifactError, MissingDependencyError
from .specs import GRUConfig, ModelConfig

INPUT = "x"
OUTPUT = "y_hat"


@dataclass(frozen=True)
class Target:
    name: str
    file: str
    format: str     # "onnx" | "tflite"
    precision: str  # "float32" | "float16" | "int8"

    @property
    def reference_precision(self) -> str:
        """The numpy reference it must match: int8 targets the int8 cell, the rest the float one."""
        return "int8" if self.precision == "int8" else "float32"


TARGETS = {t.name: t for t in (
    Target("onnx", "model.onnx", "onnx", "float32"),
    Target("onnx-int8", "model.int8.onnx", "onnx", "int8"),
    Target("tflite", "model.tflite", "tflite", "float32"),
    Target("tflite-fp16", "model.fp16.tflite", "tflite", "float16"),
    Target("tflite-int8", "model.int8.tflite", "tflite", "int8"),
)}
TARGETS_FILE = "targets.json"  # in a model directory: each converted target's record (converters.convert)


def target(name: str) -> Target:
    if name not in TARGETS:
        raise ArtifactError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[name]


def state_names(config: ModelConfig) -> list[str]:
    """The graph's state inputs; each has an output named `<name>_out`."""
    if isinstance(config, GRUConfig) and config.layers > 1:
        return [f"state_l{k}" for k in range(config.layers)]
    return ["state"]


def state_widths(config: ModelConfig) -> list[int]:
    return [config.hidden] * config.layers if isinstance(config, GRUConfig) else [config.units]


def split_state(config: ModelConfig, state: np.ndarray) -> dict[str, np.ndarray]:
    """The runtime's state float32[B, S] as the graph's state inputs (column views, no copies)."""
    names = state_names(config)
    if len(names) == 1:
        return {names[0]: state}
    edges = np.cumsum([0, *state_widths(config)]).tolist()
    return {n: state[:, a:b] for n, a, b in zip(names, edges, edges[1:])}


def join_state(config: ModelConfig, parts: Mapping[str, np.ndarray]) -> np.ndarray:
    """The graph's state outputs (keyed by input name) as one float32[B, S]."""
    names = state_names(config)
    return parts[names[0]] if len(names) == 1 else np.concatenate([parts[n] for n in names], axis=1)


def step_tensors(path: str | Path, config: ModelConfig, inputs, outputs) -> tuple[list[str], list[str]]:
    """The graph's input and output tensor names in step order, (x, states...) and (y_hat,
    states_out...); refuses a file that lacks one of them."""
    names = state_names(config)
    ins, outs = [INPUT, *names], [OUTPUT, *(f"{s}_out" for s in names)]
    missing = [n for n in ins if n not in inputs] + [n for n in outs if n not in outputs]
    if missing:
        raise ArtifactError(f"{path}: not an rnnedge step graph for this model (no tensor {missing[0]!r})")
    return ins, outs


class OnnxCell:
    """A target served by onnxruntime (CPU unless `providers` says otherwise)."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, config: ModelConfig, *, threads: int = 1,
                 providers: list | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("serving an ONNX target needs onnxruntime: "
                                         "pip install 'rnnedge[onnx]'") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = threads
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types (a malformed file, an op it lacks)
            raise ArtifactError(f"{path}: ONNX Runtime refused it: {' '.join(str(e).split())}") from None
        self.config, self.input_size, self.state_size = config, config.input_size, config.state_size
        self._names = state_names(config)
        self._outputs = [OUTPUT, *(f"{n}_out" for n in self._names)]

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {INPUT: np.ascontiguousarray(x, np.float32), **split_state(self.config, state)}
        y, *states = self.session.run(self._outputs, feeds)
        return y, join_state(self.config, dict(zip(self._names, states)))


def _litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise MissingDependencyError("serving a TFLite target needs ai-edge-litert (or tflite-runtime): "
                                         "pip install 'rnnedge[tflite]'") from None
    return Interpreter


# XNNPACK creates an int8 FULLY_CONNECTED only where input scale x weight scale / output scale is under
# 256 for every output channel. LiteRT's delegate (ai-edge-litert 2.3.0) does not check this before it
# creates the operator, and on the failure frees memory twice: the process aborts (measured; the check
# was proposed upstream in tensorflow/tensorflow#75702). Found from the file's scales first, it is an error.
_XNNPACK_MAX_REQUANTIZATION = 256.0


def _xnnpack_unfit(interpreter) -> str | None:
    """The first int8 FULLY_CONNECTED of a LiteRT interpreter's graph that XNNPACK cannot create, named
    with its scales, or None (also where the interpreter does not list its ops)."""
    ops = getattr(interpreter, "_get_ops_details", None)
    if ops is None:
        return None
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    for op in ops():
        if op["op_name"] != "FULLY_CONNECTED" or len(op["inputs"]) < 2 or not len(op["outputs"]):
            continue
        x, w, y = (tensors.get(int(i)) for i in (op["inputs"][0], op["inputs"][1], op["outputs"][0]))
        if any(t is None or t["dtype"] != np.int8 or not len(t["quantization_parameters"]["scales"])
               for t in (x, w, y)):
            continue
        s_x, s_w, s_y = (np.float32(t["quantization_parameters"]["scales"]) for t in (x, w, y))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = s_x[0] * s_w / s_y[0]  # in float32, as XNNPACK computes it
        if not (ratio < _XNNPACK_MAX_REQUANTIZATION).all():
            worst = float(np.nan_to_num(ratio, nan=np.inf).max())
            return (f"its int8 FULLY_CONNECTED {y['name']!r} has input scale {float(s_x[0]):.4g} x weight scale "
                    f"{float(s_w.max()):.4g} / output scale {float(s_y[0]):.4g} = {worst:.4g}, where XNNPACK needs "
                    f"under {_XNNPACK_MAX_REQUANTIZATION:g}")
    return None


class LiteRTCell:
    """A target served by the LiteRT interpreter (XNNPACK on CPU), resized when B changes."""

    runtime = "litert"

    def __init__(self, path: str | Path, config: ModelConfig, *, threads: int = 1) -> None:
        interpreter = _litert_interpreter()
        try:
            self.interpreter = interpreter(model_path=str(path), num_threads=threads)
        except ValueError as e:  # not a flatbuffer, or not a TFLite one
            raise ArtifactError(f"{path}: LiteRT refused it: {e}") from None
        self.config, self.input_size, self.state_size = config, config.input_size, config.state_size
        self._batch = None
        it = self.interpreter
        inputs = {d["name"]: d for d in it.get_input_details()}
        outputs = {d["name"]: d for d in it.get_output_details()}
        ins, outs = step_tensors(path, config, inputs, outputs)
        self._in = [inputs[n] for n in ins]
        self._out = [outputs[n] for n in outs]
        # float32 tensors and one state tensor: step sets and reads the tensors directly
        self._plain = len(self._in) == 2 and all(d["dtype"] == np.float32 for d in (*self._in, *self._out))
        unfit = _xnnpack_unfit(it)
        if unfit:
            raise ArtifactError(f"{path}: LiteRT cannot run it, and would abort the process preparing it: {unfit}. "
                                "Run `rnnedge convert` again to make it from the model")
        try:
            self._resize(1)
        except RuntimeError as e:  # a kernel refused the graph (a zero scale, an op it lacks)
            raise ArtifactError(f"{path}: LiteRT cannot prepare it: {e}") from None

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            for d in self._in:
                self.interpreter.resize_tensor_input(d["index"], [batch, d["shape"][1]], strict=False)
            self.interpreter.allocate_tensors()
            self._batch = batch

    @staticmethod
    def _to(d: dict, a: np.ndarray) -> np.ndarray:
        if d["dtype"] == np.float32:
            return a if a.dtype == np.float32 and a.flags.c_contiguous else np.ascontiguousarray(a, np.float32)
        scale, zero = d["quantization"]
        return np.clip(np.rint(a / np.float32(scale)) + zero, -128, 127).astype(d["dtype"])

    @staticmethod
    def _from(d: dict, a: np.ndarray) -> np.ndarray:
        if d["dtype"] == np.float32:
            return a
        scale, zero = d["quantization"]
        return (a.astype(np.float32) - np.float32(zero)) * np.float32(scale)

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[0] != self._batch:
            self._resize(x.shape[0])
        it = self.interpreter
        if self._plain:  # the common case in the fewest calls: 4.1 us instead of 5.7 at B=1 here
            (dx, ds), (dy, dso) = self._in, self._out
            it.set_tensor(dx["index"], self._to(dx, x))
            it.set_tensor(ds["index"], self._to(ds, state))
            it.invoke()
            return it.get_tensor(dy["index"]), it.get_tensor(dso["index"])
        parts = split_state(self.config, state)
        for d, a in zip(self._in, (x, *parts.values())):
            it.set_tensor(d["index"], self._to(d, a))
        it.invoke()
        y, *states = (self._from(d, it.get_tensor(d["index"])) for d in self._out)  # get_tensor copies
        return y, states[0] if len(states) == 1 else join_state(self.config, dict(zip(parts, states)))


class LiteRTGpuCell:
    """A float TFLite target on LiteRT's GPU accelerator (its CompiledModel API: WebGPU over Vulkan
    on Linux, Metal on macOS, OpenCL on Android), the whole graph on the GPU or refused.

    The GPU computes in float16 (`arithmetic`) unless `precision="float32"` (the float32 target)
    makes it compute in float32. `accelerator="cpu"` runs the same API on the CPU, which the tests
    use where there is no GPU.
    """

    runtime = "litert"

    def __init__(self, path: str | Path, config: ModelConfig, *, precision: str, accelerator: str = "gpu") -> None:
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.options import CpuOptions, GpuOptions, HardwareAccelerator, Options
        except ImportError:
            raise MissingDependencyError("serving a TFLite target on the GPU needs ai-edge-litert 2 or "
                                         "later (its CompiledModel API): pip install 'ai-edge-litert>=2'") from None
        accel = {"gpu": HardwareAccelerator.GPU, "cpu": HardwareAccelerator.CPU}[accelerator]
        options = Options(accel, cpu_options=CpuOptions(num_threads=1),
                          gpu_options=GpuOptions(enforce_f32=precision == "float32"))
        try:
            self.model = CompiledModel.from_file(str(path), options=options)
        except Exception as e:  # the bindings raise RuntimeError or ValueError with LiteRT's status trace
            why = " ".join(str(e).split())
            raise ArtifactError(f"{path}: LiteRT's {accelerator.upper()} accelerator refused it (no GPU or "
                                f"no Vulkan/OpenCL driver?): {why}") from None
        if not self.model.is_fully_accelerated():
            raise ArtifactError(f"{path}: not every op of it runs on LiteRT's {accelerator.upper()} accelerator")
        self.config, self.input_size, self.state_size = config, config.input_size, config.state_size
        self.arithmetic = "float32" if precision == "float32" or accelerator == "cpu" else "float16"
        key = next(iter(self.model.get_signature_list()))
        inputs = self.model.get_input_tensor_details(key)
        outputs = self.model.get_output_tensor_details(key)
        ins, _ = step_tensors(path, config, inputs, outputs)
        if any(d["dtype"] != "float32" for d in (*inputs.values(), *outputs.values())):
            raise ArtifactError(f"{path}: the GPU serves float targets (tflite, tflite-fp16), not int8 ones")
        self._key, self._names = key, state_names(config)
        self._in_order = [inputs[n]["index"] for n in ins]
        self._out_names = list(self.model.get_signature_list()[key]["outputs"])
        self._batch = None
        self._resize(1)

    def _resize(self, batch: int) -> None:
        m = self.model
        if self._batch is not None:
            for name, d in m.get_input_tensor_details(self._key).items():
                m.resize_input_tensor_by_name(self._key, name, [batch, d["shape"][1]])
        index = m.get_signature_index(self._key)
        self._ins = m.create_input_buffers(index)
        self._outs = m.create_output_buffers(index)
        details = m.get_output_tensor_details(self._key)
        self._out_shapes = [[batch, details[n]["shape"][1]] for n in self._out_names]
        self._index, self._batch = index, batch

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[0] != self._batch:
            self._resize(x.shape[0])
        arrays = [x, *split_state(self.config, state).values()]
        for i, a in zip(self._in_order, arrays):
            self._ins[i].write(np.ascontiguousarray(a, np.float32))
        self.model.run_by_index(self._index, self._ins, self._outs)
        got = {n: buf.read(shape[0] * shape[1], np.float32).reshape(shape)
               for n, buf, shape in zip(self._out_names, self._outs, self._out_shapes)}
        return got[OUTPUT], join_state(self.config, {s: got[f"{s}_out"] for s in self._names})


class MicroCell:
    """A TFLite target on TFLite Micro's interpreter (PyPI `tflite-micro`): the runtime of a
    microcontroller profile and its reference kernels, run on the host, so that a target is proved
    on the arithmetic such a device runs (its int8 kernels round apart from LiteRT's XNNPACK ones).
    Its tensors have fixed shapes (B = 1), so B streams step one after another."""

    runtime = "tflite-micro"
    ARENA = 4 << 20  # bytes; these models need tens of KiB (`rnnedge convert` reports the arena)

    def __init__(self, path: str | Path, config: ModelConfig) -> None:
        try:
            from tflite_micro.python.tflite_micro import runtime
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
        except ImportError:
            raise MissingDependencyError("serving a target on TFLite Micro needs tflite-micro (in the host "
                                         "extras): pip install tflite-micro") from None
        data = Path(path).read_bytes()
        try:
            graph = schema.ModelT.InitFromPackedBuf(data, 0).subgraphs[0]
            self.interpreter = runtime.Interpreter.from_bytes(data, arena_size=self.ARENA)
        except Exception as e:  # a malformed file raises struct.error, a failed allocation RuntimeError
            raise ArtifactError(f"{path}: TFLite Micro refused it: {' '.join(str(e).split())}") from None
        self.config, self.input_size, self.state_size = config, config.input_size, config.state_size
        index = lambda tensors: {graph.tensors[t].name.decode(): k for k, t in enumerate(tensors)}  # noqa: E731
        inputs, outputs = index(graph.inputs), index(graph.outputs)
        ins, outs = step_tensors(path, config, inputs, outputs)
        it = self.interpreter
        self._in = [(inputs[n], self._details(it.get_input_details(inputs[n]))) for n in ins]
        self._out = [(outputs[n], self._details(it.get_output_details(outputs[n]))) for n in outs]

    @staticmethod
    def _details(d: dict) -> dict:
        """A tensor's dtype and (scale, zero point) as LiteRT's details give them, for LiteRTCell's
        (de)quantization at the boundary."""
        q = d["quantization_parameters"]
        grid = (float(q["scales"][0]), int(q["zero_points"][0])) if len(q["scales"]) else (0.0, 0)
        return {"dtype": d["dtype"], "quantization": grid}

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it = self.interpreter
        arrays = [x, *split_state(self.config, state).values()]
        got: list[list[np.ndarray]] = [[] for _ in self._out]
        for b in range(x.shape[0]):
            for (i, d), a in zip(self._in, arrays):
                it.set_input(LiteRTCell._to(d, np.ascontiguousarray(a[b:b + 1], np.float32)), i)
            try:
                it.invoke()
            except RuntimeError as e:
                raise ArtifactError(f"TFLite Micro failed to step the model: {e}") from None
            for out, (i, d) in zip(got, self._out):
                out.append(LiteRTCell._from(d, np.array(it.get_output(i))))  # a copy: the next invoke reuses it
        y, *states = (np.concatenate(o) for o in got)
        names = state_names(self.config)
        return y, states[0] if len(names) == 1 else join_state(self.config, dict(zip(names, states)))


ACCELERATORS = ("cpu", "gpu")
# the interpreters that run a target's format on the CPU, the default first
RUNTIMES = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-micro")}
GPU_TARGETS = ("tflite", "tflite-fp16")  # what LiteRTGpuCell serves


def open_target(path: str | Path, name: str, config: ModelConfig, *, accelerator: str = "cpu",
                runtime: str | None = None, **kw):
    """The cell serving target `name` from its file `path`: on the CPU (onnxruntime, LiteRT's
    interpreter with XNNPACK, or with `runtime="tflite-micro"` TFLite Micro's), or a float TFLite
    target on LiteRT's GPU accelerator."""
    t = target(name)
    if runtime is not None and runtime not in RUNTIMES[t.format]:
        raise ArtifactError(f"target {name!r} ({t.format}) does not run on {runtime!r}; its runtimes: "
                            f"{', '.join(RUNTIMES[t.format])}")
    if runtime == "tflite-micro" and accelerator != "cpu":
        raise ArtifactError("TFLite Micro runs on the CPU only; drop --accelerator or the runtime")
    if accelerator not in ACCELERATORS:
        raise ArtifactError(f"unknown accelerator {accelerator!r}; known: {', '.join(ACCELERATORS)}")
    if accelerator == "gpu" and name not in GPU_TARGETS:
        raise ArtifactError(f"target {name!r} has no GPU path here: the GPU serves tflite and tflite-fp16 "
                            "(LiteRT's GPU accelerator); ONNX on a GPU needs onnxruntime-gpu, not a dependency")
    if not Path(path).is_file():
        raise ArtifactError(f"{path}: missing; run `rnnedge convert` for target {name!r}")
    if accelerator == "gpu":
        kw.pop("threads", None)  # the GPU runs the graph; no CPU threads to set
        return LiteRTGpuCell(path, config, precision=t.precision, **kw)
    if runtime == "tflite-micro":
        return MicroCell(path, config)  # one thread; `threads` does not apply
    return (OnnxCell if t.format == "onnx" else LiteRTCell)(path, config, **kw)


def open_in_runtime(path: str | Path, name: str, config: ModelConfig, runtime: str, **kw):
    """`open_target` in `runtime` (a device's interpreter) where its package is installed, else in
    the format's default runtime, with a warning naming what is missing (the cell's `runtime` says
    which one it got)."""
    try:
        return open_target(path, name, config, runtime=runtime, **kw)
    except MissingDependencyError as e:
        default = RUNTIMES[target(name).format][0]
        warnings.warn(f"{path}: {name} runs on {default} here, not on {runtime}, whose int8 kernels round "
                      f"differently: {e}", stacklevel=2)
        return open_target(path, name, config, **kw)


def read_record(model_dir: str | Path) -> dict | None:
    """A model directory's TARGETS_FILE, as `rnnedge convert` wrote it, or None where there is none."""
    record = Path(model_dir) / TARGETS_FILE
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text())
    except ValueError as e:
        raise ArtifactError(f"{record}: not a targets record rnnedge can read ({e}); run `rnnedge convert` again") \
            from None


def recorded(model_dir: str | Path, name: str) -> bool | None:
    """Whether target `name`'s file in a model directory still matches the sha256 `rnnedge convert`
    recorded for it in TARGETS_FILE: True, False (changed since), or None (no record of it)."""
    file = target(name).file
    try:
        digest = next((t["sha256"] for t in (read_record(model_dir) or {"targets": {}})["targets"].values()
                       if t["file"] == file), None)
    except (KeyError, TypeError, AttributeError) as e:
        raise ArtifactError(f"{Path(model_dir) / TARGETS_FILE}: not a targets record rnnedge can read ({e!r}); "
                            "run `rnnedge convert` again") from None
    return None if digest is None else sha256_file(Path(model_dir) / file) == digest


PREFLIGHT_TIMEOUT_S = 120


def preflight(model_dir: str | Path, name: str, runtime: str | None = None) -> None:
    """Open target `name` of a model directory in a child process first, and refuse it if its
    interpreter kills the process preparing it (LiteRT aborts on some malformed models past any
    Python exception handler; the one known here, `_xnnpack_unfit`'s, is refused before preparing
    in any process). For a file no record vouches for (`recorded`); about a second. An error the
    interpreter reports as one is left to the caller's own open, which raises it."""
    import signal
    import subprocess
    import sys
    code = ("import sys\nfrom edge.artifact import load_artifact\nfrom edge.targets import TARGETS, open_target\n"
            "art, name = load_artifact(sys.argv[1]), sys.argv[2]\n"
            "open_target(art.path / TARGETS[name].file, name, art.config, runtime=sys.argv[3] or None)\n")
    path = Path(model_dir).resolve() / target(name).file
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path.parent), name, runtime or ""],
                              capture_output=True, timeout=PREFLIGHT_TIMEOUT_S,
                              cwd=str(Path(__file__).resolve().parent.parent))
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{path}: preparing it took over {PREFLIGHT_TIMEOUT_S} s in a child process; "
                            "refused") from None
    if done.returncode < 0:
        how = signal.Signals(-done.returncode).name
        raise ArtifactError(f"{path}: its interpreter killed the process preparing it ({how}); refused. "
                            "Run `rnnedge convert` again to make it from the model")
