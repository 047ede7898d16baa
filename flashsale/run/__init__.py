"""Running flashsale's processes: `parts` (what each holds, and stopping), `gateway` (one
gateway process), `gateways` (N of them on one port), `worker` (settlement and `audit`), `up`
(all of it on one machine). The CLI and the tests start processes through this surface."""

from flashsale.run.gateway import serve, start_site
from flashsale.run.gateways import Gateways, cores, reachable
from flashsale.run.parts import Parts, connected, stop_on_signals
from flashsale.run.up import up
from flashsale.run.worker import audit, deliverer, verify_draw, work

__all__ = [
    "Gateways",
    "Parts",
    "audit",
    "connected",
    "cores",
    "deliverer",
    "reachable",
    "serve",
    "start_site",
    "stop_on_signals",
    "up",
    "verify_draw",
    "work",
]
