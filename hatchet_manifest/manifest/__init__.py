"""The manifest language: files -> YAML with positions -> models -> sandboxed templates -> validated runs.

Owns reading manifest and values files, the pydantic models and JSON Schema, the Jinja sandbox and its budgets,
expansion of loops and matrices, and the checks every rendered run passes. Knows nothing of ledgers, engines or
plans; imports no gRPC.
"""
