"""rnnedge's converters (host only): the step graph written once (`graph`) and emitted as ONNX
(`onnx_target`) and TFLite (`tflite_target`), parity against the numpy reference (`verify`),
firmware profiles (`profiles`) and the checks against them (`check`), and `convert`, which ties
them together. `edge` never imports this package; the device reads the targets through
`edge.targets` and deploy bundles through `edge.bundle`.
"""
