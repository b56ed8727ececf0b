"""A second process for the ledger tests: holds locks, takes turns, races for keys.

ledger_worker.py hold URL STATE_DIR TENANT ADDRESS
    lock the target, print "locked", hold it until stdin closes (or the process is killed), print "released"
ledger_worker.py turns URL STATE_DIR TENANT ADDRESS COUNTER_FILE ROUNDS
    ROUNDS times: under the lock, check the counter file says 0, set it to 1, sleep, set it back to 0;
    exit 3 if another process was found inside
ledger_worker.py race URL STATE_DIR TENANT ADDRESS NKEYS BATCH SEED
    print "ready", wait for a line on stdin, then record_pending the keys k0..k{NKEYS-1} in shuffled batches,
    without the lock, dropping keys another process took; print {"won": [...], "refused": [...]}
ledger_worker.py migrate URL STATE_DIR
    print "ready", wait for a line on stdin, then open the ledger (migrating it) and print its schema version
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from hatchet_manifest.ledger import KeyTakenError, PendingRow, Target, open_ledger


def hold(url: str, state_dir: Path, target: Target) -> None:
    with open_ledger(url, state_dir) as ledger, ledger.lock(target):
        print("locked", flush=True)
        sys.stdin.read()
    print("released", flush=True)


def turns(url: str, state_dir: Path, target: Target, counter: Path, rounds: int) -> int:
    with open_ledger(url, state_dir) as ledger:
        for _ in range(rounds):
            with ledger.lock(target, wait=60):
                if counter.read_text() != "0":
                    return 3
                counter.write_text("1")
                time.sleep(0.02)
                counter.write_text("0")
    return 0


def race(url: str, state_dir: Path, target: Target, nkeys: int, batch: int, seed: int) -> None:
    keys = [f"k{i}" for i in range(nkeys)]
    random.Random(seed).shuffle(keys)
    won: list[str] = []
    refused: list[str] = []
    with open_ledger(url, state_dir) as ledger:
        print("ready", flush=True)
        sys.stdin.readline()
        for start in range(0, nkeys, batch):
            wanted = keys[start : start + batch]
            while wanted:
                try:
                    ledger.record_pending(target, [PendingRow(k, "d", "m", "f.yaml") for k in wanted])
                except KeyTakenError as taken:
                    refused += taken.keys
                    wanted = [k for k in wanted if k not in set(taken.keys)]
                else:
                    won += wanted
                    break
            time.sleep(0.001)  # as an executor sends between two chunks: lets the other process in
    print(json.dumps({"won": won, "refused": refused}), flush=True)


def migrate(url: str, state_dir: Path) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    with open_ledger(url, state_dir) as ledger:
        print(ledger.schema_version(), flush=True)


def main(argv: list[str]) -> int:
    command, url, state_dir = argv[0], argv[1], Path(argv[2])
    if command == "migrate":
        migrate(url, state_dir)
        return 0
    target = Target(argv[3], argv[4])
    if command == "hold":
        hold(url, state_dir, target)
    elif command == "turns":
        return turns(url, state_dir, target, Path(argv[5]), int(argv[6]))
    elif command == "race":
        race(url, state_dir, target, int(argv[5]), int(argv[6]), int(argv[7]))
    else:
        raise SystemExit(f"unknown command {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
