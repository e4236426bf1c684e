"""The local development stack: DynamoDB Local started, reused and stopped, and `make run`'s stack.

Development only: the services never import it. `python -m devstack` is its command line.
"""
