"""What a batch size can count: one list for workloads, stores, the analysis and its figures (no torch)."""

# "examples": images or rows; "tokens": tokens; "sequences": fixed-length rows of a language model's tokens
BATCH_UNITS = ("examples", "tokens", "sequences")
