"""Privacy: consent that holds on every path, access on request, retention.

A plain library (no Dagster, no web framework) above ``events`` and ``decisions``: the API, the
Dagster assets and the ``cdp privacy`` commands call it. Personal identifiers it must remember
(requests, a suppression list) are kept only as keyed hashes (HMAC-SHA256 under the
installation's privacy key), never in plain text.

- ``keys``: the privacy key from settings (required), keyed hashes ``kh1:<key ids>:<hex>``,
  the keyring (current key first, older keys for matching), rotation through ``HashedStore``;
- ``access``: everything held about one person as one JSON document (``cdp privacy export``);
- ``config``: the ``privacy:`` section of cdp.yml (retention);
- ``retention``: removal of event and decision data older than the configured retention.
"""
