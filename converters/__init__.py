"""rnnedge's converters (host only): ONNX and TFLite step graphs built from a model artifact's
weights, parity verification against the numpy reference, firmware-profile checks, deploy bundles.

Nothing is exported yet; the converters land with their own issue. This package must never be
imported by `edge`.
"""
