"""Reference runs that reproduce the paper (data, augmentation, backbones, training, evaluation).

Importing this package before Keras sets defaults for the frameworks the scripts use (an
explicit setting in the environment wins; the library `sparsehead` itself sets none):

- `TF_ENABLE_ONEDNN_OPTS=1`. TensorFlow turns its oneDNN kernels on by itself only on some
  Intel CPUs; on the 2-core AMD EPYC these runs were tuned on, the default SimCLR step took
  243 ms with them off and 143 ms with them on (the same as plain PyTorch, which uses oneDNN
  too).
- `TF_CPP_MIN_LOG_LEVEL=2`: TensorFlow's C++ information and warning lines (the oneDNN and
  CPU-instruction banners, absl's "log messages before InitializeLog"), about 30 lines per
  run, are not printed; errors still are. Set it to `0` to see them.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
