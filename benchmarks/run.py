"""Benchmark every installed method: parameters, file size, step time and memory, latency, overhead, the feature
cache, and accuracy over seeds. The same as ``adapterzoo bench``; ``--help`` lists the options.

    python benchmarks/run.py                                   # CPU, ViT-S/16 timings, ~15 minutes on 2 cores
    python benchmarks/run.py --device cuda --dtype bf16 --size base   # on a GPU (benchmarks/gpu.sh)
"""

import argparse
import sys

from adapterzoo.benchmarks.command import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
