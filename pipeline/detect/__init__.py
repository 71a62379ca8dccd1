"""Detection stage: face detector backends, alignment, crops, tracking, analysis.

Kept import-free so that importing a submodule (e.g. the pure tracker) never
loads onnxruntime, OpenCV models or Ray. Entry points:

- :class:`pipeline.detect.detector.FaceDetector` (plain logic),
- :class:`pipeline.detect.deployment.FaceDetector` (Ray Serve wrapper),
- :func:`pipeline.detect.analyze.analyze_paths` (offline files),
- :func:`pipeline.detect.tracker.step` (pure per-camera IoU tracker).
"""
