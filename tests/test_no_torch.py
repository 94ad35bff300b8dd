"""The device side never needs torch: `edge` imports, loads and steps a model with torch absent."""

import subprocess
import sys
import textwrap

from .conftest import TAXI

# A meta-path finder that makes `import torch` fail, exactly as on a device where it is not installed.
BLOCK = textwrap.dedent("""
    import sys
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoTorch())
""")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_edge_steps_a_model_without_torch(small_model):
    r = _python(f"""
        import numpy as np
        import edge
        from edge import Detector, load_artifact, run
        art = load_artifact({str(small_model.path)!r})
        for precision in ("float32", "int8"):
            y, s = run(art.cell(precision), np.zeros((10, {small_model.config.input_size}), np.float32))
            assert np.isfinite(y).all()
        Detector(art).run(np.ones((20, {small_model.config.input_size}), np.float32), 300.0 * np.arange(20))
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_esn_trains_without_torch_and_gru_says_how_to_install(tmp_path):
    r = _python(f"""
        from edge.cli import main
        assert main(["train", {str(TAXI)!r}, "--rows", "2000", "-o", {str(tmp_path / 'esn')!r}]) == 0
        assert "torch" not in sys.modules
        raise SystemExit(main(["train", {str(TAXI)!r}, "--kind", "gru", "-o", {str(tmp_path / 'gru')!r}]))
    """)
    assert r.returncode == 1
    assert "training a GRU needs torch; install the host extras: pip install torch==2.13.0 'rnnedge[host]'" in r.stderr
