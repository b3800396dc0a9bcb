"""The data server: chunks of large files, keyed by (ino, chunk index), checksummed.

Layers, pointing down:

- ``main``: the daemon entry point (``run(cfg)``): open the store, serve, register.
- ``registration``: announce this server to the dir server, with retries.
- ``service``: ``DataServicer``, the gRPC ``DataService``: decode, call the store, encode.
- ``chunk_store``: ``ChunkStore``, the engine over LMDB (no gRPC).
- ``byte_budget``: ``ByteBudget``, bounds the bytes of writes in flight.
- ``chunk_format``: key and header encodings, checksums, size limits.
"""
