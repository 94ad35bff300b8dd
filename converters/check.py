"""What a target needs (ops, bytes, memory, step time) and whether a firmware profile allows it.

Memory is estimated from the graph: weights are the constant tensors, activations the sum of every
non-constant tensor at B = 1 (no buffer reuse, so an upper bound on the arena). For int8 TFLite
targets the TFLite Micro interpreter (PyPI `tflite-micro`), when installed, runs the graph and
reports the arena it really allocates; that figure replaces the estimate. Step time is measured
here at B = 1 through the same wrapper the runtime uses and scaled by the profile's speed factor.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.cell import init_state
from edge.report import text_table
from edge.targets import target

from .profiles import Profile


@dataclass(frozen=True)
class Facts:
    target: str
    bytes: int                  # file size
    ops: list[str]
    weight_bytes: int
    activation_bytes: int       # estimate, or the TFLite Micro arena when measured
    arena_measured: bool
    step_us: float              # median per step at B = 1, on this host

    def to_dict(self) -> dict:
        return asdict(self)


def _tflite_graph(path: Path) -> tuple[list[str], int, int]:
    from ai_edge_litert import schema_py_generated as s
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    sizes = {s.TensorType.FLOAT32: 4, s.TensorType.FLOAT16: 2, s.TensorType.INT32: 4, s.TensorType.INT8: 1,
             s.TensorType.INT64: 8, s.TensorType.UINT8: 1, s.TensorType.INT16: 2}
    m = s.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    ops = sorted({names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in m.operatorCodes})
    weights = acts = 0
    for t in m.subgraphs[0].tensors:
        n = int(np.prod(t.shape)) * sizes.get(t.type, 4)
        data = m.buffers[t.buffer].data
        if data is not None and len(data):
            weights += n
        else:
            acts += n
    return ops, weights, acts


def _onnx_graph(path: Path) -> tuple[list[str], int, int]:
    import onnx
    from onnx import numpy_helper
    m = onnx.shape_inference.infer_shapes(onnx.load(path))
    ops = sorted({n.op_type for n in m.graph.node})
    weights = sum(numpy_helper.to_array(i).nbytes for i in m.graph.initializer)
    acts = 0
    for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        acts += int(np.prod(dims)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
    return ops, weights, acts


_MICRO = """
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
it = runtime.Interpreter.from_file(sys.argv[1], arena_size=4 << 20)
for i in range(int(sys.argv[2])):
    d = it.get_input_details(i)
    it.set_input(np.zeros(d["shape"], d["dtype"]), i)
it.invoke()
it.print_allocations()
"""


def micro_arena(path: Path) -> int | None:
    """The arena TFLite Micro allocates for this int8 model, or None when tflite-micro is not installed.

    Run in a child process: the interpreter prints its allocations on the C stdout, and aborts the
    process rather than raising when a model does not fit.
    """
    if importlib.util.find_spec("tflite_micro") is None:
        return None
    from ai_edge_litert import schema_py_generated as s
    n_inputs = len(s.ModelT.InitFromPackedBuf(path.read_bytes(), 0).subgraphs[0].inputs)
    try:
        done = subprocess.run([sys.executable, "-c", _MICRO, str(path), str(n_inputs)],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    found = re.search(r"Arena allocation total (\d+) bytes", done.stdout + done.stderr)
    return int(found.group(1)) if found else None


def step_time_us(cell, *, batch: int = 1, steps: int = 300, repeats: int = 5) -> float:
    """Median over `repeats` runs of the mean time of one step of `batch` streams, in microseconds."""
    x = np.random.default_rng(0).standard_normal((batch, cell.input_size)).astype(np.float32)
    state = init_state(cell, batch)
    for _ in range(20):
        _, state = cell.step(x, state)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            _, state = cell.step(x, state)
        runs.append((time.perf_counter() - t0) / steps * 1e6)
    return float(np.median(runs))


def facts(name: str, path: Path, cell) -> Facts:
    t = target(name)
    ops, weights, acts = (_onnx_graph if t.format == "onnx" else _tflite_graph)(path)
    arena = micro_arena(path) if t.format == "tflite" and t.precision == "int8" else None
    return Facts(name, path.stat().st_size, ops, weights, arena if arena is not None else acts,
                 arena is not None, step_time_us(cell))


@dataclass(frozen=True)
class Violation:
    target: str
    check: str
    needs: str
    allows: str


def check(profile: Profile, found: list[Facts]) -> list[Violation]:
    """Every way the targets exceed the profile; empty when they fit."""
    out = []
    for f in found:
        if f.target not in profile.targets:
            out.append(Violation(f.target, "target", f.target, ", ".join(profile.targets)))
            continue
        bad_ops = [op for op in f.ops if op not in profile.ops]
        if bad_ops:
            out.append(Violation(f.target, "ops", ", ".join(bad_ops), "not in the profile's ops"))
        kib = lambda n: f"{n / 1024:.1f} KiB"  # noqa: E731
        if f.bytes > profile.flash_kib * 1024:
            out.append(Violation(f.target, "flash", kib(f.bytes), kib(profile.flash_kib * 1024)))
        ram = f.activation_bytes + (f.weight_bytes if profile.weights_in == "ram" else 0)
        what = "ram (arena)" if f.arena_measured else "ram (estimate)"
        if ram > profile.ram_kib * 1024:
            out.append(Violation(f.target, what, kib(ram), kib(profile.ram_kib * 1024)))
        step = f.step_us * profile.speed_factor
        if step > profile.step_budget_us:
            out.append(Violation(f.target, "step latency",
                                 f"{step:.0f} us ({f.step_us:.1f} us here x {profile.speed_factor:g})",
                                 f"{profile.step_budget_us:.0f} us"))
    return out


def violations_table(rows: list[Violation]) -> str:
    table = [("target", "check", "needs", "profile allows"), *((v.target, v.check, v.needs, v.allows) for v in rows)]
    return text_table(table)
