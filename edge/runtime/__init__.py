"""The runtime: a frame's path through the model, and the loop that drives it.

    contract.py     the model contract in ONNX metadata (written by export, read here)
    providers.py    device -> ONNX Runtime providers; what really starts
    machine.py      this machine's CPU, GPUs and working providers (edge info, edge bench)
    bundled.py      where the bundled model lives
    session.py      ModelSession: an ONNX Runtime session with what actually runs
    gate.py         the model gate: refuse at load a model the runtime cannot feed or decode
    preprocess.py   letterbox -> input tensor, and its inverse for boxes
    postprocess.py  model outputs -> Detections (the only layout-aware code)
    tracking.py     ByteTrack-style tracker
    accuracy.py     live precision/recall against ground truth
    annotate.py     drawing boxes and the overlay
    timing.py       stage names, FrameTiming (ns) and FrameRecord (ms)
    observe.py      FrameResult, and the Observer / Processor protocols results are handed to
    stats.py        rolling FPS, per-stage statistics and the end-of-run summary
    feed.py         frames in: reader threads or inline reading, letterboxed
    stream_state.py one stream's state in a run
    loop.py         the loop for 1..N sources: read -> preprocess -> infer -> finish

Nothing here imports TensorFlow, Keras or JAX; what is written to files lives in edge.outputs.
"""
