"""The FUSE mount: SuperFS as a POSIX file system that ordinary tools use.

``operations`` is the pyfuse3 handler class (the only module that raises
``FUSEError``); ``inodes`` keeps the kernel's lookup counts and what each
inode last looked like; ``handles`` holds open files with their write-back
buffers and read-ahead; ``dirhandles`` holds readdir snapshots; ``orphans``
keeps unlinked-but-open files alive; ``creds`` turns a FUSE request context
into client credentials; ``setattrs`` and ``statfs`` translate those two
requests; ``options`` holds a mount's settings; ``mount`` runs, daemonises
and unmounts a mount.

Everything runs on one asyncio loop (``pyfuse3.asyncio.enable()``), shared
with the grpc.aio client, so many kernel requests are in flight at once.
"""
