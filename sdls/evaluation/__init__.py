"""Evaluation on HumanEval: infill and repair suites, a sandbox that runs the tests, and a side-by-side
runner that compares decoding settings on the same engine and tasks (`sdls bench eval`).

Code map: problems.py (the 164 problems) -> suites.py + bugs.py (tasks) -> runner.py (decode, execute)
-> metrics.py (figures, goal verdict) -> report.py (markdown, PNG, JSON) -> bench_eval.py (`sdls bench eval`).
sandbox.py runs untrusted programs; sandbox_child.py is the code that runs inside the child.
"""
