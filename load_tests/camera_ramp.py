#!/usr/bin/env python
"""Camera ramp load test: ``.venv/bin/python load_tests/camera_ramp.py [--steps 2,4,6,8,10,12] [--hold 50]``.

The same command as ``emotionpipe bench pipeline`` (:func:`pipeline.bench.pipeline_bench.run_ramp`);
``--help`` lists the options. Results: a table on stdout, CSV + JSON under ``bench-results/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["bench", "pipeline", *sys.argv[1:]])
