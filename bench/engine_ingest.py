"""How fast the embedded engine accepts runs: prints runs/s for bulk calls of 1000 runs.

The engine runs in its own process (as `hatchet-manifest engine serve` would); the client sends the same
pre-serialised request over and over with a few calls in flight, so nearly all the measured cost is the engine's
(gRPC receive, parse, validation, run ids, SQLite commit). Usage:

    python bench/engine_ingest.py [--runs 200000] [--in-flight 2] [--gzip] [--metadata-keys 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc


def _serve(db: str, ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    from hatchet_client.engine import Engine

    with Engine(db, port=0) as eng:
        ready.put((eng.address, eng.token()))
        stop.wait()
        started = time.perf_counter()
        eng.index_now()
        ready.put(time.perf_counter() - started)


def _request(n: int, keys: int, offset: int) -> bytes:
    from hatchet_client._proto import workflows_pb2
    from hatchet_client._proto.v1 import trigger_pb2

    items = []
    for i in range(offset, offset + n):
        meta = {"hatchet-manifest/key": f"nightly/run-{i}", "hatchet-manifest/manifest": "manifests/nightly.yaml"}
        meta.update({f"extra-{k}": f"value-{k}" for k in range(max(0, keys - 2))})
        items.append(
            trigger_pb2.TriggerWorkflowRequest(
                name="bench_BulkParent",
                input=json.dumps({"n": i, "date": "2024-01-01", "tags": ["a", "b"], "note": "x" * 40}),
                additional_metadata=json.dumps(meta),
                child_index=0,
            )
        )
    return workflows_pb2.BulkTriggerWorkflowRequest(workflows=items).SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--metadata-keys", type=int, default=3)
    args = parser.parse_args()

    calls = args.runs // 1000
    with tempfile.TemporaryDirectory() as tmp:
        ctx = multiprocessing.get_context("spawn")
        ready: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        stop = ctx.Event()
        proc = ctx.Process(target=_serve, args=(str(Path(tmp) / "engine.db"), ready, stop))
        proc.start()
        address, token = ready.get(timeout=60)
        payloads = [_request(1000, args.metadata_keys, k * 1000) for k in range(8)]
        options = [("grpc.max_send_message_length", 4 * 1024 * 1024)]
        compression = grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression
        channel = grpc.insecure_channel(address, options=options, compression=compression)
        call = channel.unary_unary("/WorkflowService/BulkTriggerWorkflow")
        metadata = (("authorization", f"bearer {token}"),)
        call(payloads[0], metadata=metadata)  # warm-up (counted in the database, not in the figures)

        next_call = iter(range(calls))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    k = next(next_call, None)
                if k is None:
                    return
                call(payloads[k % len(payloads)], metadata=metadata)

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.in_flight)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        channel.close()
        stop.set()
        index_seconds = ready.get(timeout=600)
        proc.join()
        runs = calls * 1000
        print(
            f"engine ingest: {runs:,} runs in {elapsed:.2f} s = {runs / elapsed:,.0f} runs/s "
            f"({args.in_flight} in flight, gzip={'on' if args.gzip else 'off'}, {args.metadata_keys} metadata keys)"
        )
        print(f"deferred indexing afterwards: {index_seconds:.2f} s = {runs / max(index_seconds, 1e-9):,.0f} runs/s")
        print(f"cpu count: {os.cpu_count()}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
