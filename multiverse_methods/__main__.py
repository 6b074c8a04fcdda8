"""Entry point of every method image.

    python -m multiverse_methods METHOD --input FILE --output DIR \
        --params '{"seed": 0, ...}' --modalities '{"rna": "rna", "atac": "atac"}' \
        --counts '{"rna": "layers/counts", "atac": "X"}'

Reads the input, trains the method, writes embeddings.h5ad, metrics.json and
log.txt into DIR, and exits with one of the codes in ``protocol``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import sys
import traceback
from pathlib import Path

from multiverse_methods import protocol
from multiverse_methods.registry import METHODS

log = logging.getLogger("multiverse_methods")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m multiverse_methods")
    # Method images name their method in MULTIVERSE_METHOD; controls (on another method's image) on the command line.
    parser.add_argument("method", nargs="?", choices=sorted(METHODS), default=os.environ.get("MULTIVERSE_METHOD"))
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--params", default="{}", help="JSON object of parameters")
    parser.add_argument("--modalities", default="{}", help="JSON object: modality name -> kind")
    parser.add_argument("--counts", default="{}",
                        help='JSON object: modality name -> where its raw counts are ("layers/<name>", "raw/X", "X") or null')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from multiverse_methods import deadline

    deadline.start()
    args = parse_args(argv)
    if args.method is None:
        print("python -m multiverse_methods: name the method (or set MULTIVERSE_METHOD)", file=sys.stderr)
        return protocol.EXIT_BAD_PARAMS
    args.output.mkdir(parents=True, exist_ok=True)
    from multiverse_methods import contract

    contract.setup_logging(args.output)
    try:
        params = METHODS[args.method].params(**json.loads(args.params))
    except (TypeError, ValueError) as exc:
        log.error("invalid parameters for %s: %s", args.method, exc)
        return protocol.EXIT_BAD_PARAMS
    effective = params.to_dict()
    log.info("method %s, parameters %s", args.method, json.dumps(effective, sort_keys=True))

    module = importlib.import_module(f"multiverse_methods.{args.method}")
    random.seed(params.seed)
    try:
        import numpy as np

        np.random.seed(params.seed)
        with contract.Stopwatch() as watch:
            data = contract.load_input(
                args.input, json.loads(args.modalities), json.loads(args.counts),
                matrices=METHODS[args.method].reads_matrices,  # the controls read none, PCA reads blocks
            )
            data.release_after_use = True  # one method, once: it may drop what it has used
            log.info(
                "input: %d cells; %s",
                data.n_obs,
                ", ".join(f"{n} ({data.kinds[n]}, {ad.n_vars} features)" for n, ad in data.modalities.items()),
            )
            result = module.fit(data, params)
        contract.write_outputs(
            args.output, args.method, data, result, effective, watch.seconds, module.PACKAGES
        )
    except contract.NotApplicable as exc:
        log.error("not applicable: %s", exc)
        return protocol.EXIT_NOT_APPLICABLE
    except Exception:  # noqa: BLE001 - any failure of the method is reported, with its traceback
        log.error("%s failed:\n%s", args.method, traceback.format_exc())
        return protocol.EXIT_METHOD_ERROR
    log.info("done in %.1f s", watch.seconds)
    return protocol.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
