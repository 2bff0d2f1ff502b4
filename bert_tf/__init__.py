"""bert-tf: fine-tune BERT models with TensorFlow 2 / Keras 3 for NER and entity-type classification."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the logs
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
