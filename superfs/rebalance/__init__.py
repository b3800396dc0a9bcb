"""Moving chunks between data servers: rebalance, drain, re-replication (issue 21).

``plan`` decides (pure functions over the cluster map and a file's record),
``port`` is the small interface chunks move through (read, write, verify,
fence, delete a replica; a file's record and its layout switch), ``mover``
moves one file's chunks to a new layout without ever holding fewer than R
copies, and ``passes`` runs the operator's commands over every file:
``rebalance``, ``drain`` and the re-replication of a dead server, which the
dir server also starts on its own (``watch``).
"""
