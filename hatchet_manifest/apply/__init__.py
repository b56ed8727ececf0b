"""Applying a plan: the spool of rendered runs, the parallel render workers, the executor that sends chunks
through `hatchet_client`, and the recorder threads that write every chunk to the ledger before and after it is
sent (write-ahead). The only stage that submits runs.
"""
