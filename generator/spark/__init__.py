"""The generator on Apache Spark: the same job as `generator.pipeline`, spread over executors.

`session` starts Spark; `read` reads and checks an export with Spark's CSV reader by the local
loader's rules (`generator.tables`); `rows` builds every model's user rows a block of users at a
time from statistics found with Spark; `search` finds each user's best neighbours from block ×
block products with the local search's kernel and tie rule, and marks mutual neighbours;
`engine` runs it all, model by model, with the store's run protocol, each block's lists written
from its executor. The local engine stays the reference: on the same export both publish
the same lists (tests/test_spark.py).
"""
