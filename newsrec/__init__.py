"""newsrec's top layer: the command line over `pipeline/` (offline) and `feed/` (serving), and the tools
that check them from outside (the Vespa HTTP contract server, the walkthrough runner).

Nothing below imports this package: `pipeline` imports neither `feed` nor `newsrec`; `feed` imports
`pipeline` only.
"""
