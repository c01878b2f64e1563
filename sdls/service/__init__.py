"""`sdls service`: the model over HTTP, for editors on other machines and for plugins that speak HTTP.

The service runs the engine and scheduler the worker uses and answers llama.cpp's `/infill`,
OpenAI-style `/v1/completions` and `/v1/fim/completions`, and sdls's own job endpoint. Only this
package (and `sdls/lsp`'s choice of backend) knows HTTP. Importing it imports nothing heavy: the
language server's remote backend (`client.py`) needs httpx only, the service Starlette and
uvicorn (the `service` extra), the Ray entry point Ray Serve (the `cluster` extra).
"""
