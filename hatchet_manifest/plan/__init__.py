"""Planning: what `apply` would do, computed against the ledger, the engine or a git base, without acting.

Owns run identity (digests, stamps), the plan (create / changed / unchanged / removed / unknown), plan files, the
git base, the engine lookup and reconciliation of runs an earlier apply left unsettled, and the target
(which engine and tenant). Never sends a run.
"""
