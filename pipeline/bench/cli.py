"""``emotionpipe bench {model,arch,pipeline,scaling}``: dispatch to the benchmark modules."""

from __future__ import annotations

import sys

TARGETS = {
    "model": ("pipeline.bench.model_bench", "classifier faces/s: eager vs the shipped runtime, batch 1/64"),
    "arch": ("pipeline.bench.arch_bench", "int8 faces/s of candidate classifier layouts (random weights)"),
    "pipeline": ("pipeline.bench.pipeline_bench", "ramp RTSP cameras through the live stack"),
    "scaling": ("pipeline.bench.scaling_bench", "autoscaling timeline: camera ramp, then face burst (CSV + PNG)"),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in TARGETS:
        print("usage: emotionpipe bench {model,arch,pipeline,scaling} [options]   (--help after a target for its options)")
        for name, (_, about) in TARGETS.items():
            print(f"  {name:<9} {about}")
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    import importlib

    module = importlib.import_module(TARGETS[args[0]][0])
    return int(module.main(args[1:]))
