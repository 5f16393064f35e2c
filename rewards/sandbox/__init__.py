"""The one place user reward code runs: bubblewrap with an allowlist root (bwrap), the
program inside it (child, standard library only), the pool of sandboxed workers (runner), the
checks on what they send back (replies), and whether isolation works here (status).

Imports: the standard library and Django settings; child.py imports nothing of ours.
"""
