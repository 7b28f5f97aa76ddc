"""surge: optimal learning rate and batch size scaling for Adam-style optimizers.

Implements "Surge Phenomenon in Optimal Learning Rate and Batch Size Scaling" (NeurIPS 2024).
"""

__version__ = "0.1.0"
