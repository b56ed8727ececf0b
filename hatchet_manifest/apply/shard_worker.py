"""The entry point of a parallel apply's render worker: `python -m hatchet_manifest.apply.shard_worker` (see
hatchet_manifest.apply.parallel and hatchet_manifest.apply.shards)."""

if __name__ == "__main__":
    from hatchet_manifest.apply.shards import main

    main()
