"""INT8 variants of an artifact folder (NNCF for OpenVINO, ORT QDQ for ONNX) and their measured quality cost.

Not built yet: this is the next stage of the export -> quantize -> runtime flow.
"""
