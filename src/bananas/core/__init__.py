"""The pure core of Bananas: job model, routing rules, priorities, retry policy, clock.

Nothing in this package performs I/O or imports redis.
"""
