"""The file-metadata shard: (parent dir ino, name) -> file record, in LMDB.

Layers, top down: ``main`` (daemon entry point ``run(cfg)``), ``service``
(``ShardServicer``: decode, route, verify capability, encode), ``crossshard``
and ``reclaimer`` (network steps and deferred work), the store operations
``file_ops`` / ``name_ops`` / ``xattr_ops`` over ``store.FileMetaStore``, and
``records`` (on-disk formats). ``cluster.ShardCluster`` answers routing.
"""
