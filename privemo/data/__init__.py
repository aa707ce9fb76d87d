"""From a corpus table to what a network is fed: rating bins (``labels``), speaker-independent folds (``folds``) and
the padded, bucketed ``tf.data`` pipeline (``pipeline``)."""
