"""Webhooks: every settled order event pushed, signed, to the shop's own systems.

The modules, in the order an event travels: `events` (what is sent, made from an order),
the store's `webhook_sql` (the outbox, written in the settlement transaction), `deliverer`
(claims due deliveries under a lease and sends them), `signing`, `targets` (where a webhook
may send). `subscriptions` is what the API and the command line call.

Importing this package imports none of them: the store imports `events` and `models`, and
the deliverer imports the store.
"""
