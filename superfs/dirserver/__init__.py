"""The dir server: every directory of the cluster, the cluster map, and the
coordinator of directory operations that touch the file-metadata shards.

Layers, top down: ``main`` (daemon entry point: ``run(cfg)``) -> ``service``
(``DirServicer``, the gRPC servicer) -> ``coordinator``/``recovery``
(multi-server protocols over an intent log), ``namespace`` (resolve, lookups,
listing), ``attrs`` (chmod, chown, times, xattrs), ``cluster_map`` ->
``store``/``intents`` (LMDB). ``shards`` is the coordinator's view of the
shards (gRPC in production, a fake in unit tests).

Nothing is imported here, so that the store layer can be used without grpc.
"""
