"""Schemathesis hooks for the fuzz test (cli/tests/system/fuzz.rs).

A listing's `cursor` is an opaque token the API hands out (`next_cursor`); one it
did not hand out is rightly refused with 400, yet any string fits the parameter's
schema. Generated cursors are dropped, so that the other parameters of a listing
are still held to "a request the document allows is accepted". Real cursors are
exercised by the API tests of each listing.
"""

import schemathesis


@schemathesis.hook
def map_query(context, query):
    if isinstance(query, dict):
        query.pop("cursor", None)
    return query
