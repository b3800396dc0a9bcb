"""The data server: chunks of large files, keyed by (ino, chunk index), checksummed per block.

Layers, pointing down:

- ``main``: the daemon entry point (``run(cfg)``): open the store, serve, register.
- ``registration``: announce this server to the dir server, with retries.
- ``service``: ``DataServicer``, the gRPC ``DataService``: decode, call the store, encode.
- ``chunk_store``: ``ChunkStore``, the engine (no gRPC): an LMDB index over slot files.
- ``chunk_writes``: planning, feeding and committing a write; cuts; block repair.
- ``chunk_listing``: paged (verified) listings and batched deletes over the index.
- ``slots``: ``SlotFiles``, chunk bytes in fixed-size slots of large sparse files.
- ``blocks``: checksums per 64 KiB block.
- ``legacy``: chunks of stores from before slot files (bytes in LMDB), and moving them.
- ``byte_budget``: ``ByteBudget``, bounds the bytes of writes in flight.
- ``chunk_format``: key and header encodings, checksums, size limits.
"""
