"""`flashsale bench`: on this machine, in one run, for each process count and with the same
load generator, (a) a plain aiohttp+uvloop hello-world POST and (a') a bare uvloop+httptools
one, the ceiling, against (b) flashsale's purchase endpoint, with the ratios and what each
costs in CPU per request; then held rates, scale, settlement, and the seed scenario (38,000
units, 380,000 attempts, limit 2) with its sellout time and audit.

wrk is the generator when it is installed, and then the load tool's own client is measured
against it on (a) too: the client must not be what limits the numbers.
"""

from flashsale.loadtest.bench.main import add_arguments, main

__all__ = ["add_arguments", "main"]
