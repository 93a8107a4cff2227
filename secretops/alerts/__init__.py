"""From detection to response: detectors' alerts and reports matched against the inventory's
stored values, and the leak response started for a live one (docs/alerts.md).

- :mod:`secretops.alerts.findings`: reports (gitleaks, TruffleHog, detect-secrets) as findings;
- :mod:`secretops.alerts.github`: GitHub's webhook deliveries, signature and replay checks;
- :mod:`secretops.alerts.matching`: which secret, environment and stage holds a value;
- :mod:`secretops.alerts.respond`: revoke, then start or join the ``respond-to-leak`` run;
- :mod:`secretops.alerts.app`, :mod:`secretops.alerts.serve`: the receiver (``secretops alerts
  serve``).
"""
