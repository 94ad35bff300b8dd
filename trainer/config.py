"""Training configuration: one frozen dataclass per component, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.errors import ConfigError
from edge.quant import HEADROOM
from edge.scoring import NORMS, Adaptive
from edge.specs import ESNConfig, GRUConfig, LSMConfig
from edge.validation import check_choice, check_float, check_int


@dataclass(frozen=True)
class GRUTrainConfig:
    """Truncated BPTT with Adam: `lanes` contiguous slices of the series stepped in parallel, in
    windows of `window` steps with the hidden state carried (detached) from window to window.

    `device` is where torch trains: "auto" (CUDA when torch sees a GPU, else the CPU), "cpu", or
    "cuda" (the current CUDA device, refused where there is none). Either way the model exports the
    same float32 numpy weights and each device is deterministic; only the rounding of the training
    arithmetic differs between devices, so one seed gives close but not identical models."""

    epochs: int = 150
    lr: float = 3e-3
    window: int = 64
    lanes: int = 16
    clip: float = 1.0
    patience: int = 12
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("GRUTrainConfig", "device", self.device, ("cpu", "cuda", "auto"))
        check_int("GRUTrainConfig", "epochs", self.epochs, 1, 100_000)
        check_float("GRUTrainConfig", "lr", self.lr, 0.0, 1.0, lo_open=True)
        check_int("GRUTrainConfig", "window", self.window, 2, 100_000)
        check_int("GRUTrainConfig", "lanes", self.lanes, 1, 4096)
        check_float("GRUTrainConfig", "clip", self.clip, 0.0, 1e6, lo_open=True)
        check_int("GRUTrainConfig", "patience", self.patience, 1, 100_000)


@dataclass(frozen=True)
class PruneConfig:
    """Structured pruning of `units` (a fraction of hidden units, removed), then gradual magnitude
    pruning to `sparsity` per weight matrix in `steps` steps of a cubic schedule, each followed by
    `finetune_epochs` epochs of training with the masks held."""

    sparsity: float = 0.0
    units: float = 0.0
    steps: int = 4
    finetune_epochs: int = 8

    def __post_init__(self) -> None:
        check_float("PruneConfig", "sparsity", self.sparsity, 0.0, 0.99)
        check_float("PruneConfig", "units", self.units, 0.0, 0.9)
        check_int("PruneConfig", "steps", self.steps, 1, 100)
        check_int("PruneConfig", "finetune_epochs", self.finetune_epochs, 1, 10_000)

    @property
    def active(self) -> bool:
        return self.sparsity > 0 or self.units > 0


@dataclass(frozen=True)
class TrainConfig:
    """Everything `rnnedge train` decides. The held-out tail (`val_fraction` of the rows) chooses
    the ESN ridge and stops GRU training early; it is never fitted on. The scorer is calibrated on
    the forecast residuals of `calibrate_on`: "all" training rows after the washout (default), or
    the "heldout" tail only. On short training series (NAB gives a few hundred rows) the tail holds
    too few residuals to place the tail of their distribution: scored against the data that follows
    training, "all" is the better calibrated of the two (see README, NAB evaluation)."""

    model: GRUConfig | ESNConfig | LSMConfig = field(default_factory=ESNConfig)
    gru: GRUTrainConfig = field(default_factory=GRUTrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    int8: bool = False
    int8_headroom: float = HEADROOM  # an ESN's int8 range of the tensors that grow with the input (quantize)
    seed: int = 0
    val_fraction: float = 0.2
    washout: int = 50
    calibrate_on: str = "all"        # or "heldout"
    distance: str = "rms"            # the channels' standardised residuals -> one distance: "rms" or "max"
    false_alarm_rate: float = 1e-3   # alerts on the calibrated score: threshold 1 - rate
    alert_on: str = "adaptive"       # or "calibrated" (threshold 1 - false_alarm_rate)
    adaptive_threshold: float = 0.55
    raise_after: int | None = None   # None: 3 on the calibrated score, 1 on the adaptive one
    clear_after: int = 5
    cooldown: int = 0
    adaptive: Adaptive = field(default_factory=Adaptive)  # the drift-adaptive score's settings
    profile_weight: float = 0.6      # the daily profile's z against the forecaster's (0: no profile)
    context_margin: float = 0.1      # contextual novelty's margin, of the training range (<0: off)

    def __post_init__(self) -> None:
        check_int("TrainConfig", "seed", self.seed, 0, 2**32 - 1)
        check_float("TrainConfig", "val_fraction", self.val_fraction, 0.05, 0.5)
        check_float("TrainConfig", "int8_headroom", self.int8_headroom, 1.0, 64.0)
        check_int("TrainConfig", "washout", self.washout, 0, 100_000)
        check_choice("TrainConfig", "alert_on", self.alert_on, ("calibrated", "adaptive"))
        check_choice("TrainConfig", "calibrate_on", self.calibrate_on, ("all", "heldout"))
        check_choice("TrainConfig", "distance", self.distance, NORMS)
        check_float("TrainConfig", "profile_weight", self.profile_weight, 0.0, 100.0)
        check_float("TrainConfig", "context_margin", self.context_margin, -1.0, 100.0)
        if self.int8_headroom != 1.0 and self.model.kind != "esn":
            raise ConfigError(f"--int8-headroom applies to an ESN's ranges; a {self.model.kind}'s are not widened")
        if self.prune.active and self.model.kind != "gru":
            raise ConfigError("pruning applies to GRU models: a reservoir is sparse by construction (a ring, or "
                              "--density for a random one), and removing its units does no better than drawing "
                              "fewer of them (set --units; see bench/esn_prune.py)")
