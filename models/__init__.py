"""The model set drivestack ships (models/README.md): the driving model and its INT8 ONNX graph."""
