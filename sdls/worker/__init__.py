"""The model worker: one process that owns the engine and serves jobs over a private Unix socket.

protocol.py (frames, handshake) + wire.py (jobs <-> msgpack) define the transport; scheduler.py runs
jobs on the engine thread in two priority lanes with batching and cancellation; socket_server.py is
the socket side, worker_command.py the `sdls worker` command, reload.py hot-reloads the model directory;
client.py is the language server's side (connect or spawn, fail fast, restart with backoff);
inprocess.py offers the same interface with the engine in the calling process.
"""
