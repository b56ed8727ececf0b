"""How fast the embedded engine accepts runs: prints runs/s for bulk calls of 1000 runs.

The engine runs in its own process (as `hatchet-manifest engine serve` would); the client sends the same
pre-serialised requests over and over with a few calls in flight, so nearly all the measured cost is the engine's
(gRPC receive, parse, validation, run ids, SQLite commit). Afterwards it times REST lookups by a metadata stamp,
first while the lookup indexes are not built yet (the engine builds them when idle; readers scan the tail), then
after they are. Usage:

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
import urllib.parse
import urllib.request
from pathlib import Path

import grpc


def _serve(db: str, ready: multiprocessing.Queue, commands: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from hatchet_client.engine import Engine

    with Engine(db, port=0) as eng:
        ready.put((eng.address, eng.server_url, eng.tenant_id, eng.token()))
        while (command := commands.get()) != "stop":
            assert command == "index"
            started = time.perf_counter()
            eng.index_now()
            ready.put(time.perf_counter() - started)


def _lookup(server_url: str, tenant: str, token: str, key: str) -> tuple[float, int]:
    """Seconds for one REST listing filtered by a stamp, and how many runs matched."""
    query = urllib.parse.urlencode({"additional_metadata": f"hatchet-manifest/key:{key}", "limit": 10})
    url = f"{server_url}/api/v1/stable/tenants/{tenant}/workflow-runs?{query}"
    started = time.perf_counter()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as resp:
        body = json.loads(resp.read())
    elapsed = time.perf_counter() - started
    return elapsed, len(body["rows"])


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
        commands: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        proc = ctx.Process(target=_serve, args=(str(Path(tmp) / "engine.db"), ready, commands), daemon=True)
        proc.start()
        address, server_url, tenant, token = ready.get(timeout=60)
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
        # One more run with a unique stamp, to time a lookup that matches exactly one run.
        call(_request(1, args.metadata_keys, 10**9), metadata=metadata)
        channel.close()
        runs = calls * 1000
        print(
            f"engine ingest: {runs:,} runs in {elapsed:.2f} s = {runs / elapsed:,.0f} runs/s "
            f"({args.in_flight} in flight, gzip={'on' if args.gzip else 'off'}, {args.metadata_keys} metadata keys)"
        )
        for label in ("before indexing (tail scan)", "after indexing"):
            if label == "after indexing":
                commands.put("index")
                index_seconds = ready.get(timeout=3600)
                print(f"indexing: {index_seconds:.2f} s = {runs / max(index_seconds, 1e-9):,.0f} runs/s")
            for key in ("nightly/run-10", f"nightly/run-{10**9}"):
                seconds, found = _lookup(server_url, tenant, token, key)
                print(f"REST lookup {label}, key {key}: {seconds * 1000:.1f} ms ({found} rows on the first page)")
        commands.put("stop")
        proc.join()
        print(f"cpu count: {os.cpu_count()}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
