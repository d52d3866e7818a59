"""Training BIDS-Net (taught in ``notebooks/06_training.ipynb``): a run's config and presets
(:mod:`.config`), EMA, RNG states, sample grids and the metrics log (:mod:`.utils`), the rules of a
run's folder and stopping on a signal (:mod:`.runs`), the checks before a run and its processes
(:mod:`.launch`), and the loop itself, `Trainer` (:mod:`.loop`).

Import from here, not from the inner modules.
"""


from bidsnet_lib.train.config import (
    PRESETS,
    RESUME_OVERRIDABLE,
    TrainConfig,
    checkpoint_model_config,
    model_config_differences,
    newest_checkpoint,
    read_run_config,
)
from bidsnet_lib.train.launch import (
    LocalRanks,
    Preflight,
    RankFailed,
    auto_processes,
    check_init,
    init_distributed,
    preflight,
    settle_processes,
    usable_cores,
)
from bidsnet_lib.train.loop import (
    EpochItems,
    EpochSampler,
    Trainer,
)
from bidsnet_lib.train.runs import (
    LOCK_FILE,
    PATH_FIELDS,
    RUN_FILES,
    STOP_SIGNALS,
    RunLock,
    RunLocked,
    StopRequest,
    check_fresh_dir,
    check_resumable,
    config_differences,
    ignore_stop_signals,
    photo_identity,
    require_checkpoint,
    resolve_paths,
)
from bidsnet_lib.train.utils import (
    ema_decay,
    read_metrics,
    redraw_counters,
    rng_state,
    sample_grid,
    set_rng_state,
    spread_items,
    update_ema,
    weights_digest,
)

__all__ = [
    "RESUME_OVERRIDABLE",
    "TrainConfig",
    "PRESETS",
    "model_config_differences",
    "checkpoint_model_config",
    "read_run_config",
    "ema_decay",
    "update_ema",
    "rng_state",
    "set_rng_state",
    "weights_digest",
    "sample_grid",
    "spread_items",
    "read_metrics",
    "redraw_counters",
    "PATH_FIELDS",
    "RUN_FILES",
    "LOCK_FILE",
    "RunLock",
    "RunLocked",
    "STOP_SIGNALS",
    "resolve_paths",
    "photo_identity",
    "config_differences",
    "StopRequest",
    "ignore_stop_signals",
    "check_fresh_dir",
    "require_checkpoint",
    "newest_checkpoint",
    "check_resumable",
    "EpochSampler",
    "EpochItems",
    "Preflight",
    "preflight",
    "check_init",
    "usable_cores",
    "auto_processes",
    "settle_processes",
    "init_distributed",
    "LocalRanks",
    "RankFailed",
    "Trainer",
]
