"""Make every RL pass the same function of the weights: no batch statistics, no dropout.

GRPO/RLOO/PPO compare log-probs of one model taken in different passes (sampling, old policy, reference, loss)
and on different batches. Two kinds of layer break that even when the weights do not move:

* batch-statistics layers (``BatchNorm``: FastConformer / Parakeet conv modules, the reward model's audio
  encoder) normalise a row with the statistics of the other rows in training mode, and every forward moves
  their running statistics, while TRL's reference runs in eval mode;
* dropout (``nn.Dropout`` modules and the float ``*dropout`` rates transformers' attention and layers apply
  functionally while ``self.training``).

`use_fixed_statistics_and_no_dropout` fixes both on the module tree once, whatever mode a trainer later puts
the model in: each BatchNorm gets a forward pre-hook that switches it to its running statistics (so
``model.train()``, which the Trainer calls every step, cannot undo it, and copies of the model keep it), and
every dropout rate is set to 0. The rest of the model stays in training mode, so gradient checkpointing (which
transformers applies only while ``training``) keeps working. SpecAugment and LayerDrop are refused by the
policy families instead (they are configuration, not layers).
"""

from __future__ import annotations

from torch import nn

BATCH_STATISTICS_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_MARK = "rlnf_uses_running_statistics"
DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _running_statistics(module: nn.Module, _args: tuple) -> None:
    """Forward pre-hook: normalise with the running statistics and leave them alone, in any mode."""
    module.training = False


def use_fixed_statistics_and_no_dropout(model: nn.Module) -> int:
    """Fix ``model`` in place (see the module docstring); returns how many layers were changed. Idempotent."""
    changed = 0
    for module in model.modules():
        if isinstance(module, BATCH_STATISTICS_LAYERS):
            if not getattr(module, _MARK, False):
                module.register_forward_pre_hook(_running_statistics)
                setattr(module, _MARK, True)
                module.training = False
                changed += 1
        elif isinstance(module, DROPOUT_LAYERS):
            if module.p != 0.0:
                module.p = 0.0
                changed += 1
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float) and value != 0.0:
                setattr(module, name, 0.0)
                changed += 1
    return changed


__all__ = ["BATCH_STATISTICS_LAYERS", "DROPOUT_LAYERS", "use_fixed_statistics_and_no_dropout"]
