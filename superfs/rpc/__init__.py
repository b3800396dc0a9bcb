"""The transport: how every SuperFS process reaches every daemon.

- ``frames``: the session wire format (proto/superfs/v1/session.proto) and its parser;
- ``methods``: the unary methods of the services, their messages, which are mutations;
- ``client``: :class:`Session`, one connection per daemon carrying every call of a process;
- ``server``: :class:`SessionServer`, the daemon side, with at-most-once mutations and calls back;
- ``context``: what a servicer sees of a call that came over a session.
"""
