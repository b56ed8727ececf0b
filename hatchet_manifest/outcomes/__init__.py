"""After apply: what became of the runs a manifest launched, read from the engine by the stamps apply writes.

Modules, each importing only those listed before it: tally (counts per status for one manifest, against what the
ledger recorded), read (one poll: the counts of every manifest, a few requests, and the failed runs listed),
follow (polling until every run has finished or a deadline passes, at a bounded rate, through engine outages
up to a bound), actions (cancel and replay the runs of manifests, in batches of ids).

The unit is the manifest: the runs the ledger recorded as submitted for it on the target (whatever values they
were applied with), which are the runs stamped `hatchet-manifest/manifest=<name>` in the engine.
"""
