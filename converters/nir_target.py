"""The spiking reservoir as NIR (the Neuromorphic Intermediate Representation neuromorphic toolchains
read), and its proof in an independent simulator.

The graph holds the reservoir: input (the 2D up/down spike channels) -> Linear -> LIF, with a
recurrent Linear from the LIF back to itself, -> output (the N spikes). The convention that makes
Norse's import step exactly like `edge.lsm.LSMCell` (found by trying; recorded in the metadata):
forward Euler at dt = 1 sample in float32; LIF with r = 1, v_leak = 0, v_reset = 0, one threshold;
input and recurrent weights multiplied by tau_mem / dt (NIR's LIF scales its input by dt / tau);
the recurrent edge delayed by one step. The send-on-delta encoder and the readout on the traces
stay outside the graph (neither Norse nor snnTorch imports NIR's LI nodes); their parameters are
in the metadata and in the model artifact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.artifact import Artifact
from edge.errors import MissingDependencyError, RnnEdgeError

FILE = "model.nir"
DT = 1.0


def _nir():
    try:
        import nir
    except ImportError:
        raise MissingDependencyError("NIR export needs nir and h5py: pip install 'rnnedge[nir]'") from None
    return nir


def graph(art: Artifact):
    """The NIRGraph of a spiking reservoir artifact."""
    nir = _nir()
    if art.config.kind != "lsm":
        raise RnnEdgeError(f"{art.path}: NIR export is for spiking reservoirs (--kind lsm), not {art.config.kind}")
    c, w = art.config, art.weights
    n, d = c.units, c.input_size
    gain = np.float32(c.tau_mem / DT)
    w_in = gain * np.float32(w["w_in.scale"][0]) * w["w_in.q"].astype(np.float32)
    w_rec = gain * np.float32(w["w.scale"][0]) * w["w.q"].astype(np.float32)
    meta = {"producer": "rnnedge", "model_id": art.model_id, "dt": DT, "integration": "forward Euler, float32",
            "time_unit": "one sample", "recurrent_delay_steps": 1,
            "weight_convention": "input and recurrent weights = tau_mem / dt * scale * int8 synapse",
            "synapses": c.weights, "w_in_scale": float(w["w_in.scale"][0]), "w_scale": float(w["w.scale"][0]),
            "input_encoding": "send-on-delta on the normalised input: channels [up_0..up_{D-1}, down_0..down_{D-1}]",
            "delta": w["delta"].tolist(), "normalization_mean": art.normalizer.mean.tolist(),
            "normalization_std": art.normalizer.std.tolist(),
            "readout": f"outside the graph: trace = exp(-1/{c.tau_trace}) trace + spikes; "
                       "y = W_out [trace; x] + b_out (in the rnnedge artifact)"}
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2 * d])}),
        "w_in": nir.Linear(weight=w_in),
        "lif": nir.LIF(tau=np.full(n, c.tau_mem, np.float32), r=np.ones(n, np.float32),
                       v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, c.threshold, np.float32),
                       v_reset=np.zeros(n, np.float32)),
        "w_rec": nir.Linear(weight=w_rec),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write(art: Artifact, out_dir: Path | None = None) -> Path:
    """Write model.nir next to the artifact (or into out_dir) and read it back; returns its path."""
    nir = _nir()
    path = Path(out_dir or art.path) / FILE
    nir.write(str(path), graph(art))
    back = nir.read(str(path))
    if set(back.nodes) != {"input", "w_in", "lif", "w_rec", "output"}:
        raise RnnEdgeError(f"{path}: re-read with nodes {sorted(back.nodes)}; the write is broken")
    return path


def reference_spikes(art: Artifact, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step the numpy reference over raw values float[T, D]: the input spikes it encoded
    float32[T, 2D] and the reservoir spikes it fired float32[T, N]."""
    cell = art.cell()
    n = art.config.units
    z = art.normalizer.normalize(values)
    s = np.zeros((1, cell.state_size), np.float32)
    inputs, spikes = np.empty((len(z), 2 * art.config.input_size), np.float32), np.empty((len(z), n), np.float32)
    for t in range(len(z)):
        inputs[t] = cell._encode(z[t:t + 1], cell.split(s)[3])[0][0]
        _, s = cell.step(z[t:t + 1], s)
        spikes[t] = s[0, 2 * n:3 * n]
    return inputs, spikes


def _run(module, inputs: np.ndarray, width: int) -> np.ndarray:
    """Step a NIR-imported torch module (module(x, state) -> (spikes, state)) over inputs float32[T, 2D]."""
    import torch
    spikes, state = np.empty((len(inputs), width), np.float32), None
    with torch.no_grad():
        for t in range(len(inputs)):
            y, state = module(torch.from_numpy(inputs[t:t + 1]), state)
            spikes[t] = y.numpy()[0]
    return spikes


def norse_spikes(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Import the .nir file into Norse (norse.torch.from_nir) and run it on input spikes float32[T, 2D]."""
    try:
        from norse.torch import from_nir
    except ImportError:
        raise MissingDependencyError("the Norse check needs torch and norse: pip install --no-deps norse nirtorch") from None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = from_nir(_nir().read(str(path)), dt=DT)
    return _run(module, inputs, module_width(path))


SNNTORCH_DT = 1e-4  # the step snnTorch's NIR importer assumes for every LIF node


def snntorch_spikes(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Import the .nir file into snnTorch and run it on input spikes float32[T, 2D].

    snnTorch's `import_from_nir` cannot take a recurrent graph, so this builds the module the way
    it does inside, node by node (snntorch.import_nir._nir_to_snntorch_module) through
    `nirtorch.nir_to_torch`, which delays the recurrent edge by one step as Norse does. That
    converter assumes dt = 1e-4 s, so the graph's time unit (one sample) is restated as 1e-4 s: every
    tau times 1e-4, the same dynamics. snnTorch then leaves the input unscaled and raises the
    threshold by tau/dt instead (its membrane is tau/dt times ours, exactly: a power of two), and
    keeps beta in float64 unless the module is cast, hence .float(). The imported beta and threshold
    are checked before the run."""
    try:
        import nirtorch
        from snntorch.import_nir import _nir_to_snntorch_module
    except ImportError:
        raise MissingDependencyError("the snnTorch check needs torch and snntorch: pip install --no-deps snntorch "
                                     "nirtorch") from None
    import contextlib
    import io
    nir = _nir()
    g = nir.read(str(path))
    lif = g.nodes["lif"]
    tau, v_thr = float(lif.tau[0]), float(lif.v_threshold[0])  # in samples, as written
    lif.tau = (lif.tau * np.float32(SNNTORCH_DT)).astype(np.float32)
    convert = lambda node: _nir_to_snntorch_module(node, init_hidden=True)  # noqa: E731
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a warning about the threshold rescaling
        module = nirtorch.nir_to_torch(g, {nir.Linear: convert, nir.LIF: convert}).float()
    want_beta, want_thr = np.float32(1.0 - DT / tau), np.float32(tau / DT * v_thr)
    beta, thr = module.lif.beta.numpy(), module.lif.threshold.numpy()
    if not ((beta == want_beta).all() and (thr == want_thr).all()):
        raise RnnEdgeError(f"snnTorch imported beta {beta.flat[0]!r} and threshold {thr.flat[0]!r}; expected "
                           f"{want_beta!r} and {want_thr!r}: its NIR converter has changed")
    return _run(module, inputs, module_width(path))


def module_width(path: Path) -> int:
    """The number of output spikes (neurons) the graph in `path` declares."""
    return int(_nir().read(str(path)).nodes["output"].output_type["output"][0])
