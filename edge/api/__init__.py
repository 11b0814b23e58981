"""The public API's two entry points, exported as `edge.Detector` and `edge.stream`.

detector.py   Detector: an ONNX model with its pre- and post-processing, image in, boxes out
streaming.py  stream(): the run loop as an iterator of FrameResults, with optional files
"""
