"""Real time: events in, live profile updated, triggers delivered to channels in seconds.

A plain library (no Dagster, no web framework): the API's intake endpoints append to the
event log, ``cdp stream`` runs the processor and the delivery worker, and a Dagster asset folds
the log into the lake so the batch graph sees the same events.

- ``types``: canonical event kinds, the Segment e-commerce names that map to them, the logged
  event and the :class:`~events.types.EventLog` interface a broker could implement;
- ``config``: the ``realtime:`` section of cdp.yml (triggers, channel webhooks, the fold);
- ``intake``: Segment HTTP tracking API payloads validated into events or kept failures;
- ``log``: the embedded event log (SQLite in WAL mode, grouped commits);
- ``state``/``live``/``resolve``/``triggers``/``processor``: the stream processor and the live
  profile it keeps, one transaction per batch together with its offset;
- ``outbox``/``delivery``/``signing``: signed, retried, dead-lettered webhook delivery;
  ``receiver``: the reference webhook receiver the demo runs (a real channel replaces it);
- ``consent``: real-time consent statements (``Consent Updated``) into the decision log;
- ``fold``: the log as landing files of ordinary sources, exactly once.
"""
