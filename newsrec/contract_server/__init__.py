"""A local stand-in for Vespa's HTTP API (document/v1 and /search/), strict about the contract. NOT Vespa.

It speaks HTTP/1.1 and h2c (prior-knowledge HTTP/2: hypercorn serving an ASGI app does both) and checks
what newsrec sends against Vespa's documented API and `schemas/*.sd`:
- document/v1 (documents.py): every put / update is checked field by field against the schema (unknown
  field, wrong type, tensor size, non-finite cells, mapped tensors, reference ids: HTTP 400 naming the
  field); update and remove of a missing document are a 200, GET of one a 404.
- /search/ (search.py, yql.py, scoring.py): only the YQL shapes newsrec sends are accepted (anything else
  is a 400); query inputs are checked against the rank profile's `inputs`; results come in Vespa's shape
  (root, coverage, children with relevance, summary fields and match-features, grouping), ranked with
  the rank profiles' math from feed/ranking.py (the same functions as the embedded index). `user_id`
  runs an emulation of the application's UserProfileSearcher.
- readers.py: the application's reader handler (GET /newsrec/v1/user/ID: one user's history and vectors).
- Container clusters: the application has a query cluster (/search/, the reader handler) and a feed cluster
  (/document/v1/); one server serves both, or `ContractServer(cluster="feed", sharing=query_server)` serves one
  cluster's paths over the other's documents (a path the cluster does not bind: 404).
- app.py: an optional data-plane token, every request recorded, acknowledged puts counted per document
  id, and faults injected on demand:

    with ContractServer() as server:
        server.inject("id:news:news::N1", [429, 503, "timeout"])   # N1's first three attempts fail
        server.inject(r"^/search/", [500])                          # next query gets a 500

Stand-ins (documented, not Vespa): text score = number of query-term occurrences in title + abstract
(for bm25 / nativeRank); nearestNeighbor is exact; tensors are kept as float64; JSON even when the
client asks for CBOR. `python3 -m newsrec.contract_server --port 8080` serves in the foreground;
`GET /_contract/stats` gives request count and the server's own busy time. hypercorn (the `test` extra)
is needed to serve, not to import this package.
"""
from newsrec.contract_server.app import VespaContractApp
from newsrec.contract_server.protocol import ApiError, Recorded
from newsrec.contract_server.server import ContractServer

__all__ = ["ApiError", "ContractServer", "Recorded", "VespaContractApp"]
