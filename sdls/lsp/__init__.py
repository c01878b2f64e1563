"""The language server: the only package that knows LSP.

serve_command.py (`sdls serve`) -> language_server.py (the server's state and shared plumbing) +
handlers.py (one module-level function per LSP method: LSP params -> a core call -> LSP result, via
convert.py, which also types the payloads clients echo back) -> the core, which never imports
lsprotocol: model_call.py (ModelCall: backend, decode settings, budget, validation; ensure_current),
documents.py (open documents, incremental sync), positions.py (UTF-16/8/32 columns), completion.py +
prompt.py + completion_cache.py (inline completion), actions.py + edits.py (code actions), fixups.py
(hover fix-ups), workspace_index.py (cross-file declarations), settings.py; backends.py picks the
worker (sdls.worker) or the in-process engine. driver.py drives the server from Python (bench_lsp.py,
`sdls demo`).
"""
