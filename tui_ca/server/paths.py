"""Where EST and SCEP clients look, apart from the code that answers them.

``serve`` routes these paths before it loads that code (the first request of
each kind loads it), so they live in a module that imports nothing.
"""

EST_PREFIX = "/.well-known/est/"
# SCEP clients disagree on the path: plain, and the one Cisco's clients made common.
SCEP_PATHS = ("/scep", "/cgi-bin/pkiclient.exe")
