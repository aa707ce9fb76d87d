"""The networks: Keras layers (gradient reversal, masks), the model factory, training with per-epoch validation
scores and early stopping, the exported encoder, and device set-up."""
