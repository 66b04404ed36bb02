"""Foundations every stage uses: errors, file paths, durable writes, seeds, devices and fault injection.

Nothing here imports another evoticket stage.
"""
