"""The networks: Keras layers (gradient reversal, masks), the model factory, training with per-epoch validation
scores and early stopping, packed networks (``Lockstep``), the exported encoder, and device set-up."""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("device", "encoder", "layers", "lockstep", "models", "training")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("GradientReversal", "LambdaSchedule", "FrameMask", "ApplyMask", "PoolMask"), "privemo.nn.layers"),
    **dict.fromkeys((
        "build_model", "representation_model", "EncoderSettings", "model_outputs", "build_encoder", "build_head",
        "output_names",
    ), "privemo.nn.models"),
    **dict.fromkeys((
        "fit", "compile_model", "ValidationUAR", "early_stopping", "best_epoch", "save_checkpoint",
        "predict_sequences", "OBJECTIVE", "LEARNING_RATE", "MAX_EPOCHS", "PATIENCE",
    ), "privemo.nn.training"),
    **dict.fromkeys(("Lockstep",), "privemo.nn.lockstep"),
    **dict.fromkeys(("Encoder", "encode", "export_encoder", "load_encoder"), "privemo.nn.encoder"),
    **dict.fromkeys(("start_tensorflow", "configure_device", "describe_devices"), "privemo.nn.device"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
