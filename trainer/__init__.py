"""rnnedge's host trainer: data splits, GRU and ESN training, pruning, int8 quantization, scorer
calibration. Needs torch (install with `pip install torch==2.13.0 'rnnedge[host]'`)."""
