"""rnnedge's device side: the model artifact, the numpy reference step, scoring and alerts.

Imports only numpy (and paho-mqtt for the runtime); never torch.
"""

from .alerts import AlertConfig, AlertState, alert_step
from .artifact import Artifact, load_artifact, save_artifact
from .cell import init_state, run
from .detector import Detector, DetectorState
from .errors import RnnEdgeError
from .scoring import Scorer
from .specs import ESNConfig, GRUConfig

__version__ = "0.1.0"
__all__ = ["AlertConfig", "AlertState", "alert_step", "Artifact", "load_artifact", "save_artifact",
           "init_state", "run", "Detector", "DetectorState", "RnnEdgeError", "Scorer", "ESNConfig",
           "GRUConfig", "__version__"]
